import Foundation
import Tessera
import TesseraPostgres
import TesseraSQLite
import TesseraTestSupport
import Testing

/// Every user store implementation the conformance suite runs against.
enum UserStoreKind: String, CaseIterable, CustomStringConvertible, Sendable {
    case memory
    case sqlite
    /// A real PostgreSQL server, started for the test on a free loopback port.
    case postgres

    var description: String { rawValue }
    var isPersistent: Bool { self != .memory }
}

/// A fresh, empty user store of one kind.
struct UserStoreFixture: Sendable {
    let kind: UserStoreKind
    let store: any UserStore
    /// Opens the same backing data again, as a restarted process would, for the body's duration.
    let reopen: @Sendable (_ body: (any UserStore) async throws -> Void) async throws -> Void
}

func withUserStore(_ kind: UserStoreKind, _ body: (UserStoreFixture) async throws -> Void) async throws {
    switch kind {
    case .memory:
        let store = MemoryUserStore()
        try await body(UserStoreFixture(kind: kind, store: store, reopen: { try await $0(store) }))
    case .sqlite:
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("users.db").path
        let store = try await openSQLite(path).userStore()
        try await body(UserStoreFixture(kind: kind, store: store, reopen: { try await $0(try await openSQLite(path).userStore()) }))
    case .postgres:
        try await withPostgresServer { server in
            let url = server.url
            try await withMigratedPostgres(url: url) { database in
                try await body(
                    UserStoreFixture(kind: kind, store: database.userStore(), reopen: { reopened in
                        // A new database object and pool: what a restarted Tessera instance opens.
                        try await withMigratedPostgres(url: url) { try await reopened($0.userStore()) }
                    })
                )
            }
        }
    }
}

/// Opens, migrates and runs a `PostgresDatabase` (its pooled client needs `run()`) for `body`.
func withMigratedPostgres(
    url: String, operationTimeout: Duration = .seconds(10), _ body: (PostgresDatabase) async throws -> Void
) async throws {
    let database = try PostgresDatabase(url: url, operationTimeout: operationTimeout)
    try await database.migrate()
    try await withRunning(database) { try await body($0) }
}

func withRunning(_ database: PostgresDatabase, _ body: (PostgresDatabase) async throws -> Void) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await database.run() }
        // Cancelling run() closes the pool; the group then waits for it to finish.
        defer { group.cancelAll() }
        try await body(database)
    }
}

/// A user as AuthService makes one: whole-second `createdAt`. `updatedAt` has a fraction, built
/// from seconds since 1970 so that it is exactly representable the way sqlite/postgres store it.
func makeUser(email: String = "ada@example.com", id: String = SecureRandom.identifier()) -> User {
    User(
        id: id, email: email, passwordHash: "$2b$12$" + String(repeating: "a", count: 53), mfaEnabled: false,
        createdAt: Date(timeIntervalSince1970: 1_800_000_000),
        updatedAt: Date(timeIntervalSince1970: 1_800_000_000.125_25)
    )
}

@Suite("UserStore conformance")
struct UserStoreConformanceTests {
    @Test(arguments: UserStoreKind.allCases)
    func createdUserReadsBackByIDAndEmail(kind: UserStoreKind) async throws {
        try await withUserStore(kind) { f in
            #expect(f.store.backendName == kind.rawValue)
            let user = makeUser()
            let other = makeUser(email: "grace@example.com")
            try await f.store.createUser(user)
            try await f.store.createUser(other)
            #expect(try await f.store.user(id: user.id) == user)
            #expect(try await f.store.user(email: user.email) == user)
            #expect(try await f.store.user(email: other.email) == other)
        }
    }

