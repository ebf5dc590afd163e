import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Which store answers right now.
public enum StoreMode: String, Sendable {
    case primary
    case fallback
}

/// Serves from a local store while the primary (Redis) is unreachable, and writes what
/// happened meanwhile back to the primary when it returns.
///
/// The policy, documented in docs/REDIS.md:
/// - Sessions created during the outage live in the fallback store and are copied to the
///   primary on recovery, with their latest generation.
/// - Revocations made during the outage (logout, logout-all, re-use, denied tokens) are
///   replayed on the primary in order, so none is forgotten.
/// - A refresh of a session the fallback does not know (created before the outage) answers
///   "store unavailable" (503), not "invalid": the session is not lost, only out of reach.
/// - Revocations made *before* the outage on other instances are not known locally: an access
///   token revoked elsewhere may be accepted here until it expires (at most the access TTL).
///   Use the `none` policy where that is not acceptable.
public final class FallbackTokenStore: TokenStore, Service {
    public let primary: any TokenStore
    public let fallback: any TokenStore
    public var backendName: String { primary.backendName }
    private let logger: Logger
    private let probeInterval: Duration
    private let clock: any TesseraClock

    private enum JournalEntry: Sendable {
        case created(id: String, userID: String)
        case revoked(id: String, userID: String, accessTTL: TimeInterval)
        case revokedAll(userID: String, keeping: String?, accessTTL: TimeInterval)
        case denied(RevocationKey, userID: String, until: Date)
    }

    private struct State {
        var mode = StoreMode.primary
        var journal: [JournalEntry] = []
        var createdDuringOutage: Set<String> = []
        /// Fallback operations still running: the switch back waits for them.
        var inFlight = 0
        var transitions = 0
        var replayed = 0
    }

    private let state = Mutex(State())

    public init(
        primary: any TokenStore, fallback: any TokenStore, clock: any TesseraClock = SystemClock(),
        probeInterval: Duration = .milliseconds(500), logger: Logger
    ) {
        self.clock = clock
        self.primary = primary
        self.fallback = fallback
        self.probeInterval = probeInterval
        self.logger = logger
    }

    public var mode: StoreMode { state.withLock { $0.mode } }
    /// How many times the store switched between primary and fallback.
    public var transitions: Int { state.withLock { $0.transitions } }
    /// How many journal entries were written back to the primary.
    public var replayed: Int { state.withLock { $0.replayed } }

    // MARK: Routing

    /// Runs `operation` on the primary; on an outage switches to the fallback and runs
    /// `onFallback` there, journalling what it changed.
    private func route<T>(
        _ operation: (any TokenStore) async throws -> T,
        onFallback: (any TokenStore) async throws -> T
    ) async throws -> T {
        if mode == .primary {
            do {
                return try await operation(primary)
            } catch let error as StoreError {
                enterFallback(error)
            }
        }
        state.withLock { $0.inFlight += 1 }
        defer { state.withLock { $0.inFlight -= 1 } }
        return try await onFallback(fallback)
    }

    private func enterFallback(_ error: StoreError) {
        let switched = state.withLock { state -> Bool in
            guard state.mode == .primary else { return false }
            state.mode = .fallback
            state.transitions += 1
            return true
        }
        if switched {
            logger.warning(
                "token store unreachable; serving from the local fallback store",
                metadata: ["store": "\(primary.backendName)", "error": "\(error.message)"]
            )
        }
    }

    private func journal(_ entry: JournalEntry) {
        state.withLock { state in
            state.journal.append(entry)
            if case .created(let id, _) = entry { state.createdDuringOutage.insert(id) }
        }
    }

    // MARK: TokenStore

    public func createSession(_ session: SessionRecord) async throws {
        try await route({ try await $0.createSession(session) }) { store in
            try await store.createSession(session)
            journal(.created(id: session.id, userID: session.userID))
        }
    }

    public func session(id: String, userID: String) async throws -> SessionRecord? {
        try await route({ try await $0.session(id: id, userID: userID) }) { store in
            if let session = try await store.session(id: id, userID: userID) { return session }
            guard state.withLock({ $0.createdDuringOutage.contains(id) }) else { throw outage() }
            return nil
        }
    }

