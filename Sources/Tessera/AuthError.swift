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
    case sessionNotFound
    case invalidResetToken
    case mfaNotEnrolled
    case mfaAlreadyEnabled
    case invalidMFAToken
    case invalidMFACode
    case credentialNotFound
    /// An administrator named a user id that does not exist.
    case userNotFound
    /// An administrator locked the account: no login or refresh until it is unlocked.
    case accountDisabled
    case credentialLimitReached(Int)
    /// Too many requests from this client or for this account; retry after that many seconds.
    case rateLimited(retryAfter: Int)
    /// Too many consecutive failed logins; the account accepts logins again after that many seconds.
    case accountLocked(retryAfter: Int)
    /// The upstream provider refused the credential's refresh token; it needs replacing.
    case upstreamRefreshFailed
    /// The upstream token endpoint could not be reached or answered with an error.
    case upstreamUnavailable

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
        case .sessionNotFound: "session_not_found"
        case .invalidResetToken: "invalid_reset_token"
        case .mfaNotEnrolled: "mfa_not_enrolled"
        case .mfaAlreadyEnabled: "mfa_already_enabled"
        case .invalidMFAToken: "invalid_mfa_token"
        case .invalidMFACode: "invalid_mfa_code"
        case .credentialNotFound: "credential_not_found"
        case .userNotFound: "user_not_found"
        case .accountDisabled: "account_disabled"
        case .credentialLimitReached: "credential_limit_reached"
        case .rateLimited: "rate_limited"
        case .accountLocked: "account_locked"
        case .upstreamRefreshFailed: "upstream_refresh_failed"
        case .upstreamUnavailable: "upstream_unavailable"
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
        case .sessionNotFound: "No such session."
        case .invalidResetToken: "The reset token is unknown, expired or already used."
        case .mfaNotEnrolled: "Multi-factor authentication is not enrolled for this account."
        case .mfaAlreadyEnabled: "Multi-factor authentication is already enabled."
        case .invalidMFAToken: "The MFA token is unknown, expired, already used or has had too many wrong codes."
        case .invalidMFACode: "The code is not valid."
        case .credentialNotFound: "No credential of that name on this session."
        case .userNotFound: "No such user."
        case .accountDisabled: "This account has been locked by an administrator."
        case .credentialLimitReached(let limit): "A session carries at most \(limit) credentials."
        case .rateLimited(let seconds): "Too many requests; retry in \(seconds) s."
        case .accountLocked(let seconds): "Too many failed logins; this account is locked for \(seconds) s."
        case .upstreamRefreshFailed: "The upstream provider refused this credential's refresh token; store a new credential."
        case .upstreamUnavailable: "The upstream token endpoint could not refresh this credential right now; try again later."
        }
    }
}
