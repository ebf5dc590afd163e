import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdAuth
import Tessera

/// Authenticates requests with a Tessera access token, verified by any `TesseraVerifying`:
/// an `AuthService` in this process, or a `TesseraRemoteVerifier` following a remote Tessera.
///
/// - Reads `Authorization: Bearer` first, then the cookie-mode access cookie.
/// - No credential: no identity; the route decides (`context.requireIdentity()`).
/// - A bad, expired or revoked token: 401 problem+json with `WWW-Authenticate`, with the codes
///   Tessera answers (`invalid_token`, `token_expired`, `token_revoked`).
/// - A verifier that cannot decide: 503 `verification_unavailable`, never "authenticated".
public struct TesseraAuthenticator<Context: AuthRequestContext<TesseraIdentity>>: AuthenticatorMiddleware {
    public typealias Identity = TesseraIdentity

    /// The access cookie Tessera sets in cookie mode.
    public static var accessCookieName: String { "__Host-tessera_at" }

    public let verifier: any TesseraVerifying
    public let cookieName: String?

    /// - Parameter cookieName: the access cookie to read when there is no Bearer header; nil: none.
    public init(verifier: some TesseraVerifying, cookieName: String? = "__Host-tessera_at") {
        self.verifier = verifier
        self.cookieName = cookieName
    }

    public func authenticate(request: Request, context: Context) async throws -> TesseraIdentity? {
        guard let token = credential(of: request) else { return nil }
        do {
            return try await verifier.verify(token: token)
        } catch {
            throw TesseraAuthenticationProblem(error)
        }
    }

    func credential(of request: Request) -> String? {
        if let header = request.headers[.authorization] {
            let parts = header.split(separator: " ", maxSplits: 1)
            // Another scheme is not ours to judge: no identity, as with no header.
            guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
            return parts[1].trimmingCharacters(in: .whitespaces)
        }
        guard let cookieName, let cookie = request.cookies[cookieName], !cookie.value.isEmpty else { return nil }
        return cookie.value
    }
}
