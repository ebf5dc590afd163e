import Foundation
import Tessera
import Testing

/// Finding 4 of issue 10: failures from one client must not lock the owner out from another,
/// and guessing spread over many clients slows the account down instead of locking it. Run on
/// the memory rate-limit store and on a real Redis (shared by every instance).
@Suite("Login regulation: lockout per client, slow-down per account")
struct LoginRegulationTests {
    static let password = "correct horse"
    static let attacker = ClientInfo(ipAddress: "203.0.113.9")
    static let owner = ClientInfo(ipAddress: "198.51.100.7")

    func withService(
        _ kind: SharedStoreKind, _ limits: RateLimitPolicy, _ body: (AuthService, SharedStoreFixture<any RateLimitStore>) async throws -> Void
    ) async throws {
        try await withRateLimitStore(kind) { f in
            var policy = TokenPolicy()
            policy.bcryptCost = 4
            let outbox = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-outbox-\(UUID().uuidString)").path
            defer { try? FileManager.default.removeItem(atPath: outbox) }
            let security = AccountSecurity(
                secrets: .generate(), rateLimits: limits, rateLimitStore: f.store, userCache: MemoryUserCache(clock: f.clock),
                notifier: OutboxNotifier(directory: outbox)
            )
            let service = try await AuthService(
                policy: policy, users: MemoryUserStore(), tokens: MemoryTokenStore(clock: f.clock), keys: .generate(), security: security,
                clock: f.clock
            )
            try await body(service, f)
        }
    }

    /// What a login answered, as the HTTP layer would show it.
    func attempt(_ service: AuthService, _ email: String, _ password: String, from client: ClientInfo) async throws -> String {
        do {
            switch try await service.login(email: email, password: password, client: client) {
            case .tokens: return "ok"
            case .mfaRequired: return "mfa"
            }
        } catch let error as AuthError {
            switch error {
            case .rateLimited(let seconds): return "rate_limited \(seconds)"
            case .accountLocked(let seconds): return "account_locked \(seconds)"
            default: return error.code
            }
        }
    }

    @Test(arguments: SharedStoreKind.allCases)
    func anAttackersFailuresLockOnlyTheAttackersClient(kind: SharedStoreKind) async throws {
        let limits = RateLimitPolicy(perIP: [:], perAccount: [:], lockoutThreshold: 10, lockoutDuration: 900, slowdownThreshold: 20)
        try await withService(kind, limits) { service, f in
            let email = "victim@example.com"
            _ = try await service.register(email: email, password: Self.password)
            for _ in 1...10 {
                #expect(try await attempt(service, email, "guess", from: Self.attacker) == "invalid_credentials")
            }
            // The attacker's client is locked, even with the right password…
            #expect(try await attempt(service, email, Self.password, from: Self.attacker) == "account_locked 900")
            // …while the owner, from another address, logs in at once.
            #expect(try await attempt(service, email, Self.password, from: Self.owner) == "ok")
            #expect(try await attempt(service, email, "guess", from: Self.attacker) == "account_locked 900")
            f.clock.advance(by: 901)
            #expect(try await attempt(service, email, Self.password, from: Self.attacker) == "ok")
        }
    }

    @Test(arguments: SharedStoreKind.allCases)
    func thePerAccountLoginBudgetIsCountedPerClient(kind: SharedStoreKind) async throws {
        let limits = RateLimitPolicy(perIP: [:], perAccount: [.login: RateLimit(count: 3, period: 60)], lockoutThreshold: 0, slowdownThreshold: 0)
        try await withService(kind, limits) { service, _ in
            let email = "budget@example.com"
            _ = try await service.register(email: email, password: Self.password)
            for _ in 1...3 { #expect(try await attempt(service, email, "guess", from: Self.attacker) == "invalid_credentials") }
            #expect(try await attempt(service, email, "guess", from: Self.attacker) == "rate_limited 20")
            #expect(try await attempt(service, email, Self.password, from: Self.owner) == "ok")
        }
    }

    @Test(arguments: SharedStoreKind.allCases)
    func guessesFromManyClientsGetGrowingWaitsNotALock(kind: SharedStoreKind) async throws {
        let limits = RateLimitPolicy(
            perIP: [:], perAccount: [:], lockoutThreshold: 3, lockoutDuration: 900, slowdownThreshold: 5, slowdownMaxDelay: 8
        )
        try await withService(kind, limits) { service, f in
            let email = "spread@example.com"
            _ = try await service.register(email: email, password: Self.password)
            var address = 0
            func next() -> ClientInfo {
                address += 1
                return ClientInfo(ipAddress: "192.0.2.\(address)")
            }
            // Below the threshold: no client is slowed (each is far from its own lock, too).
            for _ in 1...5 { #expect(try await attempt(service, email, "guess", from: next()) == "invalid_credentials") }
            var waits: [String] = []
            for _ in 1...5 {
                let refused = try await attempt(service, email, "guess", from: next())
                waits.append(refused)
                let seconds = TimeInterval(refused.split(separator: " ").last.flatMap { Int($0) } ?? 0)
                f.clock.advance(by: seconds)
                #expect(try await attempt(service, email, "guess", from: next()) == "invalid_credentials")
            }
            // 1 s, doubling, capped at the maximum; never a lock.
            #expect(waits == ["rate_limited 1", "rate_limited 2", "rate_limited 4", "rate_limited 8", "rate_limited 8"])
            // The owner waits out the current delay and gets in; one attempt per step, so a
            // second attempt right after is told to wait again.
            #expect(try await attempt(service, email, Self.password, from: Self.owner) == "rate_limited 8")
            f.clock.advance(by: 8)
            #expect(try await attempt(service, email, Self.password, from: Self.owner) == "ok")
            #expect(try await attempt(service, email, "guess", from: next()) == "rate_limited 8")
            // A day after the last failure the account-wide count is forgotten.
            f.clock.advance(by: 86_401)
            #expect(try await attempt(service, email, Self.password, from: Self.owner) == "ok")
        }
    }
}
