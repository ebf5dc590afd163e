/// Failures a client can cause or see. `code` is the stable, machine-readable name used in
/// API problem details; it never changes once published.
public enum AuthError: Error, Equatable, Sendable {
    case invalidRequest(String)
    case emailTaken
    case invalidCredentials
    case invalidRefreshToken
    case refreshTokenReused
    case invalidToken
    case tokenExpired
    case tokenRevoked

    public var code: String {
        switch self {
        case .invalidRequest: "invalid_request"
        case .emailTaken: "email_taken"
        case .invalidCredentials: "invalid_credentials"
        case .invalidRefreshToken: "invalid_refresh_token"
        case .refreshTokenReused: "refresh_token_reused"
        case .invalidToken: "invalid_token"
        case .tokenExpired: "token_expired"
        case .tokenRevoked: "token_revoked"
        }
    }

    public var detail: String {
        switch self {
        case .invalidRequest(let detail): detail
        case .emailTaken: "An account with this email already exists."
        case .invalidCredentials: "The email or password is incorrect."
        case .invalidRefreshToken: "The refresh token is unknown, expired or revoked."
        case .refreshTokenReused: "This refresh token was already used; the session has been ended."
        case .invalidToken: "The access token is missing or not valid."
        case .tokenExpired: "The access token has expired."
        case .tokenRevoked: "The access token has been revoked."
        }
    }
}