    public func sessions(userID: String) async throws -> [SessionRecord] {
        try await route({ try await $0.sessions(userID: userID) }) { _ in
            // A partial list would look like logged-out devices: say it is unavailable instead.
            throw outage()
        }
    }

    public func rotate(_ request: RotationRequest) async throws -> RotationOutcome {
        try await route({ try await $0.rotate(request) }) { store in
            guard state.withLock({ $0.createdDuringOutage.contains(request.sessionID) }) else { throw outage() }
            let outcome = try await store.rotate(request)
            switch outcome {
            case .reused:
                journal(.revoked(id: request.sessionID, userID: request.userID, accessTTL: request.revokedAccessTTL))
            case .rotated:
                // Copy the newest generation again, even if the creation was already replayed.
                journal(.created(id: request.sessionID, userID: request.userID))
            case .reissued, .invalid:
                break
            }
            return outcome
        }
    }

    public func revokeSession(id: String, userID: String, accessTTL: TimeInterval) async throws -> Bool {
        try await route({ try await $0.revokeSession(id: id, userID: userID, accessTTL: accessTTL) }) { store in
            let local = try await store.revokeSession(id: id, userID: userID, accessTTL: accessTTL)
            journal(.revoked(id: id, userID: userID, accessTTL: accessTTL))
            return local || !state.withLock { $0.createdDuringOutage.contains(id) }
        }
    }

    public func revokeAllSessions(userID: String, keeping: String?, accessTTL: TimeInterval) async throws -> Int {
        try await route({ try await $0.revokeAllSessions(userID: userID, keeping: keeping, accessTTL: accessTTL) }) { store in
            let count = try await store.revokeAllSessions(userID: userID, keeping: keeping, accessTTL: accessTTL)
            journal(.revokedAll(userID: userID, keeping: keeping, accessTTL: accessTTL))
            return count
        }
    }

    public func deny(_ key: RevocationKey, userID: String, until: Date) async throws {
        try await route({ try await $0.deny(key, userID: userID, until: until) }) { store in
            try await store.deny(key, userID: userID, until: until)
            journal(.denied(key, userID: userID, until: until))
        }
    }

    public func isRevoked(tokenID: String, sessionID: String, userID: String) async throws -> Bool {
        try await route({ try await $0.isRevoked(tokenID: tokenID, sessionID: sessionID, userID: userID) }) { store in
            try await store.isRevoked(tokenID: tokenID, sessionID: sessionID, userID: userID)
        }
    }

    public func putOneTimeToken(_ token: OneTimeToken) async throws {
        try await route({ try await $0.putOneTimeToken(token) }) { _ in
            // One-time tokens are not written back; refusing is clearer than losing them.
            throw outage()
        }
    }

    public func consumeOneTimeToken(kind: String, userID: String, hash: String) async throws -> OneTimeToken? {
        try await route({ try await $0.consumeOneTimeToken(kind: kind, userID: userID, hash: hash) }) { _ in throw outage() }
    }

    public func restoreOneTimeToken(_ token: OneTimeToken) async throws -> Bool {
        try await route({ try await $0.restoreOneTimeToken(token) }) { _ in throw outage() }
    }

    // Credentials are not written back either: they answer 503 during an outage.
    public func putCredential(_ credential: SessionCredential, limit: Int) async throws -> CredentialWrite {
        try await route({ try await $0.putCredential(credential, limit: limit) }) { _ in throw outage() }
    }

    public func credential(named name: String, sessionID: String, userID: String) async throws -> SessionCredential? {
        try await route({ try await $0.credential(named: name, sessionID: sessionID, userID: userID) }) { _ in throw outage() }
    }

    public func deleteCredential(named name: String, sessionID: String, userID: String) async throws -> Bool {
        try await route({ try await $0.deleteCredential(named: name, sessionID: sessionID, userID: userID) }) { _ in throw outage() }
    }

