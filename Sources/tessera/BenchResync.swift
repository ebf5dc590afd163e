import ArgumentParser
import Foundation
import Logging
import Tessera
import TesseraRESP
import TesseraRedis

/// `tessera bench-resync`: how long the local revocation view stays untrusted when its
/// subscription is lost, next to whatever the Redis already holds (`scripts/bench` seeds a
/// million sessions first). Writes `--denials` denials, lets a view make its first load, then
/// drops its subscription `--reloads` times and times each return to trusted: reconnect,
/// `SUBSCRIBE`, the reload from the denial index. Hidden: not part of the service.
struct BenchResync: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-resync", abstract: "Measure the revocation view's reload after a lost subscription (benchmark).",
        shouldDisplay: false
    )

    @Option(help: "Redis to use (a throwaway one on loopback).")
    var redisURL = "redis://127.0.0.1:6379"

    @Option(help: "Key prefix of the sessions already there.")
    var keyPrefix = "tessera:"

    @Option(help: "Denials to write before the first load (0-1000000).")
    var denials = 10_000

    @Option(help: "Times to drop the subscription and wait for the reload (1-100).")
    var reloads = 10

    func validate() throws {
        guard (0...1_000_000).contains(denials) else { throw ValidationError("--denials must be 0-1000000") }
        guard (1...100).contains(reloads) else { throw ValidationError("--reloads must be 1-100") }
    }

    func run() async throws {
        let client = RedisClient(configuration: try RedisConfiguration(url: redisURL))
        let store = RedisTokenStore(client: client, keyPrefix: keyPrefix, durability: .primaryOnly)
        let until = Date().addingTimeInterval(3600)
        let writing = ContinuousClock.now
        try await withThrowingTaskGroup { group in
            // 64 writers: the denials are a setup step, not the figure.
            for worker in 0..<64 {
                group.addTask {
                    for n in stride(from: worker, to: denials, by: 64) {
                        try await store.deny(.session("bench-resync-\(n)"), userID: "bench-resync-\(n)", until: until)
                    }
                }
            }
            try await group.waitForAll()
        }
        let keys = try await client.send(["DBSIZE"]).int ?? 0
        print("denials=\(denials) written in \(Self.milliseconds(writing.duration(to: .now))) ms; keys=\(keys)")

        var logger = Logger(label: "tessera.revocations")
        logger.logLevel = .error
        let view = RevocationView(client: client, keyPrefix: keyPrefix, logger: logger)
        try await withThrowingTaskGroup { group in
            let started = ContinuousClock.now
            group.addTask { try await view.run() }
            try await Self.waitUntil(seconds: 120) { view.isTrusted && view.resyncCount >= 1 }
            // The first load SCANs the keyspace when the index is not yet marked complete.
            print(
                "first load: \(Self.format(Self.milliseconds(view.lastLoadDuration ?? .zero))) ms (trusted after "
                    + "\(Self.format(Self.milliseconds(started.duration(to: .now)))) ms), entries=\(view.count)"
            )
            var times: [Double] = []
            var loads: [Double] = []
            for _ in 0..<reloads {
                let before = view.resyncCount
                let dropped = ContinuousClock.now
                await view.dropSubscription()
                try await Self.waitUntil(seconds: 60) { view.resyncCount > before && view.isTrusted }
                times.append(Self.milliseconds(dropped.duration(to: .now)))
                loads.append(Self.milliseconds(view.lastLoadDuration ?? .zero))
                guard view.count >= denials else { throw ValidationError("the view holds \(view.count) entries, expected \(denials)") }
            }
            print("reload from the denial index (\(reloads)x): \(Self.summary(loads)); entries=\(view.count)")
            print("untrusted after a dropped subscription (reconnect, SUBSCRIBE, reload): \(Self.summary(times))")
            group.cancelAll()
        }
        await client.shutdown()
    }

    private static func waitUntil(seconds: Int, _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while !condition() {
            guard ContinuousClock.now < deadline else { throw ValidationError("the view did not become trusted within \(seconds) s") }
            try await Task.sleep(for: .microseconds(200))
        }
    }

    private static func milliseconds(_ duration: Duration) -> Double { duration / .milliseconds(1) }

    private static func summary(_ values: [Double]) -> String {
        let sorted = values.sorted()
        return "min \(format(sorted[0])) ms, median \(format(sorted[sorted.count / 2])) ms, max \(format(sorted[sorted.count - 1])) ms"
    }

    private static func format(_ milliseconds: Double) -> String { String(format: "%.1f", milliseconds) }
}
