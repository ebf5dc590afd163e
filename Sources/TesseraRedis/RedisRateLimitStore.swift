import Foundation
import Tessera
import TesseraRESP

/// Rate limits, failure counters and one-shot claims shared by every instance on one Redis.
/// Keys (one each, no hash tag needed: every operation touches a single key):
/// `P gcra:<key>`, `P fail:<key>`, `P once:<key>`. As in `RedisTokenStore`, each answer is
/// decided against the injected clock inside one script; Redis TTLs, set to the same instant,
/// only free the memory. See docs/REDIS.md.
public struct RedisRateLimitStore: RateLimitStore, RedisBackedStore {
    public let client: any RedisCommandExecutor
    public let keyPrefix: String
    let clock: any TesseraClock
    public let backendName = "redis"

    public init(client: any RedisCommandExecutor, keyPrefix: String = "tessera:", clock: any TesseraClock = SystemClock()) {
        self.client = client
        self.keyPrefix = keyPrefix
        self.clock = clock
    }

    func arrivalKey(_ key: String) -> String { keyPrefix + "gcra:" + key }
    func failuresKey(_ key: String) -> String { keyPrefix + "fail:" + key }
    func claimKey(_ key: String) -> String { keyPrefix + "once:" + key }

    public func acquire(_ key: String, limit: RateLimit) async throws -> RateLimitDecision {
        // `Date` arithmetic happens in seconds since 2001; the script does the same sums on the
        // same doubles, so its answer is bit for bit `GCRA.decide`'s.
        let reply = try await run(
            RedisRateLimitScripts.acquire, keys: [arrivalKey(key)],
            [
                .init(Self.exact(clock.now().timeIntervalSinceReferenceDate)), .init(Self.exact(limit.emissionInterval)),
                .init(Self.exact(limit.period)), .init(Self.exact(Date.timeIntervalBetween1970AndReferenceDate)),
                .init(Self.exact(GCRA.tolerance)),
            ]
        )
        guard let parts = reply.array, parts.count == 2, let allowed = parts[0].int, let retry = parts[1].string.flatMap(Double.init) else {
            throw malformed("acquire")
        }
        return RateLimitDecision(allowed: allowed == 1, retryAfter: retry)
    }

    public func recordFailure(_ key: String, window: TimeInterval) async throws -> Int {
        let now = clock.now()
        let reply = try await run(
            RedisRateLimitScripts.recordFailure, keys: [failuresKey(key)],
            [.init(RedisTokenStore.text(now)), .init(RedisTokenStore.text(now.addingTimeInterval(window)))]
        )
        guard let count = reply.int else { throw malformed("recordFailure") }
        return count
    }

    public func failures(_ key: String) async throws -> (count: Int, resetsIn: TimeInterval) {
        let now = clock.now()
        let reply = try await send(["HMGET", .init(failuresKey(key)), "n", "exp"])
        guard let parts = reply.array, parts.count == 2, let count = parts[0].int,
            let expiry = parts[1].string.flatMap(Double.init).map(Date.init(timeIntervalSince1970:)), now < expiry
        else { return (0, 0) }
        return (count, expiry.timeIntervalSince(now))
    }

    public func clearFailures(_ key: String) async throws {
        try await send(["DEL", .init(failuresKey(key))])
    }

    public func claimOnce(_ key: String, ttl: TimeInterval) async throws -> Bool {
        let now = clock.now()
        let reply = try await run(
            RedisRateLimitScripts.claimOnce, keys: [claimKey(key)],
            [.init(RedisTokenStore.text(now)), .init(RedisTokenStore.text(now.addingTimeInterval(ttl)))]
        )
        return reply.int == 1
    }

    /// Swift's shortest spelling that reads back as the same double (Lua's `tonumber` is exact).
    static func exact(_ value: Double) -> String { String(value) }
}

enum RedisRateLimitScripts {
    /// KEYS: arrival. ARGV: now (seconds since 2001), emission interval, period, seconds from
    /// 1970 to 2001, rounding tolerance. The key holds the theoretical arrival time (seconds since 2001, %.17g so
    /// it reads back exactly) and expires then. Returns {1, '0'} or {0, retry after}.
    static let acquire = RedisScript(name: "ratelimit.acquire", 
        """
        local now = tonumber(ARGV[1])
        local stored = redis.call('GET', KEYS[1])
        local arrival = now
        if stored and tonumber(stored) > now then arrival = tonumber(stored) end
        local nextArrival = arrival + tonumber(ARGV[2])
        local allowAt = nextArrival - tonumber(ARGV[3])
        if allowAt - now > tonumber(ARGV[5]) then
          return {0, string.format('%.17g', allowAt - now)}
        end
        redis.call('SET', KEYS[1], string.format('%.17g', nextArrival), 'PXAT', math.ceil((nextArrival + tonumber(ARGV[4])) * 1000))
        return {1, '0'}
        """
    )

    /// KEYS: counter. ARGV: now, forgotten at. A hash {n, exp}: the count restarts when the
    /// previous one had expired by the clock; each failure pushes the expiry forward.
    static let recordFailure = RedisScript(name: "ratelimit.recordFailure", 
        """
        local f = redis.call('HMGET', KEYS[1], 'n', 'exp')
        local n = 0
        if f[1] and tonumber(f[2]) > tonumber(ARGV[1]) then n = tonumber(f[1]) end
        n = n + 1
        redis.call('HSET', KEYS[1], 'n', n, 'exp', ARGV[2])
        redis.call('PEXPIREAT', KEYS[1], math.ceil(tonumber(ARGV[2]) * 1000))
        return n
        """
    )

    /// KEYS: claim. ARGV: now, claimed until. Returns 1 for the first claim while none is live.
    static let claimOnce = RedisScript(name: "ratelimit.claimOnce", 
        """
        local claimed = redis.call('GET', KEYS[1])
        if claimed and tonumber(claimed) > tonumber(ARGV[1]) then return 0 end
        redis.call('SET', KEYS[1], ARGV[2], 'PXAT', math.ceil(tonumber(ARGV[2]) * 1000))
        return 1
        """
    )
}
