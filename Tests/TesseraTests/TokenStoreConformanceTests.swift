import Foundation
import Tessera
import Testing

/// One suite, every store: the behaviour the token service relies on.
@Suite("TokenStore conformance", .redisCluster)
struct TokenStoreConformanceTests {
    @Test(arguments: StoreKind.everywhere)
    func sessionsAreStoredAndListedPerUser(kind: StoreKind) async throws {
        try await withStore(kind) { f in
            let a = try await f.makeSession(user: "alice")
            f.clock.advance(by: 1)
            let b = try await f.makeSession(user: "alice")
            _ = try await f.makeSession(user: "bob")
            #expect(try await f.store.session(id: a.id, userID: a.userID) == a)
            #expect(try await f.store.sessions(userID: "alice").map(\.id) == [a.id, b.id])
            #expect(try await f.store.sessions(userID: "bob").count == 1)
            #expect(try await f.store.session(id: "missing", userID: "user-1") == nil)
        }
    }

    @Test(arguments: StoreKind.everywhere)
    func sessionsExpireByIdleAndAbsoluteLifetime(kind: StoreKind) async throws {
        try await withStore(kind) { f in
            let idle = try await f.makeSession(idle: 100, absolute: 1000)
            let absolute = try await f.makeSession(idle: 100, absolute: 150)
            f.clock.advance(by: 90)
            // Rotation extends the idle lifetime, but never past the absolute one.
            guard case .rotated(let rotated) = try await f.store.rotate(f.rotation(absolute, generation: 1, idle: 100)) else {
                Issue.record("expected a rotation")
                return
            }
            #expect(rotated.idleExpiresAt == absolute.absoluteExpiresAt)
            f.clock.advance(by: 11)
            #expect(try await f.store.session(id: idle.id, userID: idle.userID) == nil)
            #expect(try await f.store.rotate(f.rotation(idle, generation: 1)) == .invalid)
            #expect(try await f.store.session(id: absolute.id, userID: absolute.userID) != nil)
            f.clock.advance(by: 50)
            #expect(try await f.store.session(id: absolute.id, userID: absolute.userID) == nil)
            #expect(try await f.store.sessions(userID: "user-1").isEmpty)
        }
    }

    @Test(arguments: StoreKind.everywhere)
    func rotationAdvancesTheGeneration(kind: StoreKind) async throws {
        try await withStore(kind) { f in
            let session = try await f.makeSession()
            f.clock.advance(by: 5)
            let outcome = try await f.store.rotate(f.rotation(session, generation: 1))
            guard case .rotated(let rotated) = outcome else {
                Issue.record("expected .rotated, got \(outcome)")
                return
            }
            #expect(rotated.generation == 2)
            #expect(rotated.rotatedAt == f.clock.now())
            #expect(rotated.lastUsedAt == f.clock.now())
            #expect(rotated.idleExpiresAt == f.clock.now().addingTimeInterval(3600))
            #expect(try await f.store.session(id: session.id, userID: session.userID)?.generation == 2)
        }
    }

    @Test(arguments: StoreKind.everywhere)
    func previousGenerationInsideGraceIsAnsweredWithTheCurrentOne(kind: StoreKind) async throws {
        try await withStore(kind) { f in
            let session = try await f.makeSession()
            _ = try await f.store.rotate(f.rotation(session, generation: 1))
            f.clock.advance(by: 9)
            let outcome = try await f.store.rotate(f.rotation(session, generation: 1, grace: 10))
            guard case .reissued(let current) = outcome else {
                Issue.record("expected .reissued, got \(outcome)")
                return
            }
            #expect(current.generation == 2)
            // Nothing new minted: the current generation is still 2 and still rotates.
            guard case .rotated(let next) = try await f.store.rotate(f.rotation(session, generation: 2)) else {
                Issue.record("current generation should still rotate")
                return
            }
            #expect(next.generation == 3)
        }
    }

