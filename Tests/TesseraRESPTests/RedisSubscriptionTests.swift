import Synchronization
import TesseraTestSupport
import Testing

@testable import TesseraRESP

@Suite("Redis subscription (real redis-server)")
struct RedisSubscriptionTests {
    /// Whoever follows a subscription (the revocation view, the user cache) answers from Redis
    /// until it is subscribed again, so the gap after a lost connection must stay short however
    /// long the process has run: the reconnect starts when the connection closes (not at the
    /// next heartbeat) and a connection that had subscribed resets the backoff.
    @Test("re-subscribes promptly after every lost connection, however many came before", .timeLimit(.minutes(3)))
    func resubscribesPromptlyAfterEveryDrop() async throws {
        try await withRedisServer { server throws in
            var configuration = try testConfiguration(server)
            // Doubling from 10 ms without a reset, the 12th reconnect would wait at least
            // 10 ms × 2^11 × 0.5 ≈ 10 s; a reconnect held until the next heartbeat would wait
            // 30 s. Done right it takes milliseconds (seconds on a machine busy with the suite).
            configuration.reconnectBaseDelay = .milliseconds(10)
            configuration.reconnectMaximumDelay = .seconds(60)
            // The first heartbeat of each connection: it is then idle until the next one.
            let (beats, announce) = AsyncStream.makeStream(of: Int.self)
            let counted = Mutex<Set<Int>>([])
            let subscription = RedisSubscription(configuration: configuration, channels: ["test:drops"], heartbeatInterval: .seconds(30)) {
                event in
                if case .heartbeat(let connection, _) = event, counted.withLock({ $0.insert(connection).inserted }) {
                    announce.yield(connection)
                }
            }
            try await withThrowingTaskGroup { group in
                group.addTask { try await subscription.run() }
                var iterator = beats.makeAsyncIterator()
                let first = await iterator.next()
                #expect(first == 1)
                for drop in 1...13 {
                    let dropped = ContinuousClock.now
                    await subscription.dropConnection()
                    let connection = await iterator.next()
                    let gap = dropped.duration(to: .now)
                    #expect(connection == drop + 1)
                    #expect(gap < .seconds(10), "re-subscribing after drop \(drop) took \(gap)")
                }
                group.cancelAll()
            }
        }
    }
}
