import Foundation

/// Sessions, refresh-token generations, the access-token denylist and one-time tokens.
///
/// Every compound operation is a single call so a networked store can make it one atomic
/// round trip (a Lua script, a transaction) instead of a racy get-then-set.
/// A store that cannot be reached throws `StoreError`, never answers "absent".
/// Operations name the user because a networked store keeps all of a user's keys together
/// (one Redis Cluster slot), so that revoking every session of a user is one atomic step.
public protocol TokenStore: Sendable {
    /// A short name for logs and `/health`: "memory", "sqlite", "redis".
    var backendName: String { get }

    func createSession(_ session: SessionRecord) async throws
    /// The session if it exists, is live and belongs to the user.
    func session(id: String, userID: String) async throws -> SessionRecord?
    /// The user's live sessions, oldest first.
    func sessions(userID: String) async throws -> [SessionRecord]
    /// Atomically validate a presented generation and rotate, re-issue or revoke.
    func rotate(_ request: RotationRequest) async throws -> RotationOutcome
    /// Ends one session and denies its access tokens for `accessTTL`. Returns false when the
    /// user had no live session of that id.
    func revokeSession(id: String, userID: String, accessTTL: TimeInterval) async throws -> Bool
    /// Ends every session of the user except `keeping`, and denies their access tokens.
    /// Returns how many were ended.
    func revokeAllSessions(userID: String, keeping: String?, accessTTL: TimeInterval) async throws -> Int

    /// Denies an access-token id (or session) of the user until `until`.
    func deny(_ key: RevocationKey, userID: String, until: Date) async throws
    /// Whether an access token with this `jti` in this session of this user has been revoked.
    func isRevoked(tokenID: String, sessionID: String, userID: String) async throws -> Bool

    /// Stores a one-time token, replacing any other token of the same kind for the same user
    /// (a user has at most one live token of each kind).
    func putOneTimeToken(_ token: OneTimeToken) async throws
    /// Returns and deletes the user's token of this kind if its hash matches, in one step;
    /// nil when unknown, expired, replaced or already used.
    func consumeOneTimeToken(kind: String, userID: String, hash: String) async throws -> OneTimeToken?

    /// Round trip to the backing store; throws when it is unreachable.
    func ping() async throws
    /// Deletes expired rows; returns how many. Stores with native TTLs may return 0.
    func purgeExpired() async throws -> Int
}

public enum UserStoreError: Error, Equatable {
    case emailTaken
    case notFound
}

public protocol UserStore: Sendable {
    var backendName: String { get }
    /// Throws `UserStoreError.emailTaken` when the (normalised) email exists.
    func createUser(_ user: User) async throws
    func user(id: String) async throws -> User?
    func user(email: String) async throws -> User?
    /// Throws `UserStoreError.notFound` for an unknown id.
    func updateUser(_ user: User) async throws
}

/// The store could not answer. Callers must treat this as "unknown", never as "absent".
public struct StoreError: Error, CustomStringConvertible {
    public var backend: String
    public var message: String

    public init(backend: String, message: String) {
        self.backend = backend
        self.message = message
    }

    public var description: String { "\(backend) store unavailable: \(message)" }
}