    @Test(arguments: StoreKind.everywhere)
    func reuseAfterGraceRevokesTheSession(kind: StoreKind) async throws {
        try await withStore(kind) { f in
            let session = try await f.makeSession(user: "alice")
            _ = try await f.store.rotate(f.rotation(session, generation: 1))
            f.clock.advance(by: 11)
            #expect(try await f.store.rotate(f.rotation(session, generation: 1, grace: 10)) == .reused(userID: "alice"))
            #expect(try await f.store.session(id: session.id, userID: session.userID) == nil)
            #expect(try await f.store.rotate(f.rotation(session, generation: 2)) == .invalid)
            #expect(try await f.store.isRevoked(tokenID: "any", sessionID: session.id, userID: session.userID))
        }
    }

    @Test(arguments: StoreKind.everywhere)
    func olderGenerationsAreReuseEvenInsideGrace(kind: StoreKind) async throws {
        try await withStore(kind) { f in
            let session = try await f.makeSession(user: "alice")
            _ = try await f.store.rotate(f.rotation(session, generation: 1))
            _ = try await f.store.rotate(f.rotation(session, generation: 2))
            // Generation 1 is two behind: a grace rule must not let it through.
            #expect(try await f.store.rotate(f.rotation(session, generation: 1, grace: 10)) == .reused(userID: "alice"))
            #expect(try await f.store.session(id: session.id, userID: session.userID) == nil)
        }
    }

    @Test(arguments: StoreKind.everywhere)
    func aGenerationFromTheFutureIsInvalid(kind: StoreKind) async throws {
        try await withStore(kind) { f in
            let session = try await f.makeSession()
            #expect(try await f.store.rotate(f.rotation(session, generation: 5)) == .invalid)
            var otherUser = f.rotation(session, generation: 1)
            otherUser.userID = "mallory"
            #expect(try await f.store.rotate(otherUser) == .invalid)
            #expect(try await f.store.session(id: session.id, userID: "mallory") == nil)
            #expect(try await f.store.session(id: session.id, userID: session.userID)?.generation == 1)
        }
    }

