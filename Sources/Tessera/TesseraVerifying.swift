import Foundation

/// Why a verifier refused a token, or could not decide.
public enum TesseraVerificationError: Error, Equatable, Sendable {
    /// Malformed, forged, signed by an unknown key or for another issuer.
    case invalid
    case expired
    case revoked
    /// The verifier cannot tell whether the token is revoked (store down, or a remote verifier
    /// out of sync with Tessera unreachable). Never to be read as "valid".
    case unavailable(String)

    /// The error Tessera's own endpoints answer for the same token; nil for `unavailable`.
    public var authError: AuthError? {
        switch self {
        case .invalid: .invalidToken
        case .expired: .tokenExpired
        case .revoked: .tokenRevoked
        case .unavailable: nil
        }
    }
}

/// Turns an access token into an identity: embedded (`AuthService`) or remote
/// (`TesseraRemoteVerifier`). Throws `TesseraVerificationError` only.
public protocol TesseraVerifying: Sendable {
    func verify(token: String) async throws(TesseraVerificationError) -> TesseraIdentity
}

/// Tessera in the app's own process: the same checks as its endpoints, on the same store.
extension AuthService: TesseraVerifying {
    public func verify(token: String) async throws(TesseraVerificationError) -> TesseraIdentity {
        do {
            return TesseraIdentity(try await authenticate(bearer: token))
        } catch let error as AuthError {
            switch error {
            case .tokenExpired: throw .expired
            case .tokenRevoked: throw .revoked
            default: throw .invalid
            }
        } catch {
            throw .unavailable("\(tokens.backendName) store unavailable")
        }
    }
}
