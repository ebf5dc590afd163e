import Crypto
import Foundation
import Synchronization

/// `count` requests per `period` seconds, with a burst of `count`: written `N/SECONDS`.
public struct RateLimit: Sendable, Equatable, CustomStringConvertible {
    public var count: Int
    public var period: TimeInterval

    public init(count: Int, period: TimeInterval) {
        precondition(count > 0 && period > 0, "a rate limit needs a positive count and period")
        self.count = count
        self.period = period
    }

    /// Parses `N/SECONDS`, e.g. `10/60`; nil when malformed or not positive.
    public init?(parsing text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let count = Int(parts[0]), let period = Int(parts[1]), count > 0, period > 0 else { return nil }
        self.init(count: count, period: TimeInterval(period))
    }

    /// The time one request "costs" against the budget.
    public var emissionInterval: TimeInterval { period / Double(count) }

    public var description: String { "\(count)/\(Int(period))" }
}

public struct RateLimitDecision: Sendable, Equatable {
    public var allowed: Bool
    /// When refused: how long until one more request would be admitted.
    public var retryAfter: TimeInterval

    public init(allowed: Bool, retryAfter: TimeInterval) {
        self.allowed = allowed
        self.retryAfter = retryAfter
    }
}

/// The generic cell rate algorithm: a single "theoretical arrival time" per key is the whole
/// state, so one atomic read-modify-write (one Lua script on Redis) decides a request.
/// The Redis script (`RedisRateLimitStore`) computes exactly this; keep them in step.
public enum GCRA {
    /// One microsecond, far below any period anyone configures.
    public static let tolerance: TimeInterval = 1e-6

    /// - Returns: the decision and the new arrival time to store (nil when refused: unchanged).
    public static func decide(storedArrival: Date?, now: Date, limit: RateLimit) -> (RateLimitDecision, newArrival: Date?) {
        let arrival = max(storedArrival ?? now, now)
        let next = arrival.addingTimeInterval(limit.emissionInterval)
        let allowAt = next.addingTimeInterval(-limit.period)
        // The tolerance absorbs rounding: N × (period / N) may come out a hair above the period,
        // which would refuse the last request of a full burst.
        if allowAt.timeIntervalSince(now) > tolerance {
            return (RateLimitDecision(allowed: false, retryAfter: allowAt.timeIntervalSince(now)), nil)
        }
        return (RateLimitDecision(allowed: true, retryAfter: 0), next)
    }
}

/// The actions Tessera limits, each with a per-client-IP and a per-account budget.
public enum RateLimitedAction: String, Sendable, CaseIterable {
    case login, register, forgot, mfaVerify = "mfa", refresh
}

/// Limits per action; nil turns a limit off. Defaults are documented in docs/API.md.
///
/// Logins are regulated so that nobody can lock an owner out cheaply: the per-account budget
/// and the hard lockout count per (account, client IP), so failures from one client lock only
/// that client; against guessing spread over many clients, the account-wide failure count
/// slows logins down (an exponentially growing wait) instead of locking the account.
public struct RateLimitPolicy: Sendable {
    public var perIP: [RateLimitedAction: RateLimit]
    /// For `.login`, counted per (account, client IP); for the other actions per account.
    public var perAccount: [RateLimitedAction: RateLimit]
    /// Consecutive failed logins of one client (IP) for one account before that client is locked
    /// out of it.
    public var lockoutThreshold: Int
    /// How long a lock lasts; also how long failures are remembered after the last one.
    public var lockoutDuration: TimeInterval
    /// Failed logins for one account, from all clients together, before each further attempt
    /// must wait; 0 turns the slow-down off.
    public var slowdownThreshold: Int
    /// The longest wait between two attempts once slowed down.
    public var slowdownMaxDelay: TimeInterval
    /// How long account-wide failures are remembered after the last one.
    public var slowdownWindow: TimeInterval

    public init(
        perIP: [RateLimitedAction: RateLimit] = Self.defaultPerIP, perAccount: [RateLimitedAction: RateLimit] = Self.defaultPerAccount,
        lockoutThreshold: Int = 10, lockoutDuration: TimeInterval = 900,
        slowdownThreshold: Int = 20, slowdownMaxDelay: TimeInterval = 300, slowdownWindow: TimeInterval = 86_400
    ) {
        self.perIP = perIP
        self.perAccount = perAccount
        self.lockoutThreshold = lockoutThreshold
        self.lockoutDuration = lockoutDuration
        self.slowdownThreshold = slowdownThreshold
        self.slowdownMaxDelay = slowdownMaxDelay
        self.slowdownWindow = slowdownWindow
    }

    public static let defaultPerIP: [RateLimitedAction: RateLimit] = [
        .login: RateLimit(count: 30, period: 60),
        .register: RateLimit(count: 20, period: 3600),
        .forgot: RateLimit(count: 10, period: 900),
        .mfaVerify: RateLimit(count: 15, period: 60),
        .refresh: RateLimit(count: 150, period: 300),
    ]
    public static let defaultPerAccount: [RateLimitedAction: RateLimit] = [
        .login: RateLimit(count: 10, period: 60),
        .forgot: RateLimit(count: 3, period: 900),
        .mfaVerify: RateLimit(count: 10, period: 60),
        .refresh: RateLimit(count: 60, period: 60),
    ]

