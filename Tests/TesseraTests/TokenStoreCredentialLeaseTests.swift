import Foundation
import Tessera
import Testing

extension StoreFixture {
    func acquire(_ session: SessionRecord, _ fence: String, ttl: TimeInterval = 10, _ name: String = "idp") async throws -> Bool {
        try await store.acquireCredentialLease(named: name, sessionID: session.id, userID: session.userID, fence: fence, ttl: ttl)
    }
}

/// The upstream-refresh lease (one refresher per credential), on every store.
extension TokenStoreConformanceTests {
    @Test(arguments: StoreKind.allCases)
    func oneLeaseHolderAtATimeAndOnlyItWrites(kind: StoreKind) async throws {
        try await withStore(kind) { f in
            let session = try await f.makeSession(user: "alice")
            #expect(try await f.store.putCredential(f.credential(session, sealed: "v1"), limit: 4) == .stored)
            #expect(try await f.acquire(session, "fence-a"))
            #expect(try await !f.acquire(session, "fence-b"))
            // Another credential of the session has a lease of its own.
            #expect(try await f.acquire(session, "fence-c", "other"))

            // A caller without the lease cannot write through it.
            #expect(try await !f.store.completeCredentialLease(f.credential(session, sealed: "from-b"), fence: "fence-b"))
            #expect(try await f.readCredential(session)?.sealed == "v1")

            #expect(try await f.store.completeCredentialLease(f.credential(session, sealed: "v2"), fence: "fence-a"))
            #expect(try await f.readCredential(session)?.sealed == "v2")
            // Completing ends the lease: the next refresher can take it, the old fence is spent.
            #expect(try await !f.store.completeCredentialLease(f.credential(session, sealed: "again"), fence: "fence-a"))
            #expect(try await f.acquire(session, "fence-b"))
        }
    }

    @Test(arguments: StoreKind.allCases)
    func aDeadHoldersLeaseEndsAtItsTTLAndItsLateWriteIsRefused(kind: StoreKind) async throws {
        try await withStore(kind) { f in
            let session = try await f.makeSession()
            #expect(try await f.store.putCredential(f.credential(session, sealed: "v1"), limit: 4) == .stored)
            #expect(try await f.acquire(session, "slow", ttl: 10))
            f.clock.advance(by: 9)
            #expect(try await !f.acquire(session, "next"))
            f.clock.advance(by: 1.5)
            #expect(try await f.acquire(session, "next"))
            // The first holder wakes up late: its result must not overwrite the new holder's.
            #expect(try await !f.store.completeCredentialLease(f.credential(session, sealed: "stale"), fence: "slow"))
            #expect(try await f.store.completeCredentialLease(f.credential(session, sealed: "fresh"), fence: "next"))
            #expect(try await f.readCredential(session)?.sealed == "fresh")
        }
    }

    @Test(arguments: StoreKind.allCases)
    func releaseEndsOnlyTheHoldersLease(kind: StoreKind) async throws {
        try await withStore(kind) { f in
            let session = try await f.makeSession()
            #expect(try await f.acquire(session, "holder"))
            try await f.store.releaseCredentialLease(named: "idp", sessionID: session.id, userID: session.userID, fence: "someone-else")
            #expect(try await !f.acquire(session, "waiter"))
            try await f.store.releaseCredentialLease(named: "idp", sessionID: session.id, userID: session.userID, fence: "holder")
            #expect(try await f.acquire(session, "waiter"))
        }
    }

    @Test(arguments: StoreKind.allCases)
    func concurrentAcquirersGetExactlyOneLease(kind: StoreKind) async throws {
        try await withStore(kind) { f in
            let session = try await f.makeSession()
            let store = f.store
            let winners = try await withThrowingTaskGroup(of: Bool.self) { group in
                for index in 0..<20 {
                    group.addTask {
                        try await store.acquireCredentialLease(named: "idp", sessionID: session.id, userID: session.userID, fence: "f\(index)", ttl: 10)
                    }
                }
                return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            #expect(winners == 1)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func leasesDoNotOutliveTheirSessionOrCredential(kind: StoreKind) async throws {
        try await withStore(kind) { f in
            let session = try await f.makeSession(user: "alice")
            #expect(try await f.store.putCredential(f.credential(session, sealed: "v1"), limit: 4) == .stored)
            #expect(try await f.acquire(session, "holder"))
            // Deleted while being refreshed: the refresh result does not bring it back.
            #expect(try await f.store.deleteCredential(named: "idp", sessionID: session.id, userID: "alice"))
            #expect(try await !f.store.completeCredentialLease(f.credential(session, sealed: "v2"), fence: "holder"))
            #expect(try await f.readCredential(session) == nil)

            #expect(try await f.store.putCredential(f.credential(session, sealed: "v3"), limit: 4) == .stored)
            #expect(try await f.acquire(session, "second"))
            #expect(try await f.store.revokeSession(id: session.id, userID: "alice", accessTTL: 900))
            #expect(try await !f.store.completeCredentialLease(f.credential(session, sealed: "v4"), fence: "second"))
            #expect(try await !f.acquire(session, "third"))
        }
    }
}
