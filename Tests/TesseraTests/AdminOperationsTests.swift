import Foundation
import Tessera
import TesseraSQLite
import Testing

/// Operator actions on the core service (what the CLI and the admin API both call), on
/// memory and SQLite user stores.
@Suite("Admin operations")
struct AdminOperationsTests {
    enum AdminStoreKind: String, CaseIterable, CustomStringConvertible {
        case memory, sqlite
        var description: String { rawValue }
    }

    struct Fixture {
        let service: AuthService
        let clock: ManualClock
    }

    func withService(_ kind: AdminStoreKind, _ body: (Fixture) async throws -> Void) async throws {
        let clock = ManualClock(Date())
        var policy = TokenPolicy()
        policy.bcryptCost = 4
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-admin-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let users: any UserStore
        let tokens: any TokenStore
        switch kind {
        case .memory:
            users = MemoryUserStore()
            tokens = MemoryTokenStore(clock: clock)
        case .sqlite:
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let database = try SQLiteDatabase(path: directory.appendingPathComponent("tessera.db").path)
            users = database.userStore()
            tokens = database.tokenStore(clock: clock)
        }
        let security = AccountSecurity.local(
            secrets: .generate(), outbox: directory.appendingPathComponent("outbox").path, rateLimits: .unlimited, clock: clock
        )
        let service = try await AuthService(policy: policy, users: users, tokens: tokens, keys: .generate(now: clock.now()), security: security, clock: clock)
        try await body(Fixture(service: service, clock: clock))
    }

    @Test(arguments: AdminStoreKind.allCases)
    func lockingEndsSessionsAndRefusesLoginsUntilUnlocked(_ kind: AdminStoreKind) async throws {
        try await withService(kind) { fixture in
            let service = fixture.service
            let grant = try await service.register(email: "lock@example.com", password: "correct horse")
            #expect(try await service.lockUser(userID: grant.user.id) == 1)
            #expect(try await service.adminUser(email: "lock@example.com").lockedAt != nil)
            await #expect(throws: AuthError.tokenRevoked) { _ = try await service.authenticate(bearer: grant.accessToken) }
            await #expect(throws: AuthError.invalidRefreshToken) { _ = try await service.refresh(refreshToken: grant.refreshToken) }
            await #expect(throws: AuthError.accountDisabled) { _ = try await service.login(email: "lock@example.com", password: "correct horse") }
            // A wrong password still answers as a wrong password: the lock tells a guesser nothing.
            await #expect(throws: AuthError.invalidCredentials) { _ = try await service.login(email: "lock@example.com", password: "wrong horse") }
            #expect(try await service.unlockUser(userID: grant.user.id))
            #expect(try await service.unlockUser(userID: grant.user.id) == false)
            guard case .tokens = try await service.login(email: "lock@example.com", password: "correct horse") else {
                Issue.record("no tokens after unlock")
                return
            }
        }
    }

    @Test(arguments: AdminStoreKind.allCases)
    func deletingAUserEndsEverySessionAtOnce(_ kind: AdminStoreKind) async throws {
        try await withService(kind) { fixture in
            let service = fixture.service
            let first = try await service.register(email: "gone@example.com", password: "correct horse")
            guard case .tokens(let second) = try await service.login(email: "gone@example.com", password: "correct horse") else {
                Issue.record("no second session")
                return
            }
            #expect(try await service.deleteUser(userID: first.user.id) == 2)
            for grant in [first, second] {
                await #expect(throws: AuthError.tokenRevoked) { _ = try await service.authenticate(bearer: grant.accessToken) }
                await #expect(throws: AuthError.invalidRefreshToken) { _ = try await service.refresh(refreshToken: grant.refreshToken) }
            }
            await #expect(throws: AuthError.userNotFound) { _ = try await service.adminUser(email: "gone@example.com") }
            await #expect(throws: AuthError.userNotFound) { _ = try await service.deleteUser(userID: first.user.id) }
            // The address is free again.
            _ = try await service.register(email: "gone@example.com", password: "correct horse")
        }
    }