    @Test(arguments: UserStoreKind.allCases)
    func emailsAreUnique(kind: UserStoreKind) async throws {
        try await withUserStore(kind) { f in
            let first = makeUser()
            try await f.store.createUser(first)
            await #expect(throws: UserStoreError.emailTaken) {
                try await f.store.createUser(makeUser(email: first.email))
            }
            #expect(try await f.store.user(email: first.email) == first)
        }
    }

    @Test(arguments: UserStoreKind.allCases)
    func updateChangesPasswordMFAAndEmail(kind: UserStoreKind) async throws {
        try await withUserStore(kind) { f in
            var user = makeUser()
            try await f.store.createUser(user)

            user.passwordHash = "$2b$12$" + String(repeating: "b", count: 53)
            user.mfaEnabled = true
            user.updatedAt = user.createdAt.addingTimeInterval(60.5)
            try await f.store.updateUser(user)
            #expect(try await f.store.user(id: user.id) == user)

            let oldEmail = user.email
            user.email = "ada.lovelace@example.com"
            try await f.store.updateUser(user)
            #expect(try await f.store.user(email: oldEmail) == nil)
            #expect(try await f.store.user(email: user.email) == user)
            #expect(try await f.store.user(id: user.id) == user)
            // The freed address can be registered again.
            try await f.store.createUser(makeUser(email: oldEmail))
        }
    }

    @Test(arguments: UserStoreKind.allCases)
    func theSealedMFASecretRoundTrips(kind: UserStoreKind) async throws {
        try await withUserStore(kind) { f in
            var user = makeUser()
            user.mfaSecret = "v1.sealed-at-enrolment"
            try await f.store.createUser(user)
            #expect(try await f.store.user(id: user.id)?.mfaSecret == "v1.sealed-at-enrolment")

            user.mfaSecret = "v1.sealed-again"
            user.mfaEnabled = true
            try await f.store.updateUser(user)
            #expect(try await f.store.user(id: user.id) == user)
            #expect(try await f.store.user(email: user.email) == user)

            user.mfaSecret = nil
            user.mfaEnabled = false
            try await f.store.updateUser(user)
            #expect(try await f.store.user(id: user.id) == user)
            if f.kind.isPersistent {
                user.mfaSecret = "v1.kept"
                try await f.store.updateUser(user)
                try await f.reopen { reopened in
                    let stored = try await reopened.user(id: user.id)
                    #expect(stored == user)
                }
            }
        }
    }

    @Test(arguments: UserStoreKind.allCases)
    func changingEmailToATakenOneFails(kind: UserStoreKind) async throws {
        try await withUserStore(kind) { f in
            let ada = makeUser(email: "ada@example.com")
            let grace = makeUser(email: "grace@example.com")
            try await f.store.createUser(ada)
            try await f.store.createUser(grace)
            var changed = grace
            changed.email = ada.email
            changed.mfaEnabled = true
            await #expect(throws: UserStoreError.emailTaken) { try await f.store.updateUser(changed) }
            // Nothing of the failed update was applied.
            #expect(try await f.store.user(id: grace.id) == grace)
            #expect(try await f.store.user(email: ada.email) == ada)
        }
    }

    @Test(arguments: UserStoreKind.allCases)
    func updatingAnUnknownUserIsNotFound(kind: UserStoreKind) async throws {
        try await withUserStore(kind) { f in
            await #expect(throws: UserStoreError.notFound) { try await f.store.updateUser(makeUser()) }
            let created = try await f.store.user(email: "ada@example.com")
            #expect(created == nil)
        }
    }

    @Test(arguments: UserStoreKind.allCases)
    func unknownIDsAndEmailsAreNil(kind: UserStoreKind) async throws {
        try await withUserStore(kind) { f in
            try await f.store.createUser(makeUser())
            #expect(try await f.store.user(id: "missing") == nil)
            #expect(try await f.store.user(email: "missing@example.com") == nil)
            // Emails are compared as stored: normalising is the caller's job.
            #expect(try await f.store.user(email: "ADA@example.com") == nil)
        }
    }

    @Test(arguments: UserStoreKind.allCases)
    func concurrentCreatesOfOneEmailLetExactlyOneWin(kind: UserStoreKind) async throws {
        try await withUserStore(kind) { f in
            let store = f.store
            let users = (0..<50).map { _ in makeUser(email: "race@example.com") }
            let outcomes = try await withThrowingTaskGroup(of: (String, Bool).self) { group in
                for user in users {
                    group.addTask {
                        do {
                            try await store.createUser(user)
                            return (user.id, true)
                        } catch UserStoreError.emailTaken {
                            return (user.id, false)
                        }
                    }
                }
                return try await group.reduce(into: [(String, Bool)]()) { $0.append($1) }
            }
            let winners = outcomes.filter(\.1).map(\.0)
            #expect(outcomes.count == 50)
            #expect(winners.count == 1)
            #expect(try await store.user(email: "race@example.com")?.id == winners.first)
        }
    }

    @Test(arguments: UserStoreKind.allCases)
    func recoveryCodesAreReplacedPerUserAndConsumedOnce(kind: UserStoreKind) async throws {
        try await withUserStore(kind) { f in
            let ada = makeUser()
            let grace = makeUser(email: "grace@example.com")
            try await f.store.createUser(ada)
            try await f.store.createUser(grace)
            #expect(try await f.store.recoveryCodeCount(userID: ada.id) == 0)
            try await f.store.replaceRecoveryCodes(userID: ada.id, hashes: ["a1", "a2", "a3"])
            try await f.store.replaceRecoveryCodes(userID: grace.id, hashes: ["g1"])
            #expect(try await f.store.recoveryCodeCount(userID: ada.id) == 3)
            // Another user's code is not this user's.
            #expect(try await f.store.consumeRecoveryCode(userID: ada.id, hash: "g1") == false)
            #expect(try await f.store.consumeRecoveryCode(userID: ada.id, hash: "a2") == true)
            #expect(try await f.store.consumeRecoveryCode(userID: ada.id, hash: "a2") == false)
            #expect(try await f.store.recoveryCodeCount(userID: ada.id) == 2)
            // Replacing drops every old code.
            try await f.store.replaceRecoveryCodes(userID: ada.id, hashes: ["b1", "b2"])
            #expect(try await f.store.consumeRecoveryCode(userID: ada.id, hash: "a1") == false)
            #expect(try await f.store.recoveryCodeCount(userID: ada.id) == 2)
            #expect(try await f.store.recoveryCodeCount(userID: grace.id) == 1)
            if f.kind.isPersistent {
                try await f.reopen { reopened in
                    let used = try await reopened.consumeRecoveryCode(userID: ada.id, hash: "b1")
                    #expect(used)
                }
            }
            // Concurrent uses of one code: exactly one wins.
            let store = f.store
            let winners = try await withThrowingTaskGroup(of: Bool.self) { group in
                for _ in 0..<16 { group.addTask { try await store.consumeRecoveryCode(userID: ada.id, hash: "b2") } }
                return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            #expect(winners == 1)
            try await f.store.replaceRecoveryCodes(userID: grace.id, hashes: [])
            #expect(try await f.store.recoveryCodeCount(userID: grace.id) == 0)
        }
    }

    @Test(arguments: UserStoreKind.allCases.filter(\.isPersistent))
    func usersSurviveReopening(kind: UserStoreKind) async throws {
        try await withUserStore(kind) { f in
            var user = makeUser()
            try await f.store.createUser(user)
            user.mfaEnabled = true
            try await f.store.updateUser(user)
            try await f.reopen { reopened in
                let byID = try await reopened.user(id: user.id)
                let byEmail = try await reopened.user(email: user.email)
                #expect(byID == user)
                #expect(byEmail == user)
                await #expect(throws: UserStoreError.emailTaken) { try await reopened.createUser(makeUser(email: user.email)) }
            }
        }
    }

    /// Dates from the system clock carry sub-microsecond bits. Both persistent stores keep double
    /// seconds since 1970, which can drop the last bit of a `Date` (its own epoch is 2001): at most
    /// one ulp near 2^30 s, about 0.24 µs. Whole seconds and the values above round-trip exactly.
    @Test(arguments: UserStoreKind.allCases)
    func systemClockDatesRoundTripWithinAMicrosecond(kind: UserStoreKind) async throws {
        try await withUserStore(kind) { f in
            let now = Date()
            let user = User(id: SecureRandom.identifier(), email: "now@example.com", passwordHash: "x", createdAt: now.wholeSeconds(), updatedAt: now)
            try await f.store.createUser(user)
            let stored = try #require(try await f.store.user(id: user.id))
            #expect(stored.createdAt == user.createdAt)
            #expect(abs(stored.updatedAt.timeIntervalSince(now)) < 1e-6)
            // What is stored is exactly the seconds since 1970 that the Date reports.
            #expect(stored.updatedAt.timeIntervalSince1970 == now.timeIntervalSince1970)
        }
    }
}

