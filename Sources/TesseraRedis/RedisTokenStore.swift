import Foundation
import Logging
import Tessera
import TesseraRESP

/// The shared production token store: several Tessera instances on one Redis see the same
/// sessions and revocations, data survives restarts of either side (with Redis persistence),
/// and Redis expires every key by itself. See docs/REDIS.md for the key layout.
///
/// Expiry is also checked against the injected clock inside each script, so answers never
/// depend on when Redis happens to evict a key.
public struct RedisTokenStore: TokenStore, RedisBackedStore {
    public let client: any RedisCommandExecutor
    public let keyPrefix: String
    let clock: any TesseraClock
    public let backendName = "redis"
    /// When set, `isRevoked` answers from this local copy of the denylist while it is synced
    /// (no Redis round trip), and from Redis otherwise.
    public let revocations: RevocationView?
    /// Rotations are dated by Redis's clock when the script runs (`TIME`), not by `clock` when
    /// the request was sent.
    public let usesServerTime: Bool
    /// Whether revocations wait for replicas before they are acknowledged (see
    /// `RevocationDurability`).
    public let durability: RevocationDurability

    /// - Parameters:
    ///   - keyPrefix: prepended to every key, e.g. `tessera:`; lets several deployments share
    ///     one Redis database.
    ///   - revocations: a view made with the same client and key prefix (run it as a service).
    ///   - usesServerTime: date rotations by Redis's clock at the moment they are applied;
    ///     default: when `clock` is the system clock (a test's manual clock keeps control).
    ///   - durability: replicas each revocation waits for; by default one when there is one.
    public init(
        client: any RedisCommandExecutor, keyPrefix: String = "tessera:", clock: any TesseraClock = SystemClock(),
        revocations: RevocationView? = nil, usesServerTime: Bool? = nil, durability: RevocationDurability = .automatic
    ) {
        precondition(revocations.map { $0.keyPrefix == keyPrefix } ?? true, "the revocation view must use the store's key prefix")
        self.client = client
        self.keyPrefix = keyPrefix
        self.clock = clock
        self.revocations = revocations
        self.usesServerTime = usesServerTime ?? (clock is SystemClock)
        self.durability = durability
    }

    /// Fed by the revocation channel through the view, so denials written by every instance
    /// reach the stream; nil without a view.
    public var revocationFeed: RevocationFeed? { revocations?.feed }

    public func liveRevocations() async throws -> [Revocation] {
        guard let revocations else { throw StoreError(backend: "redis", message: "no revocation view") }
        return try revocations.snapshot()
    }

    /// Where every revocation script publishes what it denied (see `RevocationView`).
    var revocationChannel: String { keyPrefix + "revocations" }

    // MARK: Keys

    /// Everything of one user shares the hash tag `{u:<id>}`: one Cluster slot.
    func userPrefix(_ userID: String) -> String { "\(keyPrefix){u:\(userID)}:" }
    func sessionKey(_ userID: String, _ sessionID: String) -> String { userPrefix(userID) + "s:\(sessionID)" }
    func indexKey(_ userID: String) -> String { userPrefix(userID) + "sessions" }
    func denyKey(_ userID: String, _ key: RevocationKey) -> String {
        switch key {
        case .tokenID(let jti): userPrefix(userID) + "deny:jti:\(jti)"
        case .session(let sid): userPrefix(userID) + "deny:sid:\(sid)"
        }
    }
    func oneTimeKey(_ userID: String, _ kind: String) -> String { userPrefix(userID) + "ott:\(kind)" }

    // MARK: TokenStore

    public func createSession(_ session: SessionRecord) async throws {
        var arguments: [RESPArgument] = [
            .init(Self.text(clock.now())), .init(session.id), .init(Self.text(session.idleExpiresAt)),
            .init(Self.text(session.absoluteExpiresAt)),
        ]
        for (field, value) in Self.fields(of: session) {
            arguments += [.init(field), .init(value)]
        }
        try await run(RedisScripts.createSession, keys: [sessionKey(session.userID, session.id), indexKey(session.userID)], arguments)
    }

    public func session(id: String, userID: String) async throws -> SessionRecord? {
        let reply = try await send(["HGETALL", .init(sessionKey(userID, id))])
        guard let session = Self.session(from: reply), session.userID == userID, session.isLive(at: clock.now()) else { return nil }
        return session
    }

