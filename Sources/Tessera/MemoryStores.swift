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
        return state.withLock { state in
            guard let session = state.sessions[id], session.isLive(at: now), session.userID == userID else { return nil }
            return session
        }
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
                Self.remove(session, from: &state, denyUntil: now.addingTimeInterval(request.revokedAccessTTL))
                return .reused(userID: session.userID)
            case .invalid:
                return .invalid
            }
        }
    }

    public func revokeSession(id: String, userID: String, accessTTL: TimeInterval) async throws -> Bool {
        let now = clock.now()
        return state.withLock { state in
            guard let session = state.sessions[id], session.isLive(at: now), session.userID == userID else {
                return false
            }
            Self.remove(session, from: &state, denyUntil: now.addingTimeInterval(accessTTL))
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
                Self.remove(session, from: &state, denyUntil: now.addingTimeInterval(accessTTL))
            }
            return count
        }
    }

    private static func remove(_ session: SessionRecord, from state: inout State, denyUntil: Date) {
        state.sessions[session.id] = nil
        state.sessionsByUser[session.userID]?.remove(session.id)
        if state.sessionsByUser[session.userID]?.isEmpty == true { state.sessionsByUser[session.userID] = nil }
        let key = RevocationKey.session(session.id).storageKey
        state.denylist[key] = max(state.denylist[key] ?? denyUntil, denyUntil)
    }

    public func deny(_ key: RevocationKey, userID: String, until: Date) async throws {
        state.withLock { state in
            state.denylist[key.storageKey] = max(state.denylist[key.storageKey] ?? until, until)
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

    private static func oneTimeKey(_ kind: String, _ userID: String) -> String { "\(kind)\u{0}\(userID)" }

    public func ping() async throws {}

    public func purgeExpired() async throws -> Int {
        let now = clock.now()
        return state.withLock { state in
            let before = state.sessions.count + state.denylist.count + state.oneTimeTokens.count
            for session in state.sessions.values where !session.isLive(at: now) {
                state.sessions[session.id] = nil
                state.sessionsByUser[session.userID]?.remove(session.id)
                if state.sessionsByUser[session.userID]?.isEmpty == true { state.sessionsByUser[session.userID] = nil }
            }
            state.denylist = state.denylist.filter { now < $0.value }
            state.oneTimeTokens = state.oneTimeTokens.filter { now < $0.value.expiresAt }
            return before - (state.sessions.count + state.denylist.count + state.oneTimeTokens.count)
        }
    }
}

public final class MemoryUserStore: UserStore {
    private struct State {
        var byID: [String: User] = [:]
        var idByEmail: [String: String] = [:]
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
}
