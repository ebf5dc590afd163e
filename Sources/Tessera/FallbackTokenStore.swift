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
///   replayed on the primary in order, so none is forgotten. With a `FallbackJournal` each is
///   on disk before it is acknowledged, and a restarted instance replays what it finds there.
/// - A revocation covers the whole session id (and logout-all every session of the user) even
///   when the session was created before the outage and is not in the fallback store.
/// - The fallback starts from everything this instance knew: `knownRevocations` (the local
///   revocation view's denylist) is consulted for every token while the primary is away, and
///   is written to the journal file when the outage starts (noticed by a request or by the
///   probe, within `probeInterval`), so a restart during the outage keeps refusing what was
///   revoked before it.
/// - A refresh of a session the fallback does not know (created before the outage) answers
///   "store unavailable" (503), not "invalid": the session is not lost, only out of reach.
/// - Revocations that this instance never saw (made on other instances during the outage, or
///   before it started) are not known locally: such an access token may be accepted here until
///   it expires (at most the access TTL). Use the `none` policy where that is not acceptable.
public final class FallbackTokenStore: TokenStore, Service {
    public let primary: any TokenStore
    public let fallback: any TokenStore
    public var backendName: String { primary.backendName }
    private let logger: Logger
    private let probeInterval: Duration
    private let clock: any TesseraClock
    private let journalFile: FallbackJournal?
    private let knownRevocations: (any KnownRevocations)?

    private enum JournalEntry: Sendable {
        /// A session created or rotated during the outage; held in memory only.
        case created(id: String, userID: String)
        /// A revocation, also in the journal file when there is one.
        case revocation(FallbackJournal.Entry)
    }

    /// Logout-all during the outage: every session of the user older than the outage is
    /// refused, except `keeping`.
    private struct Cutoff {
        var keeping: String?
        var until: Date
    }

    private struct State {
        var mode = StoreMode.primary
        var journal: [JournalEntry] = []
        var createdDuringOutage: Set<String> = []
        /// Denials made during the outage, by `denialKey`, including sessions the fallback
        /// store does not hold.
        var denials: [String: Date] = [:]
        var cutoffs: [String: Cutoff] = [:]
        /// Fallback operations still running: the switch back waits for them.
        var inFlight = 0
        /// The primary answers again and the journal is being written back.
        var recovering = false
        var transitions = 0
        var replayed = 0

        mutating func apply(_ entry: FallbackJournal.Entry, now: Date) {
            switch entry {
            case .revoked(let id, let userID, let accessTTL):
                deny(FallbackTokenStore.denialKey(userID, .session(id)), until: now.addingTimeInterval(accessTTL))
            case .revokedAll(let userID, let keeping, let accessTTL):
                let until = now.addingTimeInterval(accessTTL)
                if let current = cutoffs[userID] {
                    // A session kept by one logout-all and not by another is ended by the other.
                    cutoffs[userID] = Cutoff(keeping: current.keeping == keeping ? keeping : nil, until: max(current.until, until))
                } else {
                    cutoffs[userID] = Cutoff(keeping: keeping, until: until)
                }
            case .denied(let key, let userID, let until):
                deny(FallbackTokenStore.denialKey(userID, key), until: until)
            }
        }

        private mutating func deny(_ key: String, until: Date) {
            denials[key] = max(denials[key] ?? until, until)
        }

        func refuses(tokenID: String, sessionID: String, userID: String, now: Date) -> Bool {
            for key in [RevocationKey.tokenID(tokenID), .session(sessionID)] {
                if let until = denials[FallbackTokenStore.denialKey(userID, key)], now < until { return true }
            }
            guard let cutoff = cutoffs[userID], now < cutoff.until, sessionID != cutoff.keeping else { return false }
            // Sessions created during the outage are in the fallback store, which knows whether
            // the logout-all ended them; every other session is older than the logout-all.
            return !createdDuringOutage.contains(sessionID)
        }
    }

    private let state = Mutex(State())

    /// - Parameters:
    ///   - journal: where revocations made during an outage are kept until the primary has
    ///     them; what it already holds (left by a previous process) is replayed first, and the
    ///     store starts in fallback mode until it has been.
    ///   - knownRevocations: what this instance knows of the primary's denylist (the local
    ///     revocation view), consulted while the primary is unreachable.
    public init(
        primary: any TokenStore, fallback: any TokenStore, clock: any TesseraClock = SystemClock(),
        probeInterval: Duration = .milliseconds(500), journal: FallbackJournal? = nil,
        knownRevocations: (any KnownRevocations)? = nil, logger: Logger
    ) {
        self.clock = clock
        self.primary = primary
        self.fallback = fallback
        self.probeInterval = probeInterval
        self.logger = logger
        self.journalFile = journal
        self.knownRevocations = knownRevocations
        if let recovered = journal?.recovered, !recovered.isEmpty {
            let now = clock.now()
            state.withLock { state in
                state.mode = .fallback
                state.transitions += 1
                for entry in recovered {
                    state.apply(entry, now: now)
                    state.journal.append(.revocation(entry))
                }
            }
            logger.warning(
                "revocations from an earlier outage are not yet on the primary store; serving from the fallback until they are",
                metadata: ["journal": "\(journal?.path ?? "")", "entries": "\(recovered.count)"]
            )
        }
    }