    @Test(arguments: StoreKind.everywhere)
    func concurrentRotationsNeverForkTheSession(kind: StoreKind) async throws {
        try await withStore(kind) { f in
            let session = try await f.makeSession()
            let store = f.store
            let request = f.rotation(session, generation: 1)
            let outcomes = try await withThrowingTaskGroup(of: RotationOutcome.self) { group in
                for _ in 0..<64 { group.addTask { try await store.rotate(request) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let rotated = outcomes.filter { if case .rotated = $0 { true } else { false } }
            let reissued = outcomes.compactMap { if case .reissued(let s) = $0 { s.generation } else { nil } }
            #expect(rotated.count == 1)
            #expect(reissued.count == 63)
            #expect(reissued.allSatisfy { $0 == 2 })
            #expect(try await store.session(id: session.id, userID: session.userID)?.generation == 2)
        }
    }

    @Test(arguments: StoreKind.everywhere)
    func concurrentRotationsWithoutGraceLeaveOneWinnerAndRevoke(kind: StoreKind) async throws {
        try await withStore(kind) { f in
            let session = try await f.makeSession()
            let store = f.store
            // Concurrent presenters of generation 1 with no grace: one rotates, the
            // replays after it are re-use; either way there is never a second chain.
            f.clock.advance(by: 1)
            let request = f.rotation(session, generation: 1, grace: -1)
            let outcomes = try await withThrowingTaskGroup(of: RotationOutcome.self) { group in
                for _ in 0..<16 { group.addTask { try await store.rotate(request) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(outcomes.filter { if case .rotated = $0 { true } else { false } }.count == 1)
            #expect(outcomes.contains(.reused(userID: "user-1")))
            #expect(try await store.session(id: session.id, userID: session.userID) == nil)
        }
    }

    @Test(arguments: StoreKind.everywhere)
    func revokeAllEndsEverySessionOfTheUserOnly(kind: StoreKind) async throws {
        try await withStore(kind) { f in
            let mine = [try await f.makeSession(user: "alice"), try await f.makeSession(user: "alice"), try await f.makeSession(user: "alice")]
            let other = try await f.makeSession(user: "bob")
            #expect(try await f.store.revokeAllSessions(userID: "alice", keeping: nil, accessTTL: 900) == 3)
            #expect(try await f.store.sessions(userID: "alice").isEmpty)
            for session in mine {
                #expect(try await f.store.isRevoked(tokenID: "x", sessionID: session.id, userID: session.userID))
                #expect(try await f.store.rotate(f.rotation(session, generation: 1)) == .invalid)
            }
            #expect(try await f.store.session(id: other.id, userID: other.userID) != nil)
            #expect(try await !f.store.isRevoked(tokenID: "x", sessionID: other.id, userID: other.userID))
        }
    }

    @Test(arguments: StoreKind.everywhere)
    func revokeAllCanKeepTheCallersSession(kind: StoreKind) async throws {
        try await withStore(kind) { f in
            let keep = try await f.makeSession(user: "alice")
            let end = try await f.makeSession(user: "alice")
            #expect(try await f.store.revokeAllSessions(userID: "alice", keeping: keep.id, accessTTL: 900) == 1)
            #expect(try await f.store.sessions(userID: "alice").map(\.id) == [keep.id])
            #expect(try await f.store.isRevoked(tokenID: "x", sessionID: end.id, userID: end.userID))
        }
    }

    @Test(arguments: StoreKind.everywhere)
    func revokeOneSessionChecksItsOwner(kind: StoreKind) async throws {
        try await withStore(kind) { f in
            let session = try await f.makeSession(user: "alice")
            #expect(try await !f.store.revokeSession(id: session.id, userID: "mallory", accessTTL: 900))
            #expect(try await f.store.session(id: session.id, userID: session.userID) != nil)
            #expect(try await f.store.revokeSession(id: session.id, userID: "alice", accessTTL: 900))
            #expect(try await f.store.session(id: session.id, userID: session.userID) == nil)
            #expect(try await !f.store.revokeSession(id: session.id, userID: "alice", accessTTL: 900))
        }
    }

    @Test(arguments: StoreKind.everywhere)
    func endingASessionDeniesItAndItsTokenInOneStep(kind: StoreKind) async throws {
        try await withStore(kind) { f in
            let session = try await f.makeSession(user: "alice")
            let tokenExpiry = f.clock.now().addingTimeInterval(300)
            #expect(try await f.store.endSession(id: session.id, userID: "alice", accessTTL: 900, tokenID: "jti-a", tokenExpiresAt: tokenExpiry))
            #expect(try await f.store.session(id: session.id, userID: "alice") == nil)
            #expect(try await f.store.isRevoked(tokenID: "another", sessionID: session.id, userID: "alice"))
            // The token's own entry stands apart from its session's.
            #expect(try await f.store.isRevoked(tokenID: "jti-a", sessionID: "elsewhere", userID: "alice"))

            // A second logout with the same token finds no session and still denies the token.
            #expect(try await !f.store.endSession(id: session.id, userID: "alice", accessTTL: 900, tokenID: "jti-b", tokenExpiresAt: tokenExpiry))
            #expect(try await f.store.isRevoked(tokenID: "jti-b", sessionID: "elsewhere", userID: "alice"))

            // Another user's session is not ended.
            let bobs = try await f.makeSession(user: "bob")
            #expect(try await !f.store.endSession(id: bobs.id, userID: "alice", accessTTL: 900, tokenID: "jti-c", tokenExpiresAt: tokenExpiry))
            #expect(try await f.store.session(id: bobs.id, userID: "bob") != nil)
            #expect(try await !f.store.isRevoked(tokenID: "unrelated", sessionID: bobs.id, userID: "bob"))

            // An expired token needs no entry; the session is still ended.
            let other = try await f.makeSession(user: "alice")
            let past = f.clock.now().addingTimeInterval(-1)
            #expect(try await f.store.endSession(id: other.id, userID: "alice", accessTTL: 900, tokenID: "jti-d", tokenExpiresAt: past))
            #expect(try await !f.store.isRevoked(tokenID: "jti-d", sessionID: "elsewhere", userID: "alice"))

            f.clock.advance(by: 301)
            #expect(try await !f.store.isRevoked(tokenID: "jti-a", sessionID: "elsewhere", userID: "alice"))
            #expect(try await f.store.isRevoked(tokenID: "another", sessionID: session.id, userID: "alice"))
        }
    }

    @Test(arguments: StoreKind.everywhere)
    func denylistEntriesLiveUntilTheTokenExpiresAndNoLonger(kind: StoreKind) async throws {
        try await withStore(kind) { f in
            try await f.store.deny(.tokenID("jti-1"), userID: "user-1", until: f.clock.now().addingTimeInterval(60))
            #expect(try await f.store.isRevoked(tokenID: "jti-1", sessionID: "s", userID: "user-1"))
            #expect(try await !f.store.isRevoked(tokenID: "jti-2", sessionID: "s", userID: "user-1"))
            let session = try await f.makeSession()
            _ = try await f.store.revokeSession(id: session.id, userID: session.userID, accessTTL: 900)
            f.clock.advance(by: 61)
            #expect(try await !f.store.isRevoked(tokenID: "jti-1", sessionID: "s", userID: "user-1"))
            #expect(try await f.store.isRevoked(tokenID: "other", sessionID: session.id, userID: session.userID))
            f.clock.advance(by: 900)
            #expect(try await !f.store.isRevoked(tokenID: "other", sessionID: session.id, userID: session.userID))
            // Stores without native expiry remove expired entries in the sweep; Redis expires
            // them by TTL (checked in RedisTokenStoreTests).
            if f.kind.needsSweep {
                #expect(try await f.store.purgeExpired() >= 2)
            }
            #expect(try await f.store.purgeExpired() == 0)
        }
    }

    @Test(arguments: StoreKind.everywhere)
    func oneTimeTokensAreConsumedOnce(kind: StoreKind) async throws {
        try await withStore(kind) { f in
            let token = OneTimeToken(kind: "reset", hash: "h1", userID: "alice", payload: "p", expiresAt: f.clock.now().addingTimeInterval(3600))
            try await f.store.putOneTimeToken(token)
            #expect(try await f.store.consumeOneTimeToken(kind: "mfa", userID: "alice", hash: "h1") == nil)
            #expect(try await f.store.consumeOneTimeToken(kind: "reset", userID: "bob", hash: "h1") == nil)
            #expect(try await f.store.consumeOneTimeToken(kind: "reset", userID: "alice", hash: "wrong") == nil)
            #expect(try await f.store.consumeOneTimeToken(kind: "reset", userID: "alice", hash: "h1") == token)
            #expect(try await f.store.consumeOneTimeToken(kind: "reset", userID: "alice", hash: "h1") == nil)
        }
    }

    @Test(arguments: StoreKind.everywhere)
    func oneTimeTokensExpireAndAreReplacedPerUser(kind: StoreKind) async throws {
        try await withStore(kind) { f in
            let now = f.clock.now()
            try await f.store.putOneTimeToken(.init(kind: "reset", hash: "old", userID: "alice", expiresAt: now.addingTimeInterval(60)))
            try await f.store.putOneTimeToken(.init(kind: "reset", hash: "new", userID: "alice", expiresAt: now.addingTimeInterval(60)))
            try await f.store.putOneTimeToken(.init(kind: "reset", hash: "bob", userID: "bob", expiresAt: now.addingTimeInterval(60)))
            #expect(try await f.store.consumeOneTimeToken(kind: "reset", userID: "alice", hash: "old") == nil)
            f.clock.advance(by: 61)
            #expect(try await f.store.consumeOneTimeToken(kind: "reset", userID: "alice", hash: "new") == nil)
            #expect(try await f.store.consumeOneTimeToken(kind: "reset", userID: "bob", hash: "bob") == nil)
        }
    }

    /// The MFA put-back after a wrong code: it must never overwrite a token issued meanwhile.
    @Test(arguments: StoreKind.everywhere)
    func restoringAConsumedTokenNeverOverwritesANewerOne(kind: StoreKind) async throws {
        try await withStore(kind) { f in
            let now = f.clock.now()
            let first = OneTimeToken(kind: "mfa", hash: "first", userID: "alice", payload: "{\"attempts\":1}", expiresAt: now.addingTimeInterval(300))
            try await f.store.putOneTimeToken(first)
            let taken = try #require(try await f.store.consumeOneTimeToken(kind: "mfa", userID: "alice", hash: "first"))
            // A new login issued a newer token while the code was being checked.
            let newer = OneTimeToken(kind: "mfa", hash: "newer", userID: "alice", payload: "{}", expiresAt: now.addingTimeInterval(300))
            try await f.store.putOneTimeToken(newer)
            #expect(try await f.store.restoreOneTimeToken(taken) == false)
            #expect(try await f.store.consumeOneTimeToken(kind: "mfa", userID: "alice", hash: "first") == nil)
            #expect(try await f.store.consumeOneTimeToken(kind: "mfa", userID: "alice", hash: "newer") == newer)
            // With no other token, the put-back is stored and works once.
            #expect(try await f.store.restoreOneTimeToken(taken) == true)
            #expect(try await f.store.restoreOneTimeToken(taken) == false)
            #expect(try await f.store.consumeOneTimeToken(kind: "mfa", userID: "alice", hash: "first") == taken)
            // An expired leftover does not block the put-back; an expired token is not put back.
            try await f.store.putOneTimeToken(.init(kind: "mfa", hash: "stale", userID: "bob", expiresAt: now.addingTimeInterval(10)))
            f.clock.advance(by: 11)
            let bobs = OneTimeToken(kind: "mfa", hash: "again", userID: "bob", expiresAt: now.addingTimeInterval(300))
            #expect(try await f.store.restoreOneTimeToken(bobs) == true)
            #expect(try await f.store.restoreOneTimeToken(.init(kind: "mfa", hash: "old", userID: "carol", expiresAt: now)) == false)
            #expect(try await f.store.consumeOneTimeToken(kind: "mfa", userID: "bob", hash: "again") == bobs)
        }
    }

    @Test(arguments: StoreKind.everywhere)
    func concurrentConsumersGetTheTokenOnce(kind: StoreKind) async throws {
        try await withStore(kind) { f in
            try await f.store.putOneTimeToken(.init(kind: "reset", hash: "h", userID: "u", expiresAt: f.clock.now().addingTimeInterval(60)))
            let store = f.store
            let winners = try await withThrowingTaskGroup(of: Bool.self) { group in
                for _ in 0..<32 { group.addTask { try await store.consumeOneTimeToken(kind: "reset", userID: "u", hash: "h") != nil } }
                return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            #expect(winners == 1)
        }
    }

    @Test(arguments: StoreKind.everywhere.filter(\.isPersistent))
    func dataSurvivesReopening(kind: StoreKind) async throws {
        try await withStore(kind) { f in
            let session = try await f.makeSession(user: "alice")
            _ = try await f.store.rotate(f.rotation(session, generation: 1))
            try await f.store.deny(.tokenID("jti"), userID: "user-1", until: f.clock.now().addingTimeInterval(60))
            let reopened = try await f.reopen()
            #expect(try await reopened.session(id: session.id, userID: session.userID)?.generation == 2)
            #expect(try await reopened.isRevoked(tokenID: "jti", sessionID: "s", userID: "user-1"))
            guard case .rotated = try await reopened.rotate(f.rotation(session, generation: 2)) else {
                Issue.record("rotation after reopening failed")
                return
            }
        }
    }

    @Test(arguments: StoreKind.everywhere)
    func pingAnswers(kind: StoreKind) async throws {
        try await withStore(kind) { f in
            try await f.store.ping()
        }
    }
}
