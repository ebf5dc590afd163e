import Foundation
import Synchronization

/// In-process token store for tests and single-process experiments: nothing survives a restart.
/// Expired entries are invisible on read and removed by `purgeExpired()` (see `ExpirySweeper`).
public final class MemoryTokenStore: TokenStore {
    private struct State {
        var sessions: [String: SessionRecord] = [:]
        var sessionsByUser: [String: Set<String>] = [:]
        var denylist: [String: Date] = [:]
        var oneTimeTokens: [String: OneTimeToken] = [:]
        var credentials: [String: [String: SessionCredential]] = [:]
        /// Per session, per credential name: the fence holding the refresh lease and its end.
        var leases: [String: [String: (fence: String, until: Date)]] = [:]

        mutating func dropSession(_ session: SessionRecord) {
            sessions[session.id] = nil
            credentials[session.id] = nil
            leases[session.id] = nil
            sessionsByUser[session.userID]?.remove(session.id)
            if sessionsByUser[session.userID]?.isEmpty == true { sessionsByUser[session.userID] = nil }
        }

        func liveSession(_ id: String, userID: String, now: Date) -> SessionRecord? {
            guard let session = sessions[id], session.isLive(at: now), session.userID == userID else { return nil }
            return session
        }
    }

    private let state = Mutex(State())
    private let clock: any TesseraClock
    public let backendName = "memory"

    public init(clock: any TesseraClock = SystemClock()) {
        self.clock = clock
    }

    public func createSession(_ session: SessionRecord) async throws {
        state.withLock { state in
            state.sessions[session.id] = session
            state.sessionsByUser[session.userID, default: []].insert(session.id)
        }
    }

    public func session(id: String, userID: String) async throws -> SessionRecord? {
        let now = clock.now()
        return state.withLock { $0.liveSession(id, userID: userID, now: now) }
    }

