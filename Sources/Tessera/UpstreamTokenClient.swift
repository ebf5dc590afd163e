/// Makes the RFC 6749 §6 refresh-token request at an upstream token endpoint. The core only
/// defines it; the HTTP implementation (async-http-client) lives with the server, so this
/// module links no HTTP client.
public protocol UpstreamTokenClient: Sendable {
    /// Throws `UpstreamFailure` only.
    func refresh(_ request: UpstreamRefreshRequest) async throws -> UpstreamTokens
}

public struct UpstreamRefreshRequest: Sendable, Equatable {
    /// Already checked against the allowed prefixes.
    public var endpoint: String
    public var refreshToken: String
    public var clientID: String
    public var clientSecret: String?
    public var scope: String?

    public init(endpoint: String, refreshToken: String, clientID: String, clientSecret: String?, scope: String?) {
        self.endpoint = endpoint
        self.refreshToken = refreshToken
        self.clientID = clientID
        self.clientSecret = clientSecret
        self.scope = scope
    }
}

/// A successful token response (RFC 6749 §5.1).
public struct UpstreamTokens: Sendable, Equatable {
    public var accessToken: String
    public var tokenType: String
    /// nil when the provider did not say.
    public var expiresIn: Int?
    /// Set when the provider rotated the refresh token.
    public var refreshToken: String?

    public init(accessToken: String, tokenType: String, expiresIn: Int?, refreshToken: String?) {
        self.accessToken = accessToken
        self.tokenType = tokenType
        self.expiresIn = expiresIn
        self.refreshToken = refreshToken
    }
}

public enum UpstreamFailure: Error, Equatable, Sendable {
    /// The provider refused the refresh token (`invalid_grant`): it will not work again.
    case invalidGrant
    /// Network error, timeout, 5xx, an oversized or unreadable answer, any other refusal: the
    /// credential may work later. The text is for logs and holds no secret.
    case unavailable(String)
}
