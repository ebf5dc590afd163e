import ArgumentParser
import Synchronization
import TesseraRESP

/// `tessera bench-resp`: the RESP client's own throughput, many tasks sending one command each
/// in a loop through one `RedisClient`, the figure `scripts/bench` sets beside `redis-benchmark`
/// at the same concurrency. Hidden: not part of the service.
struct BenchRESP: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-resp", abstract: "Measure the RESP client's commands per second (benchmark).", shouldDisplay: false
    )

    enum Workload: String, ExpressibleByArgument, CaseIterable {
        /// `GET` of one existing key.
        case get
        /// `EVALSHA` of a one-key script (`GET` inside Lua).
        case evalsha
    }

    @Option(help: "Redis to load (a throwaway one on loopback).")
    var redisURL = "redis://127.0.0.1:6379"

    @Option(help: "Concurrent tasks, each one command at a time.")
    var tasks = 64

    @Option(help: "Seconds to run (1-120).")
    var seconds = 10

    @Option(help: "The command: get or evalsha.")
    var command: Workload = .get

    @Option(help: "Pool size (connections at most).")
    var connections: Int?

    func validate() throws {
        guard (1...120).contains(seconds) else { throw ValidationError("--seconds must be 1-120") }
        guard (1...4096).contains(tasks) else { throw ValidationError("--tasks must be 1-4096") }
    }

    func run() async throws {
        var configuration = try RedisConfiguration(url: redisURL)
        if let connections { configuration.maximumConnections = connections }
        let client = RedisClient(configuration: configuration)
        let key = RESPArgument("tessera:bench-resp:key")
        try await client.send(["SET", key, "value"])
        let script = RedisScript("return redis.call('GET', KEYS[1])")
        _ = try await client.evalScript(script, keys: [key], arguments: [])
        let counts = Counts()
        let command = self.command
        let deadline = ContinuousClock.now + .seconds(seconds)
        let started = ContinuousClock.now
        await withDiscardingTaskGroup { group in
            for _ in 0..<tasks {
                group.addTask {
                    while ContinuousClock.now < deadline {
                        do {
                            switch command {
                            case .get: try await client.send(["GET", key])
                            case .evalsha: _ = try await client.evalScript(script, keys: [key], arguments: [])
                            }
                            counts.completed.add(1, ordering: .relaxed)
                        } catch {
                            counts.failed.add(1, ordering: .relaxed)
                        }
                    }
                }
            }
        }
        let elapsed = started.duration(to: .now)
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let total = counts.completed.load(ordering: .relaxed)
        print("\(command.rawValue) tasks=\(tasks) connections=\(configuration.maximumConnections) ops=\(total) failed=\(counts.failed.load(ordering: .relaxed)) ops/s=\(Int(Double(total) / seconds))")
        await client.shutdown()
    }
}

private final class Counts: Sendable {
    let completed = Atomic<Int>(0)
    let failed = Atomic<Int>(0)
}