    public func sessions(userID: String) async throws -> [SessionRecord] {
        let now = clock.now()
        return state.withLock { state in
            (state.sessionsByUser[userID] ?? [])
                .compactMap { state.sessions[$0] }
                .filter { $0.isLive(at: now) }
                .sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }
        }
    }

    public func rotate(_ request: RotationRequest) async throws -> RotationOutcome {
        let now = clock.now()
        return state.withLock { state in
            switch RotationDecision(session: state.sessions[request.sessionID], request: request, now: now) {
            case .rotate(let session):
                state.sessions[session.id] = session
                return .rotated(session)
            case .reissue(let session):
                return .reissued(session)
            case .revoke(let session):
                self.remove(session, from: &state, denyUntil: now.addingTimeInterval(request.revokedAccessTTL))
                return .reused(userID: session.userID)
            case .invalid:
                return .invalid
            }
        }
    }

    public func revokeSession(id: String, userID: String, accessTTL: TimeInterval) async throws -> Bool {
        let now = clock.now()
        return state.withLock { state in
            guard let session = state.liveSession(id, userID: userID, now: now) else { return false }
            self.remove(session, from: &state, denyUntil: now.addingTimeInterval(accessTTL))
            return true
        }
    }

    public func revokeAllSessions(userID: String, keeping: String?, accessTTL: TimeInterval) async throws -> Int {
        let now = clock.now()
        return state.withLock { state in
            var count = 0
            for id in state.sessionsByUser[userID] ?? [] where id != keeping {
                guard let session = state.sessions[id] else { continue }
                if session.isLive(at: now) { count += 1 }
                self.remove(session, from: &state, denyUntil: now.addingTimeInterval(accessTTL))
            }
            return count
        }
    }

    private func remove(_ session: SessionRecord, from state: inout State, denyUntil: Date) {
        state.dropSession(session)
        deny(.session(session.id), until: denyUntil, in: &state)
    }

    /// Under the state lock, so a follower that subscribed before reading a snapshot sees the
    /// denial in one or the other.
    private func deny(_ key: RevocationKey, until: Date, in state: inout State) {
        state.denylist[key.storageKey] = max(state.denylist[key.storageKey] ?? until, until)
        feed.publish([Revocation(key, until: until)])
    }

    public func deny(_ key: RevocationKey, userID: String, until: Date) async throws {
        state.withLock { state in deny(key, until: until, in: &state) }
    }

    private let feed = RevocationFeed()
    public var revocationFeed: RevocationFeed? { feed }

    public func liveRevocations() async throws -> [Revocation] {
        let now = clock.now()
        return state.withLock { state in
            state.denylist.compactMap { key, until in
                until > now ? Revocation(storageKey: key, until: until.timeIntervalSince1970) : nil
            }
        }
    }

    public func isRevoked(tokenID: String, sessionID: String, userID: String) async throws -> Bool {
        let now = clock.now()
        return state.withLock { state in
            [RevocationKey.tokenID(tokenID), .session(sessionID)].contains { key in
                guard let until = state.denylist[key.storageKey] else { return false }
                return now < until
            }
        }
    }

    public func putOneTimeToken(_ token: OneTimeToken) async throws {
        state.withLock { state in
            state.oneTimeTokens[Self.oneTimeKey(token.kind, token.userID)] = token
        }
    }

    public func consumeOneTimeToken(kind: String, userID: String, hash: String) async throws -> OneTimeToken? {
        let now = clock.now()
        return state.withLock { state in
            let key = Self.oneTimeKey(kind, userID)
            guard let token = state.oneTimeTokens[key], token.hash == hash else { return nil }
            state.oneTimeTokens[key] = nil
            return now < token.expiresAt ? token : nil
        }
    }

    public func restoreOneTimeToken(_ token: OneTimeToken) async throws -> Bool {
        let now = clock.now()
        return state.withLock { state in
            let key = Self.oneTimeKey(token.kind, token.userID)
            if let current = state.oneTimeTokens[key], now < current.expiresAt { return false }
            guard now < token.expiresAt else { return false }
            state.oneTimeTokens[key] = token
            return true
        }
    }

    private static func oneTimeKey(_ kind: String, _ userID: String) -> String { "\(kind)\u{0}\(userID)" }

    public func putCredential(_ credential: SessionCredential, limit: Int) async throws -> CredentialWrite {
        let now = clock.now()
        return state.withLock { state in
            guard state.liveSession(credential.sessionID, userID: credential.userID, now: now) != nil else { return .sessionNotFound }
            let existing = state.credentials[credential.sessionID] ?? [:]
            guard existing[credential.name] != nil || existing.count < limit else { return .limitReached }
            state.credentials[credential.sessionID, default: [:]][credential.name] = credential
            return .stored
        }
    }

    public func credential(named name: String, sessionID: String, userID: String) async throws -> SessionCredential? {
        let now = clock.now()
        return state.withLock { state in
            guard state.liveSession(sessionID, userID: userID, now: now) != nil else { return nil }
            return state.credentials[sessionID]?[name]
        }
    }

    public func deleteCredential(named name: String, sessionID: String, userID: String) async throws -> Bool {
        let now = clock.now()
        return state.withLock { state in
            guard state.liveSession(sessionID, userID: userID, now: now) != nil else { return false }
            return state.credentials[sessionID]?.removeValue(forKey: name) != nil
        }
    }

    public func sealedCredentials() async throws -> [SessionCredential] {
        let now = clock.now()
        return state.withLock { state in
            state.credentials.values.flatMap(\.values).filter { state.liveSession($0.sessionID, userID: $0.userID, now: now) != nil }
        }
    }

    public func replaceSealedCredential(_ credential: SessionCredential, expected: String) async throws -> Bool {
        let now = clock.now()
        return state.withLock { state in
            guard state.liveSession(credential.sessionID, userID: credential.userID, now: now) != nil,
                state.credentials[credential.sessionID]?[credential.name]?.sealed == expected
            else { return false }
            state.credentials[credential.sessionID]?[credential.name] = credential
            return true
        }
    }

    public func acquireCredentialLease(named name: String, sessionID: String, userID: String, fence: String, ttl: TimeInterval) async throws
        -> Bool
    {
        let now = clock.now()
        return state.withLock { state in
            guard state.liveSession(sessionID, userID: userID, now: now) != nil else { return false }
            if let lease = state.leases[sessionID]?[name], now < lease.until { return false }
            state.leases[sessionID, default: [:]][name] = (fence, now.addingTimeInterval(ttl))
            return true
        }
    }

    public func completeCredentialLease(_ credential: SessionCredential, fence: String) async throws -> Bool {
        let now = clock.now()
        return state.withLock { state in
            guard let lease = state.leases[credential.sessionID]?[credential.name], lease.fence == fence, now < lease.until,
                state.liveSession(credential.sessionID, userID: credential.userID, now: now) != nil
            else { return false }
            state.leases[credential.sessionID]?[credential.name] = nil
            // Deleted meanwhile: it stays deleted.
            guard state.credentials[credential.sessionID]?[credential.name] != nil else { return false }
            state.credentials[credential.sessionID]?[credential.name] = credential
            return true
        }
    }

    public func releaseCredentialLease(named name: String, sessionID: String, userID: String, fence: String) async throws {
        state.withLock { state in
            if state.leases[sessionID]?[name]?.fence == fence { state.leases[sessionID]?[name] = nil }
        }
    }

    public func statistics() async throws -> TokenStoreStatistics {
        let now = clock.now()
        return state.withLock { state in
            TokenStoreStatistics(
                liveSessions: state.sessions.values.count { $0.isLive(at: now) },
                deniedTokens: state.denylist.values.count { now < $0 },
                pendingOneTimeTokens: state.oneTimeTokens.values.filter { now < $0.expiresAt }
                    .reduce(into: [:]) { $0[$1.kind, default: 0] += 1 }
            )
        }
    }

    public func ping() async throws {}

    public func purgeExpired() async throws -> Int {
        let now = clock.now()
        return state.withLock { state in
            let before = state.sessions.count + state.denylist.count + state.oneTimeTokens.count
            for session in state.sessions.values where !session.isLive(at: now) {
                state.dropSession(session)
            }
            state.denylist = state.denylist.filter { now < $0.value }
            state.oneTimeTokens = state.oneTimeTokens.filter { now < $0.value.expiresAt }
            state.leases = state.leases.compactMapValues { leases in
                let live = leases.filter { now < $0.value.until }
                return live.isEmpty ? nil : live
            }
            return before - (state.sessions.count + state.denylist.count + state.oneTimeTokens.count)
        }
    }
}