    public func sessions(userID: String) async throws -> [SessionRecord] {
        let now = clock.now()
        let reply = try await run(RedisScripts.listSessions, keys: [indexKey(userID)], [.init(Self.text(now)), .init(userPrefix(userID))])
        return (reply.array ?? [])
            .compactMap(Self.session(from:))
            .filter { $0.isLive(at: now) }
            .sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }
    }

    public func rotate(_ request: RotationRequest) async throws -> RotationOutcome {
        let now = clock.now()
        // Only a detected re-use writes a revocation; ordinary rotations do not wait for replicas.
        let reply = try await runRevocation(
            RedisScripts.rotate,
            keys: [
                sessionKey(request.userID, request.sessionID), indexKey(request.userID),
                denyKey(request.userID, .session(request.sessionID)), credentialsKey(request.userID, request.sessionID),
            ],
            [
                .init(Self.text(now)), .init(request.userID), .init(request.presentedGeneration),
                .init(String(request.graceWindow)), .init(Self.text(now.addingTimeInterval(request.idleTTL))),
                .init(Self.text(now.addingTimeInterval(request.revokedAccessTTL))),
                .init(request.userAgent ?? ""), .init(request.ipAddress ?? ""), .init(request.sessionID),
                .init(revocationChannel), .init(String(request.idleTTL)), .init(String(request.revokedAccessTTL)),
                .init(usesServerTime ? "1" : "0"),
            ],
            durability: durability, revokes: { $0.array?.first?.string == "reused" }
        )
        let parts = reply.array ?? []
        switch parts.first?.string {
        case "rotated":
            guard parts.count == 2, let session = Self.session(from: parts[1]) else { throw malformed("rotate") }
            return .rotated(session)
        case "reissued":
            guard parts.count == 2, let session = Self.session(from: parts[1]) else { throw malformed("rotate") }
            return .reissued(session)
        case "reused":
            revocations?.record(key: denyKey(request.userID, .session(request.sessionID)), until: now.addingTimeInterval(request.revokedAccessTTL))
            return .reused(userID: request.userID)
        case "invalid":
            return .invalid
        default:
            throw malformed("rotate")
        }
    }

    public func revokeSession(id: String, userID: String, accessTTL: TimeInterval) async throws -> Bool {
        let now = clock.now()
        let reply = try await runRevocation(
            RedisScripts.revokeSession,
            keys: [sessionKey(userID, id), indexKey(userID), denyKey(userID, .session(id)), credentialsKey(userID, id)],
            [
                .init(Self.text(now)), .init(userID), .init(Self.text(now.addingTimeInterval(accessTTL))), .init(id),
                .init(revocationChannel),
            ],
            durability: durability
        )
        if reply.int == 1 {
            revocations?.record(key: denyKey(userID, .session(id)), until: now.addingTimeInterval(accessTTL))
        }
        return reply.int == 1
    }

    public func revokeAllSessions(userID: String, keeping: String?, accessTTL: TimeInterval) async throws -> Int {
        let now = clock.now()
        let reply = try await runRevocation(
            RedisScripts.revokeAllSessions,
            keys: [indexKey(userID)],
            [
                .init(Self.text(now)), .init(keeping ?? ""), .init(Self.text(now.addingTimeInterval(accessTTL))), .init(userPrefix(userID)),
                .init(revocationChannel),
            ],
            durability: durability
        )
        let parts = reply.array ?? []
        for sid in parts.dropFirst().compactMap(\.string) {
            revocations?.record(key: denyKey(userID, .session(sid)), until: now.addingTimeInterval(accessTTL))
        }
        return parts.first?.int ?? 0
    }

    public func deny(_ key: RevocationKey, userID: String, until: Date) async throws {
        guard until > clock.now() else { return }
        try await runRevocation(
            RedisScripts.deny, keys: [denyKey(userID, key)], [.init(Self.text(until)), .init(revocationChannel)], durability: durability
        )
        revocations?.record(key: denyKey(userID, key), until: until)
    }

    public func isRevoked(tokenID: String, sessionID: String, userID: String) async throws -> Bool {
        let tokenKey = denyKey(userID, .tokenID(tokenID))
        let sessionKey = denyKey(userID, .session(sessionID))
        if let revocations {
            if let answer = revocations.isRevoked(tokenKey, sessionKey) { return answer }
            // Not trusted to be complete, but what it holds is proof: a denial never ends
            // before its time. This keeps a known logout refused while Redis is away, or back
            // without its data and the view not yet reloaded.
            if revocations.holds(tokenKey, sessionKey) { return true }
        }
        let reply = try await send(["MGET", .init(tokenKey), .init(sessionKey)])
        let now = clock.now().timeIntervalSince1970
        return (reply.array ?? []).contains { value in
            value.string.flatMap(Double.init).map { $0 > now } ?? false
        }
    }

    public func putOneTimeToken(_ token: OneTimeToken) async throws {
        guard token.expiresAt > clock.now() else { return }
        try await run(
            RedisScripts.putOneTimeToken, keys: [oneTimeKey(token.userID, token.kind)],
            [.init(token.hash), .init(token.payload), .init(Self.text(token.expiresAt))]
        )
    }

    public func restoreOneTimeToken(_ token: OneTimeToken) async throws -> Bool {
        let now = clock.now()
        guard token.expiresAt > now else { return false }
        let reply = try await run(
            RedisScripts.restoreOneTimeToken, keys: [oneTimeKey(token.userID, token.kind)],
            [.init(token.hash), .init(token.payload), .init(Self.text(token.expiresAt)), .init(Self.text(now))]
        )
        return reply.int == 1
    }

    public func consumeOneTimeToken(kind: String, userID: String, hash: String) async throws -> OneTimeToken? {
        let reply = try await run(RedisScripts.consumeOneTimeToken, keys: [oneTimeKey(userID, kind)], [.init(hash)])
        guard let parts = reply.array, parts.count == 2, let payload = parts[0].string,
            let expiry = parts[1].string.flatMap(Double.init)
        else { return nil }
        let token = OneTimeToken(kind: kind, hash: hash, userID: userID, payload: payload, expiresAt: Date(timeIntervalSince1970: expiry))
        return clock.now() < token.expiresAt ? token : nil
    }

    public func ping() async throws {
        _ = try await send(["PING"])
    }

    /// Redis expires keys itself, and indexes are pruned on every write; nothing to sweep.
    public func purgeExpired() async throws -> Int { 0 }

    // MARK: Encoding

    /// Seconds since 1970 in Swift's shortest exact spelling; Lua compares, never rewrites, them.
    static func text(_ date: Date) -> String { String(date.timeIntervalSince1970) }

    static func fields(of session: SessionRecord) -> [(String, String)] {
        var fields = [
            ("uid", session.userID), ("sid", session.id), ("gen", String(session.generation)), ("rot", text(session.rotatedAt)),
            ("cre", text(session.createdAt)), ("last", text(session.lastUsedAt)), ("idle", text(session.idleExpiresAt)),
            ("abs", text(session.absoluteExpiresAt)),
        ]
        if let device = session.device { fields.append(("dev", device)) }
        if let userAgent = session.userAgent { fields.append(("ua", userAgent)) }
        if let ip = session.ipAddress { fields.append(("ip", ip)) }
        return fields
    }

    /// Reads a session from HGETALL's reply (a RESP3 map, or a flat array from Lua / RESP2).
    static func session(from reply: RESPValue) -> SessionRecord? {
        guard let map = reply.stringMap, !map.isEmpty else { return nil }
        func string(_ key: String) -> String? { map[key]?.string }
        func date(_ key: String) -> Date? { string(key).flatMap(Double.init).map(Date.init(timeIntervalSince1970:)) }
        guard let userID = string("uid"), let id = string("sid"), let generation = string("gen").flatMap({ Int64($0) }),
            let rotatedAt = date("rot"), let createdAt = date("cre"), let lastUsedAt = date("last"),
            let idle = date("idle"), let absolute = date("abs")
        else { return nil }
        return SessionRecord(
            id: id, userID: userID, generation: generation, rotatedAt: rotatedAt, createdAt: createdAt, lastUsedAt: lastUsedAt,
            idleExpiresAt: idle, absoluteExpiresAt: absolute, device: string("dev"), userAgent: string("ua"), ipAddress: string("ip")
        )
    }
}