    /// No limits, no lockout and no slow-down, e.g. for load tests.
    public static let unlimited = RateLimitPolicy(perIP: [:], perAccount: [:], lockoutThreshold: 0, slowdownThreshold: 0)

    /// The wait after the last failure once an account has `failures` failures: 1 s at the
    /// threshold, doubling with each further failure, at most `slowdownMaxDelay`.
    public func slowdownDelay(afterFailures failures: Int) -> TimeInterval {
        guard slowdownThreshold > 0, failures >= slowdownThreshold else { return 0 }
        let doublings = min(failures - slowdownThreshold, 62)
        return min(slowdownMaxDelay, Double(UInt64(1) << UInt64(doublings)))
    }
}

/// Applies a `RateLimitPolicy` against a `RateLimitStore` and counts refusals.
public struct RateLimiter: Sendable {
    public let policy: RateLimitPolicy
    public let store: any RateLimitStore
    private let counters = RateLimitCounters()

    public init(policy: RateLimitPolicy, store: any RateLimitStore) {
        self.policy = policy
        self.store = store
    }

    /// Throws `AuthError.rateLimited` when the client IP or the account is over its budget.
    /// The account is any stable string naming it (email, user id); it is hashed into the key
    /// so that keys carry no personal data.
    ///
    /// The per-IP and per-account decisions are asked for at once (one script each, so each key
    /// stays in its own Redis Cluster slot), so two limits cost one round trip, not two.
    public func check(_ action: RateLimitedAction, ip: String?, account: String?) async throws {
        let byAccount = policy.perAccount[action].flatMap { limit in account.map { (subject: "acct:\(Self.digest($0))", limit: limit) } }
        switch (perIP(action, ip), byAccount) {
        case (nil, nil):
            return
        case (let only?, nil), (nil, let only?):
            try admit(action, try await decide(action, only))
        case (let first?, let second?):
            async let firstDecision = decide(action, first)
            async let secondDecision = decide(action, second)
            try admit(action, try await firstDecision)
            try admit(action, try await secondDecision)
        }
    }

    /// The per-IP limit of `action`, with its subject, when one is configured and there is an address.
    private func perIP(_ action: RateLimitedAction, _ ip: String?) -> (subject: String, limit: RateLimit)? {
        policy.perIP[action].flatMap { limit in ip.map { ("ip:\(Self.digest($0))", limit) } }
    }

    /// nil when the limit does not apply (no subject, or no limit configured). Subjects are
    /// hashed only for a limit that applies: no digest, and no child task, per request with
    /// the limits off.
    private func decide(_ action: RateLimitedAction, _ limited: (subject: String, limit: RateLimit)?) async throws -> RateLimitDecision? {
        guard let limited else { return nil }
        return try await store.acquire("rl:\(action.rawValue):\(limited.subject)", limit: limited.limit)
    }

    private func admit(_ action: RateLimitedAction, _ decision: RateLimitDecision?) throws {
        if let decision, !decision.allowed {
            counters.rejected(action)
            throw AuthError.rateLimited(retryAfter: Self.wholeSeconds(decision.retryAfter))
        }
    }

    // MARK: Login regulation

    /// Admits one password check for `account` from `ip` (nil: a caller without a client
    /// address, which then shares one bucket): the per-IP and per-(account, IP) budgets, the
    /// lockout of this client, and the account-wide slow-down. Throws `AuthError.rateLimited`
    /// or `AuthError.accountLocked`.
    ///
    /// The four reads are asked for at once (one round trip); their answers are then applied in
    /// that order, so the error a client sees is the same as if they had been asked in turn.
    public func checkLogin(account: String, ip: String?) async throws {
        async let byIP = decide(.login, perIP(.login, ip))
        async let byAccount = decide(.login, policy.perAccount[.login].map { ("acct:\(Self.clientDigest(account, ip))", $0) })
        async let lockout = lockoutFailures(account: account, ip: ip)
        async let slowdown = slowdownFailures(account: account)
        try admit(.login, try await byIP)
        try admit(.login, try await byAccount)
        try refuseIfLocked(try await lockout)
        try await applySlowdown(account: account, failures: try await slowdown)
    }

    /// Throws `AuthError.accountLocked` while this client has too many consecutive failures for
    /// the account. Other clients are not affected.
    public func checkLockout(account: String, ip: String?) async throws {
        try refuseIfLocked(try await lockoutFailures(account: account, ip: ip))
    }

    private func lockoutFailures(account: String, ip: String?) async throws -> (count: Int, resetsIn: TimeInterval)? {
        guard policy.lockoutThreshold > 0 else { return nil }
        return try await store.failures(lockoutKey(account, ip))
    }

    private func refuseIfLocked(_ failures: (count: Int, resetsIn: TimeInterval)?) throws {
        if let (count, resetsIn) = failures, count >= policy.lockoutThreshold {
            counters.count("lockout")
            throw AuthError.accountLocked(retryAfter: Self.wholeSeconds(resetsIn))
        }
    }

