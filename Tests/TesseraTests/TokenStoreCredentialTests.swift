import Foundation
import Tessera
import Testing

extension StoreFixture {
    func credential(_ session: SessionRecord, _ name: String = "idp", sealed: String = "sealed-1") -> SessionCredential {
        SessionCredential(name: name, sessionID: session.id, userID: session.userID, sealed: sealed, updatedAt: clock.now())
    }

    func readCredential(_ session: SessionRecord, _ name: String = "idp") async throws -> SessionCredential? {
        try await store.credential(named: name, sessionID: session.id, userID: session.userID)
    }

    /// Creates the session again under the same id: what was stored with the old one must be gone.
    func recreate(_ session: SessionRecord) async throws {
        let now = clock.now()
        var again = session
        again.rotatedAt = now
        again.createdAt = now
        again.lastUsedAt = now
        again.idleExpiresAt = now.addingTimeInterval(3600)
        again.absoluteExpiresAt = now.addingTimeInterval(86400)
        try await store.createSession(again)
    }
}

/// Session credentials and statistics, on every store.
extension TokenStoreConformanceTests {
    @Test(arguments: StoreKind.allCases)
    func credentialsArePutReadReplacedAndDeleted(kind: StoreKind) async throws {
        try await withStore(kind) { f in
            let session = try await f.makeSession(user: "alice")
            let first = f.credential(session, sealed: "v1: with spaces and ünïcode")
            #expect(try await f.store.putCredential(first, limit: 4) == .stored)
            #expect(try await f.readCredential(session) == first)
            #expect(try await f.readCredential(session, "other") == nil)

            f.clock.advance(by: 1.25)
            let second = f.credential(session, sealed: "v2")
            #expect(try await f.store.putCredential(second, limit: 4) == .stored)
            #expect(try await f.readCredential(session) == second)

            #expect(try await f.store.deleteCredential(named: "idp", sessionID: session.id, userID: "alice"))
            #expect(try await f.readCredential(session) == nil)
            #expect(try await !f.store.deleteCredential(named: "idp", sessionID: session.id, userID: "alice"))
        }
    }