    public func acquireCredentialLease(named name: String, sessionID: String, userID: String, fence: String, ttl: TimeInterval) async throws
        -> Bool
    {
        try await route({ try await $0.acquireCredentialLease(named: name, sessionID: sessionID, userID: userID, fence: fence, ttl: ttl) }) {
            _ in throw outage()
        }
    }

    public func completeCredentialLease(_ credential: SessionCredential, fence: String) async throws -> Bool {
        try await route({ try await $0.completeCredentialLease(credential, fence: fence) }) { _ in throw outage() }
    }

    public func releaseCredentialLease(named name: String, sessionID: String, userID: String, fence: String) async throws {
        try await route({ try await $0.releaseCredentialLease(named: name, sessionID: sessionID, userID: userID, fence: fence) }) {
            _ in throw outage()
        }
    }

    /// The primary's counts; during an outage, those of the local fallback store.
    public func statistics() async throws -> TokenStoreStatistics {
        try await route({ try await $0.statistics() }) { try await $0.statistics() }
    }

    /// Answers for the primary: `/health` must show that it is down even while we serve.
    public func ping() async throws {
        try await primary.ping()
    }

    /// The primary's: while it is down its feed is not live (a Redis view out of sync), so
    /// followers ask Tessera, which answers from the fallback.
    public var revocationFeed: RevocationFeed? { primary.revocationFeed }
    public func liveRevocations() async throws -> [Revocation] { try await primary.liveRevocations() }

    public func purgeExpired() async throws -> Int {
        try await fallback.purgeExpired()
    }

    private func outage() -> StoreError {
        StoreError(backend: primary.backendName, message: "not available while the \(primary.backendName) store is unreachable")
    }

    // MARK: Recovery

    /// Probes the primary while in fallback mode and switches back once the journal is
    /// written through.
    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: self.probeInterval) }
            guard !Task.isShuttingDownGracefully, !Task.isCancelled else { return }
            if mode == .fallback {
                await recoverIfPossible()
            }
        }
    }

    /// Replays the journal onto the primary; returns true once back in primary mode.
    @discardableResult
    public func recoverIfPossible() async -> Bool {
        guard mode == .fallback else { return true }
        do {
            try await primary.ping()
            while true {
                let entries = state.withLock { state -> [JournalEntry]? in
                    if state.journal.isEmpty {
                        guard state.inFlight == 0 else { return [] }
                        state.mode = .primary
                        state.transitions += 1
                        state.createdDuringOutage = []
                        return nil
                    }
                    defer { state.journal = [] }
                    return state.journal
                }
                guard let entries else { break }
                if entries.isEmpty {
                    try await Task.sleep(for: .milliseconds(5))
                    continue
                }
                try await replay(entries)
            }
            logger.warning("token store reachable again; back on the primary store", metadata: ["store": "\(primary.backendName)"])
            _ = try? await fallback.purgeExpired()
            return true
        } catch {
            logger.debug("primary store still unreachable", metadata: ["error": "\(error)"])
            return false
        }
    }

    private func replay(_ entries: [JournalEntry]) async throws {
        for (index, entry) in entries.enumerated() {
            do {
                switch entry {
                case .created(let id, let userID):
                    // The latest state, with every rotation made during the outage.
                    if let session = try await fallback.session(id: id, userID: userID) {
                        try await primary.createSession(session)
                    }
                case .revoked(let id, let userID, let accessTTL):
                    _ = try await primary.revokeSession(id: id, userID: userID, accessTTL: accessTTL)
                    try await primary.deny(.session(id), userID: userID, until: clock.now().addingTimeInterval(accessTTL))
                case .revokedAll(let userID, let keeping, let accessTTL):
                    _ = try await primary.revokeAllSessions(userID: userID, keeping: keeping, accessTTL: accessTTL)
                case .denied(let key, let userID, let until):
                    try await primary.deny(key, userID: userID, until: until)
                }
                state.withLock { $0.replayed += 1 }
            } catch {
                // Put back what was not written, ahead of anything journalled since.
                state.withLock { $0.journal.insert(contentsOf: entries[index...], at: 0) }
                throw error
            }
        }
    }
}