public final class MemoryUserStore: UserStore {
    private struct State {
        var byID: [String: User] = [:]
        var idByEmail: [String: String] = [:]
        var recoveryCodes: [String: Set<String>] = [:]
    }

    private let state = Mutex(State())
    public let backendName = "memory"

    public init() {}

    public func createUser(_ user: User) async throws {
        try state.withLock { state in
            guard state.idByEmail[user.email] == nil else { throw UserStoreError.emailTaken }
            state.byID[user.id] = user
            state.idByEmail[user.email] = user.id
        }
    }

    public func user(id: String) async throws -> User? {
        state.withLock { $0.byID[id] }
    }

    public func user(email: String) async throws -> User? {
        state.withLock { state in state.idByEmail[email].flatMap { state.byID[$0] } }
    }

    public func updateUser(_ user: User) async throws {
        try state.withLock { state in
            guard let old = state.byID[user.id] else { throw UserStoreError.notFound }
            if old.email != user.email {
                guard state.idByEmail[user.email] == nil else { throw UserStoreError.emailTaken }
                state.idByEmail[old.email] = nil
                state.idByEmail[user.email] = user.id
            }
            state.byID[user.id] = user
        }
    }

    public func replaceRecoveryCodes(userID: String, hashes: [String]) async throws {
        state.withLock { $0.recoveryCodes[userID] = hashes.isEmpty ? nil : Set(hashes) }
    }

    public func consumeRecoveryCode(userID: String, hash: String) async throws -> Bool {
        state.withLock { $0.recoveryCodes[userID]?.remove(hash) != nil }
    }

    public func recoveryCodeCount(userID: String) async throws -> Int {
        state.withLock { $0.recoveryCodes[userID]?.count ?? 0 }
    }

    public func deleteUser(id: String) async throws -> Bool {
        state.withLock { state in
            guard let user = state.byID.removeValue(forKey: id) else { return false }
            state.idByEmail[user.email] = nil
            state.recoveryCodes[id] = nil
            return true
        }
    }