    @Test(arguments: StoreKind.allCases)
    func credentialsAreLimitedPerSession(kind: StoreKind) async throws {
        try await withStore(kind) { f in
            let session = try await f.makeSession()
            let other = try await f.makeSession()
            #expect(try await f.store.putCredential(f.credential(session, "a"), limit: 2) == .stored)
            #expect(try await f.store.putCredential(f.credential(session, "b"), limit: 2) == .stored)
            #expect(try await f.store.putCredential(f.credential(session, "c"), limit: 2) == .limitReached)
            // Replacing an existing name is not a new one; other sessions have their own budget.
            #expect(try await f.store.putCredential(f.credential(session, "a", sealed: "new"), limit: 2) == .stored)
            #expect(try await f.store.putCredential(f.credential(other, "c"), limit: 2) == .stored)
            #expect(try await f.readCredential(session, "c") == nil)
            #expect(try await f.readCredential(session, "a")?.sealed == "new")
            _ = try await f.store.deleteCredential(named: "b", sessionID: session.id, userID: session.userID)
            #expect(try await f.store.putCredential(f.credential(session, "c"), limit: 2) == .stored)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func credentialsBelongToTheOwnerOfALiveSession(kind: StoreKind) async throws {
        try await withStore(kind) { f in
            let session = try await f.makeSession(user: "alice", idle: 100)
            var stolen = f.credential(session)
            stolen.userID = "mallory"
            #expect(try await f.store.putCredential(stolen, limit: 4) == .sessionNotFound)
            var unknown = f.credential(session)
            unknown.sessionID = "missing"
            #expect(try await f.store.putCredential(unknown, limit: 4) == .sessionNotFound)

            let stored = f.credential(session)
            #expect(try await f.store.putCredential(stored, limit: 4) == .stored)
            #expect(try await f.store.credential(named: "idp", sessionID: session.id, userID: "mallory") == nil)
            #expect(try await !f.store.deleteCredential(named: "idp", sessionID: session.id, userID: "mallory"))
            #expect(try await f.readCredential(session) == stored)

            f.clock.advance(by: 100)
            #expect(try await f.readCredential(session) == nil)
            #expect(try await f.store.putCredential(f.credential(session), limit: 4) == .sessionNotFound)
            #expect(try await !f.store.deleteCredential(named: "idp", sessionID: session.id, userID: "alice"))
            if f.kind.needsSweep {
                _ = try await f.store.purgeExpired()
                try await f.recreate(session)
                #expect(try await f.readCredential(session) == nil)
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func credentialsAreRemovedWithTheirSession(kind: StoreKind) async throws {
        try await withStore(kind) { f in
            let revoked = try await f.makeSession(user: "alice")
            let keep = try await f.makeSession(user: "alice")
            let all = [try await f.makeSession(user: "alice"), try await f.makeSession(user: "alice")]
            let reused = try await f.makeSession(user: "alice")
            for session in [revoked, keep, reused] + all {
                #expect(try await f.store.putCredential(f.credential(session), limit: 4) == .stored)
            }

            #expect(try await f.store.revokeSession(id: revoked.id, userID: "alice", accessTTL: 900))
            #expect(try await f.readCredential(revoked) == nil)

            _ = try await f.store.rotate(f.rotation(reused, generation: 1))
            _ = try await f.store.rotate(f.rotation(reused, generation: 2))
            #expect(try await f.store.rotate(f.rotation(reused, generation: 1)) == .reused(userID: "alice"))
            #expect(try await f.readCredential(reused) == nil)

            #expect(try await f.store.revokeAllSessions(userID: "alice", keeping: keep.id, accessTTL: 900) == 2)
            #expect(try await f.readCredential(keep) == f.credential(keep))
            // Same ids again: nothing of the ended sessions' credentials comes back.
            for session in [revoked, reused] + all {
                #expect(try await f.readCredential(session) == nil)
                try await f.recreate(session)
                #expect(try await f.readCredential(session) == nil)
            }
        }
    }

    @Test(arguments: StoreKind.allCases.filter { $0.isPersistent })
    func credentialsSurviveReopening(kind: StoreKind) async throws {
        try await withStore(kind) { f in
            let session = try await f.makeSession()
            let stored = f.credential(session)
            #expect(try await f.store.putCredential(stored, limit: 4) == .stored)
            let reopened = try await f.reopen()
            #expect(try await reopened.credential(named: "idp", sessionID: session.id, userID: session.userID) == stored)
            #expect(try await reopened.revokeSession(id: session.id, userID: session.userID, accessTTL: 900))
            #expect(try await f.readCredential(session) == nil)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func statisticsCountLiveSessionsDenialsAndOneTimeTokens(kind: StoreKind) async throws {
        try await withStore(kind) { f in
            func expect(_ sessions: Int, _ denied: Int, _ pending: [String: Int], sourceLocation: SourceLocation = #_sourceLocation) async throws {
                let statistics = try await f.store.statistics()
                #expect(
                    statistics == TokenStoreStatistics(liveSessions: sessions, deniedTokens: denied, pendingOneTimeTokens: pending),
                    sourceLocation: sourceLocation
                )
            }
            try await expect(0, 0, [:])
            let short = try await f.makeSession(user: "alice", idle: 200)
            let revoked = try await f.makeSession(user: "alice")
            _ = try await f.makeSession(user: "bob")
            _ = try await f.store.putCredential(f.credential(short), limit: 4)
            try await expect(3, 0, [:])

            #expect(try await f.store.revokeSession(id: revoked.id, userID: "alice", accessTTL: 900))
            try await f.store.deny(.tokenID("jti-1"), userID: "bob", until: f.clock.now().addingTimeInterval(60))
            let now = f.clock.now()
            try await f.store.putOneTimeToken(.init(kind: "reset", hash: "a", userID: "alice", expiresAt: now.addingTimeInterval(120)))
            try await f.store.putOneTimeToken(.init(kind: "reset", hash: "b", userID: "bob", expiresAt: now.addingTimeInterval(120)))
            try await f.store.putOneTimeToken(.init(kind: "mfa", hash: "c", userID: "alice", expiresAt: now.addingTimeInterval(300)))
            try await expect(2, 2, ["reset": 2, "mfa": 1])

            _ = try await f.store.consumeOneTimeToken(kind: "reset", userID: "bob", hash: "b")
            f.clock.advance(by: 61)
            try await expect(2, 1, ["reset": 1, "mfa": 1])
            f.clock.advance(by: 140)
            try await expect(1, 1, ["mfa": 1])
            f.clock.advance(by: 900)
            try await expect(1, 0, [:])
            _ = try await f.store.revokeAllSessions(userID: "bob", keeping: nil, accessTTL: 900)
            try await expect(0, 1, [:])
        }
    }
}

/// Re-sealing: every credential of a live session is listed, and replaced only while unchanged.
extension TokenStoreConformanceTests {
    @Test(arguments: StoreKind.allCases)
    func credentialsAreListedAndReplacedByCompareAndSet(kind: StoreKind) async throws {
        try await withStore(kind) { f in
            let alice = try await f.makeSession(user: "alice")
            let bob = try await f.makeSession(user: "bob")
            let first = f.credential(alice, sealed: "v1.old.a")
            let second = f.credential(bob, "other", sealed: "v1.old.b")
            #expect(try await f.store.putCredential(first, limit: 4) == .stored)
            #expect(try await f.store.putCredential(second, limit: 4) == .stored)
            let listed = try await f.store.sealedCredentials().sorted { $0.userID < $1.userID }
            #expect(listed == [first, second])

            var resealed = first
            resealed.sealed = "v1.new.a"
            #expect(try await f.store.replaceSealedCredential(resealed, expected: "v1.stale") == false)
            #expect(try await f.readCredential(alice) == first)
            #expect(try await f.store.replaceSealedCredential(resealed, expected: "v1.old.a"))
            #expect(try await f.readCredential(alice) == resealed)

            // An ended session's credentials are neither listed nor written.
            #expect(try await f.store.revokeSession(id: bob.id, userID: "bob", accessTTL: 60))
            #expect(try await f.store.sealedCredentials() == [resealed])
            var late = second
            late.sealed = "v1.new.b"
            #expect(try await f.store.replaceSealedCredential(late, expected: "v1.old.b") == false)
        }
    }
}