    public var mode: StoreMode { state.withLock { $0.mode } }
    /// How many times the store switched between primary and fallback.
    public var transitions: Int { state.withLock { $0.transitions } }
    /// How many journal entries were written back to the primary.
    public var replayed: Int { state.withLock { $0.replayed } }

    static func denialKey(_ userID: String, _ key: RevocationKey) -> String { "\(userID)\u{0}\(key.storageKey)" }

    // MARK: Routing

    /// Runs `operation` on the primary; on an outage switches to the fallback and runs
    /// `onFallback` there, journalling what it changed.
    private func route<T>(
        _ operation: (any TokenStore) async throws -> T,
        onFallback: (any TokenStore) async throws -> T
    ) async throws -> T {
        if state.withLock({ $0.mode == .fallback && $0.recovering }) { await waitWhileRecovering() }
        // Counted in flight in the same step as the mode is read, so the switch back cannot
        // happen between the two and strand what this operation journals.
        let inFallback = state.withLock { state -> Bool in
            guard state.mode == .fallback else { return false }
            state.inFlight += 1
            return true
        }
        if !inFallback {
            do {
                return try await operation(primary)
            } catch let error as StoreError where error.kind == .unavailable {
                // Only an outage switches: a store that is busy or answered with an error is
                // still the one every instance shares, and a fallback would split them.
                enterFallback(error)
            }
        }
        defer { state.withLock { $0.inFlight -= 1 } }
        return try await onFallback(fallback)
    }

    /// While the journal is written back, a new operation waits (at most 2 s) for the switch
    /// instead of adding to the journal: under a steady load the switch would otherwise seldom
    /// find no fallback operation in flight, and recovery would take many seconds.
    private func waitWhileRecovering() async {
        let deadline = ContinuousClock.now + .seconds(2)
        while state.withLock({ $0.mode == .fallback && $0.recovering }), ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    /// Switches to the fallback (if not already there); a caller that goes on to run there is
    /// counted in flight in the same step, so the switch back cannot strand its journal entry.
    private func enterFallback(_ error: StoreError, countingCaller: Bool = true) {
        let switched = state.withLock { state -> Bool in
            if countingCaller { state.inFlight += 1 }
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
            keepKnownDenials()
        }
    }

    /// Writes what this instance knows of the primary's denylist to the journal file, so that
    /// an instance restarted before the primary returns still refuses tokens revoked before the
    /// outage (it cannot load them from the primary). Replaying them later is harmless.
    private func keepKnownDenials() {
        guard let journalFile, let known = knownRevocations?.knownDenials(), !known.isEmpty else { return }
        do {
            try journalFile.append(known.map { .denied(key: $0.key, userID: $0.userID, until: $0.until) })
            logger.info("known revocations kept in the outage journal", metadata: ["count": "\(known.count)"])
        } catch {
            logger.error(
                "known revocations not kept in the outage journal: a restart before the store returns will not know them",
                metadata: ["error": "\(error)"]
            )
        }
    }

    private func journal(_ entry: JournalEntry) {
        state.withLock { state in
            state.journal.append(entry)
            if case .created(let id, _) = entry { state.createdDuringOutage.insert(id) }
        }
    }

    /// Puts a revocation in force here at once, queues it for the primary, and returns only
    /// once it is on disk. Throws when it cannot be made durable: the caller answers 503 and
    /// the client retries (the revocation still holds in this process).
    private func revoke(_ entry: FallbackJournal.Entry) throws {
        let now = clock.now()
        state.withLock { state in
            state.apply(entry, now: now)
            state.journal.append(.revocation(entry))
        }
        try journalFile?.append([entry])
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
                try revoke(.revoked(id: request.sessionID, userID: request.userID, accessTTL: request.revokedAccessTTL))
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
            try await revokeSessionDuringOutage(store, id: id, userID: userID, accessTTL: accessTTL)
        }
    }

    public func endSession(id: String, userID: String, accessTTL: TimeInterval, tokenID: String, tokenExpiresAt: Date) async throws -> Bool {
        try await route({
            try await $0.endSession(id: id, userID: userID, accessTTL: accessTTL, tokenID: tokenID, tokenExpiresAt: tokenExpiresAt)
        }) { store in
            let ended = try await revokeSessionDuringOutage(store, id: id, userID: userID, accessTTL: accessTTL)
            try await denyDuringOutage(store, .tokenID(tokenID), userID: userID, until: tokenExpiresAt)
            return ended
        }
    }

