import Foundation
import Tessera
import Testing

/// What the revocation stream is built on: every store that can push denials hands each one to
/// its followers, and its snapshot holds the live denylist.
@Suite("Revocation feed", .redisCluster)
struct RevocationFeedTests {
    @Test(arguments: StoreKind.everywhere)
    func everyDenialReachesFollowersAndTheSnapshot(kind: StoreKind) async throws {
        try await withStore(kind) { f in
            guard let feed = f.store.revocationFeed else {
                // Redis without a local view: nothing to follow (the stream answers 503).
                #expect(kind == .redis || kind == .redisCluster)
                return
            }
            // Followed before anything is written, as the stream endpoint does.
            let denials = feed.follow()
            let ended = try await f.makeSession(user: "alice")
            let other = try await f.makeSession(user: "alice")
            #expect(try await f.store.revokeSession(id: ended.id, userID: "alice", accessTTL: 900))
            try await f.store.deny(.tokenID("jti-1"), userID: "alice", until: f.clock.now().addingTimeInterval(60))
            #expect(try await f.store.revokeAllSessions(userID: "alice", keeping: nil, accessTTL: 900) == 1)

            let expected: Set<String> = ["sid:\(ended.id)", "jti:jti-1", "sid:\(other.id)"]
            let seen = try await Self.collect(denials, until: expected)
            #expect(seen.isSuperset(of: expected))
            let snapshot = Set(try await f.store.liveRevocations().map { "\($0.kind.rawValue):\($0.id)" })
            #expect(snapshot.isSuperset(of: expected))

            // `until` is where the last covered token expires, rounded up; past it, nothing is left.
            let entry = try #require(try await f.store.liveRevocations().first { $0.id == "jti-1" })
            #expect(entry.until == Int64(f.clock.now().addingTimeInterval(60).timeIntervalSince1970.rounded(.up)))
            f.clock.advance(by: 901)
            #expect(try await f.store.liveRevocations().isEmpty)
        }
    }

    @Test func aFollowerThatFallsBehindIsEndedNotSilentlyGapped() async throws {
        let feed = RevocationFeed(bufferSize: 2)
        let denials = feed.follow()
        feed.publish((1...3).map { Revocation(kind: .jti, id: "t\($0)", until: 2_000_000_000) })
        var received: [String] = []
        for await denial in denials { received.append(denial.id) }
        // The stream ended after what fitted: its follower must resync from a snapshot.
        #expect(received == ["t1", "t2"])
        #expect(feed.followerCount == 0)
    }

    @Test func interruptEndsEveryFollower() async throws {
        let feed = RevocationFeed()
        let first = feed.follow()
        let second = feed.follow()
        #expect(feed.followerCount == 2)
        feed.interrupt()
        for await _ in first { Issue.record("nothing was published") }
        for await _ in second { Issue.record("nothing was published") }
        #expect(feed.followerCount == 0)
    }

    @Test func storageKeysOfEveryStoreParse() {
        #expect(Revocation(storageKey: "sid:abc", until: 10.2) == Revocation(kind: .sid, id: "abc", until: 11))
        #expect(Revocation(storageKey: "tessera:{u:42}:deny:jti:x:y", until: 10) == Revocation(kind: .jti, id: "x:y", until: 10))
        #expect(Revocation(storageKey: "tessera:{u:42}:user", until: 10) == nil)
        #expect(Revocation(storageKey: "sid:", until: 10) == nil)
    }

    /// Reads the stream until every expected entry has come, for at most 30 s.
    static func collect(_ denials: AsyncStream<Revocation>, until expected: Set<String>) async throws -> Set<String> {
        try await withThrowingTaskGroup(of: Set<String>.self) { group in
            group.addTask {
                var seen = Set<String>()
                for await denial in denials {
                    seen.insert("\(denial.kind.rawValue):\(denial.id)")
                    if seen.isSuperset(of: expected) { break }
                }
                return seen
            }
            group.addTask {
                try await Task.sleep(for: .seconds(30))
                return []
            }
            let first = try await group.next() ?? []
            group.cancelAll()
            return first
        }
    }
}