    private func slowdownFailures(account: String) async throws -> (count: Int, resetsIn: TimeInterval)? {
        guard policy.slowdownThreshold > 0 else { return nil }
        return try await store.failures(slowdownKey(account))
    }

    /// Past the account-wide threshold, one attempt per `slowdownDelay` after the last failure.
    private func applySlowdown(account: String, failures: (count: Int, resetsIn: TimeInterval)?) async throws {
        guard let (count, resetsIn) = failures else { return }
        let delay = policy.slowdownDelay(afterFailures: count)
        guard delay > 0 else { return }
        // A millisecond of slack either way: the expiry is stored as seconds since 1970, whose
        // last bits do not survive the subtraction.
        let remaining = delay - (policy.slowdownWindow - resetsIn) - 0.001
        if remaining > 0 {
            counters.count("login_slowdown")
            throw AuthError.rateLimited(retryAfter: Self.wholeSeconds(remaining))
        }
        // One attempt per step: guesses sent together when the wait ends do not all pass.
        guard try await store.claimOnce("slow:\(Self.digest(account)):\(count)", ttl: delay) else {
            counters.count("login_slowdown")
            throw AuthError.rateLimited(retryAfter: Self.wholeSeconds(delay))
        }
    }

    public func loginFailed(account: String, ip: String?) async throws {
        if policy.lockoutThreshold > 0 {
            _ = try await store.recordFailure(lockoutKey(account, ip), window: policy.lockoutDuration)
        }
        if policy.slowdownThreshold > 0 {
            _ = try await store.recordFailure(slowdownKey(account), window: policy.slowdownWindow)
        }
    }

    /// Clears this client's failures. The account-wide count stays: a guesser elsewhere does
    /// not get a fresh budget because the owner logged in.
    public func loginSucceeded(account: String, ip: String?) async throws {
        guard policy.lockoutThreshold > 0 else { return }
        try await store.clearFailures(lockoutKey(account, ip))
    }

    /// After a password reset (the mailbox owner acted): the account-wide count and this
    /// client's lock are lifted.
    public func accountRecovered(account: String, ip: String?) async throws {
        try await loginSucceeded(account: account, ip: ip)
        if policy.slowdownThreshold > 0 { try await store.clearFailures(slowdownKey(account)) }
    }

    private func lockoutKey(_ account: String, _ ip: String?) -> String { "lock:\(Self.clientDigest(account, ip))" }
    private func slowdownKey(_ account: String) -> String { "slow:\(Self.digest(account))" }

    /// One digest for an (account, client) pair; no separator ambiguity (NUL is in neither).
    static func clientDigest(_ account: String, _ ip: String?) -> String { digest("\(account)\u{0}\(ip ?? "")") }

    /// Refusals since start, by action, plus refused logins of locked accounts.
    public var rejections: [String: Int] { counters.snapshot() }

    /// The first 16 bytes of the SHA-256, in hex (32 characters).
    static func digest(_ value: String) -> String { SHA256.hash(data: Array(value.utf8)).withUnsafeBytes { Hex.lowercase($0.prefix(16)) } }

    static func wholeSeconds(_ interval: TimeInterval) -> Int { max(1, Int(interval.rounded(.up))) }
}

private final class RateLimitCounters: Sendable {
    private let counts = Mutex([String: Int]())

    func rejected(_ action: RateLimitedAction) { counts.withLock { $0[action.rawValue, default: 0] += 1 } }
    func count(_ name: String) { counts.withLock { $0[name, default: 0] += 1 } }
    func snapshot() -> [String: Int] { counts.withLock { $0 } }
}

/// With `--redis-fallback memory`: while the shared store cannot answer, rate limits are kept
/// per process instead of failing every login. Budgets are then per instance (documented).
public struct FailoverRateLimitStore: RateLimitStore {
    public let primary: any RateLimitStore
    public let local: MemoryRateLimitStore

    public init(primary: any RateLimitStore, local: MemoryRateLimitStore) {
        self.primary = primary
        self.local = local
    }

    public var backendName: String { primary.backendName }

    private func either<T>(_ body: (any RateLimitStore) async throws -> T) async throws -> T {
        do {
            return try await body(primary)
        } catch let error as StoreError where error.kind == .unavailable {
            return try await body(local)
        }
    }

    public func acquire(_ key: String, limit: RateLimit) async throws -> RateLimitDecision {
        try await either { try await $0.acquire(key, limit: limit) }
    }
    public func recordFailure(_ key: String, window: TimeInterval) async throws -> Int {
        try await either { try await $0.recordFailure(key, window: window) }
    }
    public func failures(_ key: String) async throws -> (count: Int, resetsIn: TimeInterval) {
        try await either { try await $0.failures(key) }
    }
    public func clearFailures(_ key: String) async throws {
        try await either { try await $0.clearFailures(key) }
    }
    public func claimOnce(_ key: String, ttl: TimeInterval) async throws -> Bool {
        try await either { try await $0.claimOnce(key, ttl: ttl) }
    }
}
