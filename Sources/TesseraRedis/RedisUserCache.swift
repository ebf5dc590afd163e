import Foundation
import Tessera
import TesseraRESP

/// The user cache on Redis, shared by every instance so that an invalidation reaches all of
/// them. One hash per user, `P{u:U}:user` (the user's hash tag, beside their sessions):
/// `id`, `email`, `mfa`, `cre`, `upd`, `exp`. Only `User.withoutSecrets` is written: never the
/// password hash, never the sealed TOTP secret. Expires at `exp` (checked against the injected
/// clock on read, and as the key's TTL).
public struct RedisUserCache: UserCache, RedisBackedStore {
    public let client: any RedisCommandExecutor
    public let keyPrefix: String
    let clock: any TesseraClock
    public let backendName = "redis"
    /// Where invalidations are announced to per-instance caches (`SubscribedUserCache`).
    public let invalidationChannel: String?

    public init(
        client: any RedisCommandExecutor, keyPrefix: String = "tessera:", clock: any TesseraClock = SystemClock(), invalidationChannel: String? = nil
    ) {
        self.client = client
        self.keyPrefix = keyPrefix
        self.clock = clock
        self.invalidationChannel = invalidationChannel
    }

    public func userKey(_ userID: String) -> String { "\(keyPrefix){u:\(userID)}:user" }

    public func user(id: String) async throws -> User? {
        // HMGET, not HGETALL: the fields come back as an array in this order, read by position
        // (a RESP3 map reply was decoded into a dictionary, then copied into a second one).
        let reply = try await send(["HMGET", .init(userKey(id)), "id", "email", "mfa", "cre", "upd", "exp", "lck"])
        guard let fields = reply.array, fields.count == 7 else { throw malformed("user") }
        if fields.allSatisfy(\.isNull) { return nil }
        func date(_ index: Int) -> Date? { fields[index].string.flatMap(Double.init).map(Date.init(timeIntervalSince1970:)) }
        guard let userID = fields[0].string, let email = fields[1].string, let mfa = fields[2].string, let created = date(3),
            let updated = date(4), let expiry = date(5)
        else { throw malformed("user") }
        guard clock.now() < expiry else { return nil }
        // Entries written before locks existed have no `lck`: unlocked.
        return User(
            id: userID, email: email, passwordHash: "", mfaEnabled: mfa == "1", createdAt: created, updatedAt: updated,
            lockedAt: date(6)
        )
    }

    public func store(_ user: User, ttl: TimeInterval) async throws {
        let user = user.withoutSecrets
        let expiry = RedisTokenStore.text(clock.now().addingTimeInterval(ttl))
        try await run(
            Self.storeScript, keys: [userKey(user.id)],
            [
                .init(expiry), "id", .init(user.id), "email", .init(user.email), "mfa", user.mfaEnabled ? "1" : "0",
                "cre", .init(RedisTokenStore.text(user.createdAt)), "upd", .init(RedisTokenStore.text(user.updatedAt)),
                "exp", .init(expiry), "lck", .init(user.lockedAt.map(RedisTokenStore.text) ?? ""),
            ]
        )
    }

    public func invalidate(userID: String) async throws {
        guard let channel = invalidationChannel else {
            try await send(["DEL", .init(userKey(userID))])
            return
        }
        // One atomic step: no instance can read the old entry back after hearing of the change.
        try await run(Self.invalidateScript, keys: [userKey(userID)], [.init(channel), .init("0 " + userKey(userID))])
    }

    /// KEYS: the user's entry. ARGV: channel, message.
    static let invalidateScript = RedisScript(name: "usercache.invalidate", 
        """
        redis.call('DEL', KEYS[1])
        redis.call('PUBLISH', ARGV[1], ARGV[2])
        return 1
        """
    )

    /// KEYS: the user's entry. ARGV: expires at, then field/value pairs. Replaces the entry whole.
    static let storeScript = RedisScript(name: "usercache.store", 
        """
        redis.call('DEL', KEYS[1])
        redis.call('HSET', KEYS[1], unpack(ARGV, 2))
        redis.call('PEXPIREAT', KEYS[1], math.ceil(tonumber(ARGV[1]) * 1000))
        return 1
        """
    )
}
