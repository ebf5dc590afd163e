import Foundation
@_exported import Tessera
@_exported import TesseraRemote
import Vapor

/// Authenticates Vapor requests with a Tessera access token, verified by any `TesseraVerifying`
/// (an `AuthService` in this process, or a `TesseraRemoteVerifier`).
///
/// Reads `Authorization: Bearer` first, then the cookie-mode access cookie. No credential: the
/// request goes on unauthenticated (the route decides). A bad, expired or revoked token: 401
/// problem+json with `WWW-Authenticate` and Tessera's codes. A verifier that cannot decide: 503
/// `verification_unavailable`, never "authenticated".
public struct TesseraAuthenticator: AsyncMiddleware {
    public static let accessCookieName = "__Host-tessera_at"

    public let verifier: any TesseraVerifying
    public let cookieName: String?

    public init(verifier: some TesseraVerifying, cookieName: String? = "__Host-tessera_at") {
        self.verifier = verifier
        self.cookieName = cookieName
    }

    public func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        if let token = credential(of: request) {
            do {
                request.auth.login(try await verifier.verify(token: token))
            } catch {
                return Self.problem(error)
            }
        }
        return try await next.respond(to: request)
    }

    func credential(of request: Request) -> String? {
        if let header = request.headers.first(name: .authorization) {
            let parts = header.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
            return parts[1].trimmingCharacters(in: .whitespaces)
        }
        guard let cookieName, let value = request.cookies[cookieName]?.string, !value.isEmpty else { return nil }
        return value
    }

    /// The same problem+json Tessera answers for the same token.
    static func problem(_ reason: TesseraVerificationError) -> Response {
        let problem = reason.problem
        let status = HTTPResponseStatus(statusCode: problem.status)
        var headers = HTTPHeaders([("Content-Type", "application/problem+json"), ("Cache-Control", "no-store")])
        // RFC 6750 §3 for refusals, as Tessera itself answers; a retry hint when undecided.
        if reason.authError != nil {
            headers.add(name: .wwwAuthenticate, value: "Bearer error=\"invalid_token\"")
        } else {
            headers.add(name: .retryAfter, value: "1")
        }
        let body = ProblemDocument(status: problem.status, title: status.reasonPhrase, code: problem.code, detail: problem.detail)
        return Response(status: status, headers: headers, body: .init(data: body.encoded()))
    }
}