extension Date {
    /// Whole seconds, as AuthService stores `createdAt`.
    fileprivate func wholeSeconds() -> Date { Date(timeIntervalSince1970: timeIntervalSince1970.rounded(.down)) }
}

@Suite("Postgres user store")
struct PostgresUserStoreTests {
    @Test func concurrentMigrationsAllSucceed() async throws {
        try await withPostgresServer { server in
            let databases = try (0..<4).map { _ in try PostgresDatabase(url: server.url) }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for database in databases {
                    group.addTask { try await database.migrate() }
                }
                try await group.waitForAll()
            }
            // Migrating an up-to-date schema again is a no-op, and the schema works.
            try await databases[0].migrate()
            try await withRunning(databases[1]) { database in
                try await database.ping()
                let user = makeUser()
                try await database.userStore().createUser(user)
                #expect(try await database.userStore().user(id: user.id) == user)
            }
        }
    }

    /// A restarted (or failed-over) server: the pool drops its dead connections and reconnects;
    /// a request that picked a dead connection fails with `StoreError`, never with "absent".
    @Test func thePoolRecoversWhenTheServerRestarts() async throws {
        try await withPostgresServer { server in
            try await withMigratedPostgres(url: server.url, operationTimeout: .seconds(5)) { database in
                let store = database.userStore()
                let user = makeUser()
                try await store.createUser(user)
                try await server.restart()
                var found: User?
                var failures = 0
                for _ in 0..<20 where found == nil {
                    do {
                        found = try await store.user(id: user.id)
                        #expect(found != nil, "a live server must not answer absent")
                    } catch is StoreError {
                        failures += 1
                        try await Task.sleep(for: .milliseconds(100))
                    }
                }
                #expect(found == user)
                #expect(failures <= 2)
            }
        }
    }

    @Test func unreachableServerIsAStoreErrorNotAbsence() async throws {
        let database = try PostgresDatabase(
            url: "postgres://tessera:hunter2secret@127.0.0.1:1/tessera?sslmode=disable", operationTimeout: .seconds(2)
        )
        let error = await #expect(throws: StoreError.self) { try await database.migrate() }
        #expect(error?.backend == "postgres")
        #expect(error?.description.contains("hunter2secret") == false)
        // migrate() connects directly, so it reports the connection failure itself.
        #expect(error?.message.contains("connectionError") == true)
        try await withRunning(database) { database in
            let store = database.userStore()
            let started = ContinuousClock.now
            let lookup = await #expect(throws: StoreError.self) { _ = try await store.user(id: "any") }
            // Bounded by the 2 s operation timeout, not the pool's minute-long circuit breaker
            // (generous: loaded CI machines are slow).
            #expect(ContinuousClock.now - started < .seconds(30))
            #expect(lookup?.description.contains("hunter2secret") == false)
            await #expect(throws: StoreError.self) { try await store.createUser(makeUser()) }
            await #expect(throws: StoreError.self) { try await database.ping() }
        }
    }

    @Test func wrongPasswordIsAStoreError() async throws {
        try await withPostgresServer { server in
            let url = server.url.replacingOccurrences(of: ":\(server.password)@", with: ":wrong-password@")
            let database = try PostgresDatabase(url: url, operationTimeout: .seconds(2))
            let error = await #expect(throws: StoreError.self) { try await database.migrate() }
            #expect(error?.description.contains("wrong-password") == false)
            // The server's reason, not a timeout: invalid_password.
            #expect(error?.message.contains("28P01") == true)
        }
    }

    @Test func invalidURLsAreRejectedWithoutEchoingThePassword() throws {
        for url in ["mysql://u:topsecret@host/db", "postgres://u:topsecret@host/db?sslmode=sometimes", "postgres:///db", "postgres://host/db"] {
            let error = #expect(throws: PostgresConfigurationError.self) { try PostgresDatabase(url: url) }
            #expect(error?.description.contains("topsecret") == false)
        }
        let database = try PostgresDatabase(url: "postgresql://app:p%40ss@db.internal:6432/tessera?sslmode=require")
        #expect(database.redactedURL == "postgresql://app@db.internal:6432/tessera")
    }
}

