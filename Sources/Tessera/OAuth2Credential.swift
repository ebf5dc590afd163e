import Foundation

/// A session credential of type OAuth2, kept sealed like every credential. Tessera keeps its
/// access token fresh by refreshing it at `tokenEndpoint` (see `AuthService.credential`).
public struct OAuth2Credential: Sendable, Codable, Equatable {
    public var accessToken: String
    public var tokenType: String
    public var expiresAt: Date
    public var refreshToken: String
    public var tokenEndpoint: String
    public var clientID: String
    public var clientSecret: String?
    public var scope: String?
    /// The provider answered `invalid_grant`: refused until the credential is replaced.
    public var dead = false
    /// The last refresh attempt that failed for a passing reason; callers that were waiting
    /// for that attempt get its failure instead of trying again one after another.
    public var failedAt: Date?

    public init(
        accessToken: String, tokenType: String = "Bearer", expiresAt: Date, refreshToken: String, tokenEndpoint: String, clientID: String,
        clientSecret: String? = nil, scope: String? = nil
    ) {
        self.accessToken = accessToken
        self.tokenType = tokenType
        self.expiresAt = expiresAt
        self.refreshToken = refreshToken
        self.tokenEndpoint = tokenEndpoint
        self.clientID = clientID
        self.clientSecret = clientSecret
        self.scope = scope
    }

    enum CodingKeys: String, CodingKey {
        case accessToken = "access_token", tokenType = "token_type", expiresAt = "expires_at", refreshToken = "refresh_token"
        case tokenEndpoint = "token_endpoint", clientID = "client_id", clientSecret = "client_secret", scope, dead
        case failedAt = "failed_at"
    }

    /// Sealed plaintexts of OAuth2 credentials start with this byte; opaque credentials are
    /// JSON text, which never does.
    static let marker: UInt8 = 0

    func sealedPlaintext() throws -> Data {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .secondsSince1970
        return Data([Self.marker]) + (try encoder.encode(self))
    }

    static func fromPlaintext(_ data: Data) -> OAuth2Credential? {
        guard data.first == marker else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        return try? decoder.decode(OAuth2Credential.self, from: data.dropFirst())
    }
}
