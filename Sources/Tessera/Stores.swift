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
    /// A logout: ends one session as `revokeSession` does and denies the access token `tokenID`
    /// until `tokenExpiresAt` (even when the session was already gone), in one step where the
    /// store can (one Redis script, so one round trip and one replica acknowledgement).
    func endSession(id: String, userID: String, accessTTL: TimeInterval, tokenID: String, tokenExpiresAt: Date) async throws -> Bool
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
    /// Puts a consumed token back only if the user has no token of that kind now, in one step
    /// (compare-and-set): a token issued meanwhile wins. Returns false when it was not stored.
    func restoreOneTimeToken(_ token: OneTimeToken) async throws -> Bool

    /// Stores or replaces a credential on a live session. At most `limit` names per session.
    func putCredential(_ credential: SessionCredential, limit: Int) async throws -> CredentialWrite
    /// The credential if its session is live and belongs to the user.
    func credential(named name: String, sessionID: String, userID: String) async throws -> SessionCredential?
    /// Returns false when there was no such credential on a live session of the user.
    func deleteCredential(named name: String, sessionID: String, userID: String) async throws -> Bool

    /// Takes a lease of `ttl` on one credential under the caller's random `fence`, so that one
    /// caller at a time (across instances on a shared store) refreshes it upstream. False while
    /// another fence holds an unexpired lease; a holder that dies blocks others for at most `ttl`.
    func acquireCredentialLease(named name: String, sessionID: String, userID: String, fence: String, ttl: TimeInterval) async throws
        -> Bool
    /// In one step: only while `fence` still holds the lease and the session is live, replaces
    /// the credential and ends the lease. False (nothing written) when the lease was lost.
    func completeCredentialLease(_ credential: SessionCredential, fence: String) async throws -> Bool
    /// Ends the lease if `fence` still holds it.
    func releaseCredentialLease(named name: String, sessionID: String, userID: String, fence: String) async throws

    /// Every credential on a live session, for re-sealing under a new encryption key. May scan;
    /// not for hot paths.
    func sealedCredentials() async throws -> [SessionCredential]
    /// Replaces the credential's sealed value (and time) only while it is still `expected` and
    /// its session is live, in one step (compare-and-set): a re-seal never undoes a newer write.
    func replaceSealedCredential(_ credential: SessionCredential, expected: String) async throws -> Bool

    /// Live counts for the admin endpoint. May scan; not for hot paths.
    func statistics() async throws -> TokenStoreStatistics

    /// Round trip to the backing store; throws when it is unreachable.
    func ping() async throws
    /// Deletes expired rows; returns how many. Stores with native TTLs may return 0.
    func purgeExpired() async throws -> Int

    /// Every denial as it is written, for the revocation stream; nil: this store cannot push
    /// denials (followers must ask Tessera instead).
    var revocationFeed: RevocationFeed? { get }
    /// The live denylist. Read it after `revocationFeed?.follow()`, never before.
    func liveRevocations() async throws -> [Revocation]
}

extension TokenStore {
    public var revocationFeed: RevocationFeed? { nil }
    public func liveRevocations() async throws -> [Revocation] { [] }

    /// Two steps, for stores where each is local anyway.
    public func endSession(id: String, userID: String, accessTTL: TimeInterval, tokenID: String, tokenExpiresAt: Date) async throws -> Bool {
        let ended = try await revokeSession(id: id, userID: userID, accessTTL: accessTTL)
        try await deny(.tokenID(tokenID), userID: userID, until: tokenExpiresAt)
        return ended
    }
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

    /// Replaces every MFA recovery code of the user (stored as hashes only); an empty list
    /// deletes them.
    func replaceRecoveryCodes(userID: String, hashes: [String]) async throws
    /// Deletes the user's recovery code with this hash in one step; true when there was one, so
    /// that a code works once even under concurrent use.
    func consumeRecoveryCode(userID: String, hash: String) async throws -> Bool
    /// How many unused recovery codes the user has.
    func recoveryCodeCount(userID: String) async throws -> Int

