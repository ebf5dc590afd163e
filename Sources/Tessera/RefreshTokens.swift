import Crypto
import Foundation

/// Refresh tokens are `tsr1.<user id>.<session id>.<generation>.<mac>`, where the MAC is
/// HMAC-SHA-256(refresh key, user id ‖ session id ‖ generation) and the refresh key lives in the key file,
/// not in the store.
///
/// Consequences (see docs/ARCHITECTURE.md): the store holds no token material at all, only the
/// session's current generation; the server can re-derive the current generation's token, which
/// is what the grace window needs to answer a concurrent refresh without minting a new one; and
/// a stolen database or Redis dump cannot produce a valid token without the key file.
public struct RefreshTokenCodec: Sendable {
    public struct Decoded: Sendable, Equatable {
        public var userID: String
        public var sessionID: String
        public var generation: Int64
    }

    private static let prefix = "tsr1"
    /// The first MACs new tokens; every one verifies (a rotated-out key keeps its tokens working
    /// until it is retired: they come back under the first key at their next refresh).
    private let keys: [SymmetricKey]

    public init(key: SymmetricKey) {
        self.keys = [key]
    }

    public init(keys: [SymmetricKey]) {
        precondition(!keys.isEmpty, "at least one refresh key")
        self.keys = keys
    }

    public func encode(userID: String, sessionID: String, generation: Int64) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Self.message(userID, sessionID, generation), using: keys[0])
        return "\(Self.prefix).\(userID).\(sessionID).\(generation).\(Base64URL.encode(Array(mac)))"
    }

    /// Returns the session and generation only when the MAC checks out (compared in constant time).
    public func decode(_ token: String) -> Decoded? {
        guard token.utf8.count <= 256 else { return nil }
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 5, parts[0] == Self.prefix,
            !parts[1].isEmpty, parts[1].utf8.count <= 64, !parts[2].isEmpty, parts[2].utf8.count <= 64,
            let generation = Int64(parts[3]), generation > 0, String(generation) == parts[3],
            let mac = Base64URL.decode(parts[4]), mac.count == SHA256.byteCount
        else { return nil }
        let userID = String(parts[1])
        let sessionID = String(parts[2])
        let message = Self.message(userID, sessionID, generation)
        // Every key is tried (no early exit), so timing does not tell which key matched.
        var valid = false
        for key in keys where HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: message, using: key) { valid = true }
        guard valid else { return nil }
        return Decoded(userID: userID, sessionID: sessionID, generation: generation)
    }

    private static func message(_ userID: String, _ sessionID: String, _ generation: Int64) -> Data {
        Data("tessera refresh v1\u{0}\(userID)\u{0}\(sessionID)\u{0}\(generation)".utf8)
    }
}
