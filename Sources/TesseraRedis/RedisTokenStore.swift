import Foundation
import Logging
import NIOCore
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
    /// The `DenialIndex` set listing the user's denials.
    func denialIndexKey(_ userID: String) -> String { DenialIndex.key(prefix: keyPrefix, for: userPrefix(userID), cluster: client.isCluster) }
    func oneTimeKey(_ userID: String, _ kind: String) -> String { userPrefix(userID) + "ott:\(kind)" }

    // MARK: TokenStore

    public func createSession(_ session: SessionRecord) async throws {
        var arguments: [RESPArgument] = [
            .init(Self.milliseconds(clock.now())), .init(session.id), .init(Self.milliseconds(session.idleExpiresAt)),
            .init(Self.milliseconds(session.absoluteExpiresAt)),
        ]
        for (field, value) in Self.fields(of: session) {
            arguments += [.init(field), value]
        }
        try await run(RedisScripts.createSession, keys: [sessionKey(session.userID, session.id), indexKey(session.userID)], arguments)
    }

    public func session(id: String, userID: String) async throws -> SessionRecord? {
        let reply = try await send(["HGETALL", .init(sessionKey(userID, id))])
        guard let session = Self.session(from: reply, id: id, userID: userID), session.isLive(at: clock.now()) else { return nil }
        return session
    }

    public func sessions(userID: String) async throws -> [SessionRecord] {
        let now = clock.now()
        let reply = try await run(
            RedisScripts.listSessions, keys: [indexKey(userID)], [.init(Self.milliseconds(now)), .init(userPrefix(userID))]
        )
        return (reply.array ?? [])
            .compactMap { entry in
                guard let parts = entry.array, parts.count == 2, let id = parts[0].string else { return nil }
                return Self.session(from: parts[1], id: id, userID: userID)
            }
            .filter { $0.isLive(at: now) }
            .sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }
    }

    public func rotate(_ request: RotationRequest) async throws -> RotationOutcome {
        let now = clock.now()
        // Only a detected re-use writes a revocation; ordinary rotations do not wait for replicas.
        let agents = request.userAgent.map(Self.chunks) ?? []
        let addresses = request.ipAddress.map(Self.chunks) ?? []
        let reply = try await runRevocation(
            RedisScripts.rotate,
            keys: [
                sessionKey(request.userID, request.sessionID), indexKey(request.userID),
                denyKey(request.userID, .session(request.sessionID)), credentialsKey(request.userID, request.sessionID),
                denialIndexKey(request.userID),
            ],
            [
                .init(Self.milliseconds(now)), .init(request.userID), .init(request.presentedGeneration),
                .init(Self.milliseconds(request.graceWindow)), .init(Self.milliseconds(now.addingTimeInterval(request.idleTTL))),
                .init(Self.text(now.addingTimeInterval(request.revokedAccessTTL))),
                .init(agents.count), .init(addresses.count), .init(request.sessionID),
                .init(revocationChannel), .init(Self.milliseconds(request.idleTTL)), .init(String(request.revokedAccessTTL)),
                .init(usesServerTime ? "1" : "0"),
            ] + agents + addresses,
            durability: durability, seldomRevokes: true, revokes: { $0.array?.first?.string == "reused" }
        )
        let parts = reply.array ?? []
        switch parts.first?.string {
        case "rotated":
            guard parts.count == 2, let session = Self.session(from: parts[1], id: request.sessionID, userID: request.userID) else {
                throw malformed("rotate")
            }
            return .rotated(session)
        case "reissued":
            guard parts.count == 2, let session = Self.session(from: parts[1], id: request.sessionID, userID: request.userID) else {
                throw malformed("rotate")
            }
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
            keys: [sessionKey(userID, id), indexKey(userID), denyKey(userID, .session(id)), credentialsKey(userID, id), denialIndexKey(userID)],
            [
                .init(Self.milliseconds(now)), .init(userID), .init(Self.text(now.addingTimeInterval(accessTTL))), .init(id),
                .init(revocationChannel),
            ],
            durability: durability
        )
        if reply.int == 1 {
            revocations?.record(key: denyKey(userID, .session(id)), until: now.addingTimeInterval(accessTTL))
        }
        return reply.int == 1
    }

    public func endSession(id: String, userID: String, accessTTL: TimeInterval, tokenID: String, tokenExpiresAt: Date) async throws -> Bool {
        let now = clock.now()
        let deniesToken = tokenExpiresAt > now
        let reply = try await runRevocation(
            RedisScripts.endSession,
            keys: [
                sessionKey(userID, id), indexKey(userID), denyKey(userID, .session(id)), credentialsKey(userID, id), denialIndexKey(userID),
                denyKey(userID, .tokenID(tokenID)),
            ],
            [
                .init(Self.milliseconds(now)), .init(userID), .init(Self.text(now.addingTimeInterval(accessTTL))), .init(id),
                .init(revocationChannel), .init(deniesToken ? Self.text(tokenExpiresAt) : ""),
            ],
            durability: durability
        )
        if reply.int == 1 {
            revocations?.record(key: denyKey(userID, .session(id)), until: now.addingTimeInterval(accessTTL))
        }
        if deniesToken { revocations?.record(key: denyKey(userID, .tokenID(tokenID)), until: tokenExpiresAt) }
        return reply.int == 1
    }

    public func revokeAllSessions(userID: String, keeping: String?, accessTTL: TimeInterval) async throws -> Int {
        let now = clock.now()
        let reply = try await runRevocation(
            RedisScripts.revokeAllSessions,
            keys: [indexKey(userID), denialIndexKey(userID)],
            [
                .init(Self.milliseconds(now)), .init(keeping ?? ""), .init(Self.text(now.addingTimeInterval(accessTTL))),
                .init(userPrefix(userID)), .init(revocationChannel), .init(userID),
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
            RedisScripts.deny, keys: [denyKey(userID, key), denialIndexKey(userID)], [.init(Self.text(until)), .init(revocationChannel)], durability: durability
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

    /// Milliseconds since 1970, rounded to the nearest: the unit of a session hash's times.
    static func milliseconds(_ date: Date) -> Int64 { milliseconds(date.timeIntervalSince1970) }
    static func milliseconds(_ seconds: TimeInterval) -> Int64 { Int64((seconds * 1000).rounded()) }

    /// The most bytes in one hash value that Redis keeps in a listpack (`hash-max-listpack-value`).
    static let chunkBytes = 64

    /// `text` as byte runs of at most `chunkBytes` (one, empty, for ""); they are joined again as
    /// bytes, so a cut inside a UTF-8 sequence does no harm.
    static func chunks(_ text: String) -> [RESPArgument] {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty else { return [RESPArgument("")] }
        return stride(from: 0, to: bytes.count, by: chunkBytes).map { RESPArgument(Array(bytes[$0..<min($0 + chunkBytes, bytes.count)])) }
    }

    /// The hash fields of a session in layout 2 (`RedisScripts`): `g` generation, `c`, `l`, `r`
    /// (only when it differs from `l`), `i`, `a` times in ms, `d`, `u`, `p` strings in 64-byte
    /// runs (`u`, `u1`, `u2`, ...).
    static func fields(of session: SessionRecord) -> [(String, RESPArgument)] {
        var fields: [(String, RESPArgument)] = [
            ("g", .init(session.generation)), ("c", .init(milliseconds(session.createdAt))),
            ("l", .init(milliseconds(session.lastUsedAt))), ("i", .init(milliseconds(session.idleExpiresAt))),
            ("a", .init(milliseconds(session.absoluteExpiresAt))),
        ]
        if milliseconds(session.rotatedAt) != milliseconds(session.lastUsedAt) {
            fields.append(("r", .init(milliseconds(session.rotatedAt))))
        }
        for (name, value) in [("d", session.device), ("u", session.userAgent), ("p", session.ipAddress)] {
            guard let value else { continue }
            for (n, chunk) in chunks(value).enumerated() { fields.append((n == 0 ? name : "\(name)\(n)", chunk)) }
        }
        return fields
    }

    /// Reads a session from HGETALL's reply (a RESP3 map, or a flat array from Lua / RESP2), in
    /// layout 2 or in layout 1 (which also held the ids: they must match the key's).
    static func session(from reply: RESPValue, id: String, userID: String) -> SessionRecord? {
        guard let map = reply.stringMap, !map.isEmpty else { return nil }
        if map["uid"] != nil { return legacySession(from: map, id: id, userID: userID) }
        func date(_ key: String) -> Date? {
            map[key]?.string.flatMap { Int64($0) }.map { Date(timeIntervalSince1970: Double($0) / 1000) }
        }
        func joined(_ name: String) -> String? {
            guard var bytes = map[name]?.bytes else { return nil }
            var n = 1
            while var next = map["\(name)\(n)"]?.bytes {
                bytes.writeBuffer(&next)
                n += 1
            }
            return String(decoding: bytes.readableBytesView, as: UTF8.self)
        }
        guard let generation = map["g"]?.string.flatMap({ Int64($0) }), let createdAt = date("c"), let lastUsedAt = date("l"),
            let idle = date("i"), let absolute = date("a")
        else { return nil }
        return SessionRecord(
            id: id, userID: userID, generation: generation, rotatedAt: date("r") ?? lastUsedAt, createdAt: createdAt,
            lastUsedAt: lastUsedAt, idleExpiresAt: idle, absoluteExpiresAt: absolute, device: joined("d"), userAgent: joined("u"),
            ipAddress: joined("p")
        )
    }

    /// Layout 1: every time as decimal seconds, the ids repeated, strings whole.
    private static func legacySession(from map: [String: RESPValue], id: String, userID: String) -> SessionRecord? {
        func string(_ key: String) -> String? { map[key]?.string }
        func date(_ key: String) -> Date? { string(key).flatMap(Double.init).map(Date.init(timeIntervalSince1970:)) }
        guard string("uid") == userID, string("sid") == id, let generation = string("gen").flatMap({ Int64($0) }),
            let rotatedAt = date("rot"), let createdAt = date("cre"), let lastUsedAt = date("last"),
            let idle = date("idle"), let absolute = date("abs")
        else { return nil }
        return SessionRecord(
            id: id, userID: userID, generation: generation, rotatedAt: rotatedAt, createdAt: createdAt, lastUsedAt: lastUsedAt,
            idleExpiresAt: idle, absoluteExpiresAt: absolute, device: string("dev"), userAgent: string("ua"), ipAddress: string("ip")
        )
    }
}