    /// Deletes the user and their recovery codes; false for an unknown id.
    func deleteUser(id: String) async throws -> Bool
    /// Every stored MFA secret (owner = user id), for re-sealing under a new encryption key.
    func sealedMFASecrets() async throws -> [SealedSecret]
    /// Replaces the user's sealed MFA secret only while it is still `expected`, in one step
    /// (compare-and-set), so a re-seal never undoes a concurrent enrolment or reset.
    func replaceMFASecret(userID: String, expected: String, with sealed: String) async throws -> Bool
}

/// Short-lived counters for rate limits, login regulation and one-shot claims. On Redis they
/// are shared by every instance; the memory implementation is local to one process.
public protocol RateLimitStore: Sendable {
    var backendName: String { get }
    /// Admits one request under `key` against `limit` (GCRA) in one atomic step.
    func acquire(_ key: String, limit: RateLimit) async throws -> RateLimitDecision
    /// Adds a failure under `key`; the count is forgotten `window` after the last failure.
    /// Returns the new count.
    func recordFailure(_ key: String, window: TimeInterval) async throws -> Int
    /// The current failure count and how long until it is forgotten.
    func failures(_ key: String) async throws -> (count: Int, resetsIn: TimeInterval)
    func clearFailures(_ key: String) async throws
    /// True for the first claim of `key` within `ttl`, false for every later one.
    func claimOnce(_ key: String, ttl: TimeInterval) async throws -> Bool
}

/// A cache of user records without their secrets (`User.withoutSecrets`), read on every
/// authenticated request. Shared on Redis so that an invalidation reaches every instance.
public protocol UserCache: Sendable {
    var backendName: String { get }
    func user(id: String) async throws -> User?
    func store(_ user: User, ttl: TimeInterval) async throws
    func invalidate(userID: String) async throws
}

/// The store could not answer. Callers must treat this as "unknown", never as "absent".
///
/// `kind` says what to do about it: only an unreachable store is an outage (the fallback
/// policy applies); an overloaded one is retried by the client (503 with `Retry-After`); a
/// failed operation is a fault to log (500).
public struct StoreError: Error, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable {
        /// The store cannot be reached.
        case unavailable
        /// The store is alive but did not take the operation in time.
        case overloaded
        /// The store answered with an error: a bug or bad data, which a retry will not fix.
        case failed
    }

    public var backend: String
    public var message: String
    public var kind: Kind
    /// The command or script that failed (its name only, never its arguments), for logs.
    public var operation: String?

    public init(backend: String, message: String, kind: Kind = .unavailable, operation: String? = nil) {
        self.backend = backend
        self.message = message
        self.kind = kind
        self.operation = operation
    }

    public var description: String {
        let what = operation.map { " (\($0))" } ?? ""
        switch kind {
        case .unavailable: return "\(backend) store unavailable\(what): \(message)"
        case .overloaded: return "\(backend) store overloaded\(what): \(message)"
        case .failed: return "\(backend) store operation failed\(what): \(message)"
        }
    }
}

/// What an instance knows of the shared denylist without asking the store (the Redis store's
/// local revocation view). The fallback consults it while the store is unreachable, so an
/// outage does not make it forget revocations it had seen.
public protocol KnownRevocations: Sendable {
    /// True when a denial of the token or of its session, still in force, is known here.
    func knownRevoked(tokenID: String, sessionID: String, userID: String) -> Bool
    /// Every denial still in force known here. The fallback writes them to its journal when an
    /// outage starts, so an instance restarted before the store returns still refuses them.
    func knownDenials() -> [KnownDenial]
}

/// One denial from `KnownRevocations.knownDenials()`.
public struct KnownDenial: Sendable, Hashable {
    public var key: RevocationKey
    public var userID: String
    public var until: Date

    public init(key: RevocationKey, userID: String, until: Date) {
        self.key = key
        self.userID = userID
        self.until = until
    }
}
