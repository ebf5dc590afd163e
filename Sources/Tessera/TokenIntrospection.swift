import Foundation

/// What RFC 7662 introspection tells a resource server about an active token.
public struct TokenIntrospection: Sendable, Equatable {
    public enum Kind: String, Sendable {
        case accessToken = "access_token"
        case refreshToken = "refresh_token"
    }

    public var kind: Kind
    public var subject: String
    public var sessionID: String
    /// Access tokens only: refresh tokens carry no id of their own.
    public var tokenID: String?
    public var issuedAt: Int64
    public var expiresAt: Int64
    public var issuer: String
    /// The account's email.
    public var username: String
}