    @Test(arguments: AdminStoreKind.allCases)
    func sessionsAreListedAndEndedOneByOne(_ kind: AdminStoreKind) async throws {
        try await withService(kind) { fixture in
            let service = fixture.service
            let grant = try await service.register(email: "s@example.com", password: "correct horse")
            #expect(try await service.adminSessions(userID: grant.user.id).map(\.id) == [grant.sessionID])
            await #expect(throws: AuthError.sessionNotFound) { try await service.adminRevokeSession(userID: grant.user.id, sessionID: "nope") }
            try await service.adminRevokeSession(userID: grant.user.id, sessionID: grant.sessionID)
            await #expect(throws: AuthError.tokenRevoked) { _ = try await service.authenticate(bearer: grant.accessToken) }
            #expect(try await service.adminSessions(userID: grant.user.id).isEmpty)
            await #expect(throws: AuthError.userNotFound) { _ = try await service.adminSessions(userID: "nobody") }
        }
    }

    @Test(arguments: AdminStoreKind.allCases)
    func resealMovesEveryMFASecretAndCredentialToTheNewKey(_ kind: AdminStoreKind) async throws {
        try await withService(kind) { fixture in
            let service = fixture.service
            var claims: [AccessClaims] = []
            for index in 0..<3 {
                let grant = try await service.register(email: "m\(index)@example.com", password: "correct horse")
                let claim = try await service.authenticate(bearer: grant.accessToken)
                _ = try await service.enrollMFA(password: "correct horse", claim)
                claims.append(claim)
            }
            try await service.putCredential(named: "idp", value: Data("{\"a\":1}".utf8), claims[0])
            try await service.putCredential(named: "other", value: Data("[2]".utf8), claims[1])
            let oldKey = service.keyRing.secrets.keys[0].id
            #expect(try await service.resealSecrets().mfaSecrets.current == 3)
            let (rotated, newKey) = service.keyRing.secrets.rotating()
            service.keyRing.replace(secrets: rotated)
            #expect(try await service.sealedSecretCount(keyID: oldKey) == 5)
            let report = try await service.resealSecrets()
            #expect(report.mfaSecrets.resealed == 3 && report.mfaSecrets.current == 0 && report.mfaSecrets.unreadable == 0)
            #expect(report.credentials.resealed == 2 && report.credentials.unreadable == 0)
            #expect(try await service.sealedSecretCount(keyID: oldKey) == 0)
            #expect(try await service.sealedSecretCount(keyID: newKey.id) == 5)
            // Still the same secrets: each opens under the new key alone.
            let onlyNew = SecretBox(keys: [newKey])
            for secret in try await service.users.sealedMFASecrets() {
                #expect(throws: Never.self) { try onlyNew.open(secret.sealed, context: "totp|\(secret.ownerID)") }
            }
            service.keyRing.replace(secrets: onlyNew)
            #expect(try await service.credential(named: "idp", claims[0]) == Data("{\"a\":1}".utf8))
            let again = try await service.resealSecrets()
            #expect(again.mfaSecrets.current == 3 && again.credentials.current == 2)
        }
    }

    @Test func aRefreshUnderThePreviousMACKeyComesBackUnderTheNewOne() async throws {
        try await withService(.memory) { fixture in
            let service = fixture.service
            let grant = try await service.register(email: "r@example.com", password: "correct horse")
            let old = service.keyRing.material
            let (rotated, newKey) = old.rotatingRefreshKey(now: fixture.clock.now())
            service.keyRing.replace(material: rotated)
            let refreshed = try await service.refresh(refreshToken: grant.refreshToken)
            #expect(RefreshTokenCodec(key: newKey.key).decode(refreshed.refreshToken) != nil)
            #expect(RefreshTokenCodec(key: old.refreshKey).decode(refreshed.refreshToken) == nil)
        }
    }

    @Test func aRetiredSigningKeysTokensStopAtOnce() async throws {
        try await withService(.memory) { fixture in
            let service = fixture.service
            let grant = try await service.register(email: "k@example.com", password: "correct horse")
            let old = service.keyRing.material
            let (staged, key) = try old.stagingSigningKey(now: fixture.clock.now(), publishDelay: 0)
            service.keyRing.replace(material: staged)
            #expect(throws: Never.self) { try service.accessTokens.verify(grant.accessToken, now: fixture.clock.now()) }
            _ = try await service.authenticate(bearer: grant.accessToken)
            let refreshed = try await service.refresh(refreshToken: grant.refreshToken)
            #expect(service.accessTokens.signingKeyID(at: fixture.clock.now()) == key.id)
            service.keyRing.replace(material: try staged.retiring(keyID: old.signingKeys[0].id, now: fixture.clock.now()))
            // Even though it was verified (and cached) before.
            await #expect(throws: AuthError.invalidToken) { _ = try await service.authenticate(bearer: grant.accessToken) }
            _ = try await service.authenticate(bearer: refreshed.accessToken)
        }
    }
}