    public func sealedMFASecrets() async throws -> [SealedSecret] {
        state.withLock { state in
            state.byID.values.compactMap { user in user.mfaSecret.map { SealedSecret(ownerID: user.id, sealed: $0) } }
        }
    }

    public func replaceMFASecret(userID: String, expected: String, with sealed: String) async throws -> Bool {
        state.withLock { state in
            guard state.byID[userID]?.mfaSecret == expected else { return false }
            state.byID[userID]?.mfaSecret = sealed
            return true
        }
    }
}

/// Rate-limit state of one process: right for the embedded stores (SQLite, memory), where
/// one process serves every request. Expired entries are dropped by `purgeExpired()`.
public final class MemoryRateLimitStore: RateLimitStore {
    private struct State {
        var arrivals: [String: Date] = [:]
        var failures: [String: (count: Int, expiresAt: Date)] = [:]
        var claims: [String: Date] = [:]
    }

    private let state = Mutex(State())
    private let clock: any TesseraClock
    public let backendName = "memory"

    public init(clock: any TesseraClock = SystemClock()) {
        self.clock = clock
    }

    public func acquire(_ key: String, limit: RateLimit) async throws -> RateLimitDecision {
        let now = clock.now()
        return state.withLock { state in
            let (decision, next) = GCRA.decide(storedArrival: state.arrivals[key], now: now, limit: limit)
            if let next { state.arrivals[key] = next }
            return decision
        }
    }

    public func recordFailure(_ key: String, window: TimeInterval) async throws -> Int {
        let now = clock.now()
        return state.withLock { state in
            let current = state.failures[key].flatMap { now < $0.expiresAt ? $0.count : nil } ?? 0
            state.failures[key] = (current + 1, now.addingTimeInterval(window))
            return current + 1
        }
    }

    public func failures(_ key: String) async throws -> (count: Int, resetsIn: TimeInterval) {
        let now = clock.now()
        return state.withLock { state in
            guard let entry = state.failures[key], now < entry.expiresAt else { return (0, 0) }
            return (entry.count, entry.expiresAt.timeIntervalSince(now))
        }
    }

    public func clearFailures(_ key: String) async throws {
        state.withLock { _ = $0.failures.removeValue(forKey: key) }
    }

    public func claimOnce(_ key: String, ttl: TimeInterval) async throws -> Bool {
        let now = clock.now()
        return state.withLock { state in
            if let until = state.claims[key], now < until { return false }
            state.claims[key] = now.addingTimeInterval(ttl)
            return true
        }
    }

    /// Drops state that no longer affects any decision.
    public func purgeExpired() -> Int {
        let now = clock.now()
        return state.withLock { state in
            let before = state.arrivals.count + state.failures.count + state.claims.count
            state.arrivals = state.arrivals.filter { now < $0.value }
            state.failures = state.failures.filter { now < $0.value.expiresAt }
            state.claims = state.claims.filter { now < $0.value }
            return before - (state.arrivals.count + state.failures.count + state.claims.count)
        }
    }
}

/// A bounded in-process user cache for single-process deployments.
public final class MemoryUserCache: UserCache {
    private let entries = Mutex([String: (user: User, expiresAt: Date)]())
    private let clock: any TesseraClock
    private let capacity: Int
    public let backendName = "memory"

    public init(capacity: Int = 100_000, clock: any TesseraClock = SystemClock()) {
        self.capacity = capacity
        self.clock = clock
    }

    public func user(id: String) async throws -> User? {
        let now = clock.now()
        return entries.withLock { entries in
            guard let entry = entries[id] else { return nil }
            guard now < entry.expiresAt else {
                entries[id] = nil
                return nil
            }
            return entry.user
        }
    }

    public func store(_ user: User, ttl: TimeInterval) async throws {
        let now = clock.now()
        entries.withLock { entries in
            if entries.count >= capacity, entries[user.id] == nil {
                // Full: drop what has expired, else an arbitrary entry. A cache, not a store.
                entries = entries.filter { now < $0.value.expiresAt }
                if entries.count >= capacity, let victim = entries.keys.first { entries[victim] = nil }
            }
            entries[user.id] = (user.withoutSecrets, now.addingTimeInterval(ttl))
        }
    }

    public func invalidate(userID: String) async throws {
        entries.withLock { _ = $0.removeValue(forKey: userID) }
    }
}
