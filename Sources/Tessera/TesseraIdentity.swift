import Foundation

/// Who a request is, once its access token has been verified: what an app's routes read.
public struct TesseraIdentity: Sendable, Hashable, Codable {
    public var userID: String
    public var sessionID: String
    /// The access token's `jti`.
    public var tokenID: String
    public var issuer: String
    public var issuedAt: Date
    public var expiresAt: Date

    public init(userID: String, sessionID: String, tokenID: String, issuer: String, issuedAt: Date, expiresAt: Date) {
        self.userID = userID
        self.sessionID = sessionID
        self.tokenID = tokenID
        self.issuer = issuer
        self.issuedAt = issuedAt
        self.expiresAt = expiresAt
    }

    public init(_ claims: AccessClaims) {
        self.init(
            userID: claims.sub, sessionID: claims.sid, tokenID: claims.jti, issuer: claims.iss,
            issuedAt: Date(timeIntervalSince1970: TimeInterval(claims.iat)), expiresAt: claims.expiresAt
        )
    }
}