    private func revokeSessionDuringOutage(_ store: any TokenStore, id: String, userID: String, accessTTL: TimeInterval) async throws -> Bool {
        let local = try await store.revokeSession(id: id, userID: userID, accessTTL: accessTTL)
        // Denies the session id here too: a session from before the outage is not in `store`.
        try revoke(.revoked(id: id, userID: userID, accessTTL: accessTTL))
        return local || !state.withLock { $0.createdDuringOutage.contains(id) }
    }

    private func denyDuringOutage(_ store: any TokenStore, _ key: RevocationKey, userID: String, until: Date) async throws {
        try await store.deny(key, userID: userID, until: until)
        try revoke(.denied(key: key, userID: userID, until: until))
    }

    public func revokeAllSessions(userID: String, keeping: String?, accessTTL: TimeInterval) async throws -> Int {
        try await route({ try await $0.revokeAllSessions(userID: userID, keeping: keeping, accessTTL: accessTTL) }) { store in
            let count = try await store.revokeAllSessions(userID: userID, keeping: keeping, accessTTL: accessTTL)
            try revoke(.revokedAll(userID: userID, keeping: keeping, accessTTL: accessTTL))
            return count
        }
    }

    public func deny(_ key: RevocationKey, userID: String, until: Date) async throws {
        try await route({ try await $0.deny(key, userID: userID, until: until) }) { store in
            try await denyDuringOutage(store, key, userID: userID, until: until)
        }
    }

    public func isRevoked(tokenID: String, sessionID: String, userID: String) async throws -> Bool {
        try await route({ try await $0.isRevoked(tokenID: tokenID, sessionID: sessionID, userID: userID) }) { store in
            let now = clock.now()
            if state.withLock({ $0.refuses(tokenID: tokenID, sessionID: sessionID, userID: userID, now: now) }) { return true }
            if knownRevocations?.knownRevoked(tokenID: tokenID, sessionID: sessionID, userID: userID) == true { return true }
            return try await store.isRevoked(tokenID: tokenID, sessionID: sessionID, userID: userID)
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

    public func sealedCredentials() async throws -> [SessionCredential] {
        try await route({ try await $0.sealedCredentials() }) { _ in throw outage() }
    }

    public func replaceSealedCredential(_ credential: SessionCredential, expected: String) async throws -> Bool {
        try await route({ try await $0.replaceSealedCredential(credential, expected: expected) }) { _ in throw outage() }
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

    /// Probes the primary every `probeInterval`: in primary mode to notice an outage that no
    /// request has met yet (the known denials then go to the journal at once, before a crash
    /// could lose them), in fallback mode to switch back once the journal is written through.
    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: self.probeInterval) }
            guard !Task.isShuttingDownGracefully, !Task.isCancelled else { break }
            if mode == .fallback {
                await recoverIfPossible()
            } else {
                await switchIfUnreachable()
            }
        }
        // Once more at shutdown: the next process must find the denials if the outage began.
        await switchIfUnreachable()
    }

    /// Switches to the fallback when the primary does not answer a ping.
    public func switchIfUnreachable() async {
        guard mode == .primary else { return }
        do {
            try await primary.ping()
        } catch let error as StoreError where error.kind == .unavailable {
            enterFallback(error, countingCaller: false)
        } catch {}
    }

    /// Replays the journal onto the primary; returns true once back in primary mode.
    @discardableResult
    public func recoverIfPossible() async -> Bool {
        guard mode == .fallback else { return true }
        do {
            try await primary.ping()
            state.withLock { $0.recovering = true }
            defer { state.withLock { $0.recovering = false } }
            while true {
                let entries = state.withLock { state -> [JournalEntry]? in
                    if state.journal.isEmpty {
                        guard state.inFlight == 0 else { return [] }
                        state.mode = .primary
                        state.transitions += 1
                        state.createdDuringOutage = []
                        state.denials = [:]
                        state.cutoffs = [:]
                        // Emptied in the same step as the switch: a new outage cannot append
                        // in between. Entries left in a file that could not be emptied are
                        // replayed again at the next start, which is harmless.
                        do {
                            try journalFile?.clear()
                        } catch {
                            logger.error("outage journal not emptied", metadata: ["error": "\(error)"])
                        }
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
                case .revocation(.revoked(let id, let userID, let accessTTL)):
                    _ = try await primary.revokeSession(id: id, userID: userID, accessTTL: accessTTL)
                    try await primary.deny(.session(id), userID: userID, until: clock.now().addingTimeInterval(accessTTL))
                case .revocation(.revokedAll(let userID, let keeping, let accessTTL)):
                    _ = try await primary.revokeAllSessions(userID: userID, keeping: keeping, accessTTL: accessTTL)
                case .revocation(.denied(let key, let userID, let until)):
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