/// What the operator actions (lock, delete, re-seal) need from every user store.
@Suite("UserStore conformance: admin")
struct UserStoreAdminConformanceTests {
    @Test(arguments: UserStoreKind.allCases)
    func aLockRoundTripsAndClears(kind: UserStoreKind) async throws {
        try await withUserStore(kind) { f in
            var user = makeUser()
            try await f.store.createUser(user)
            #expect(try await f.store.user(id: user.id)?.lockedAt == nil)
            user.lockedAt = Date(timeIntervalSince1970: 1_800_000_100.5)
            try await f.store.updateUser(user)
            #expect(try await f.store.user(email: user.email) == user)
            user.lockedAt = nil
            try await f.store.updateUser(user)
            #expect(try await f.store.user(id: user.id)?.lockedAt == nil)
        }
    }

    @Test(arguments: UserStoreKind.allCases)
    func deletingRemovesTheUserAndTheirRecoveryCodes(kind: UserStoreKind) async throws {
        try await withUserStore(kind) { f in
            let user = makeUser()
            let other = makeUser(email: "grace@example.com")
            try await f.store.createUser(user)
            try await f.store.createUser(other)
            try await f.store.replaceRecoveryCodes(userID: user.id, hashes: ["a", "b"])
            #expect(try await f.store.deleteUser(id: user.id))
            #expect(try await f.store.deleteUser(id: user.id) == false)
            #expect(try await f.store.user(id: user.id) == nil)
            #expect(try await f.store.user(email: user.email) == nil)
            #expect(try await f.store.recoveryCodeCount(userID: user.id) == 0)
            #expect(try await f.store.user(id: other.id) == other)
            // The address can be registered again.
            try await f.store.createUser(makeUser(email: user.email))
        }
    }

    @Test(arguments: UserStoreKind.allCases)
    func mfaSecretsAreListedAndReplacedByCompareAndSet(kind: UserStoreKind) async throws {
        try await withUserStore(kind) { f in
            var user = makeUser()
            user.mfaSecret = "v1.old.sealed"
            try await f.store.createUser(user)
            try await f.store.createUser(makeUser(email: "nomfa@example.com"))
            #expect(try await f.store.sealedMFASecrets() == [SealedSecret(ownerID: user.id, sealed: "v1.old.sealed")])
            #expect(try await f.store.replaceMFASecret(userID: user.id, expected: "v1.other.sealed", with: "v1.new.x") == false)
            #expect(try await f.store.replaceMFASecret(userID: user.id, expected: "v1.old.sealed", with: "v1.new.sealed"))
            let stored = try await f.store.user(id: user.id)
            #expect(stored?.mfaSecret == "v1.new.sealed")
            // Nothing else of the row changes.
            #expect(stored?.passwordHash == user.passwordHash && stored?.updatedAt == user.updatedAt)
        }
    }
}
