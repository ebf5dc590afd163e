import Foundation
import Dispatch

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A throwaway Redis Cluster on loopback: `primaries` × (1 + `replicas`) `redis-server
/// --cluster-enabled yes` processes, joined with `redis-cli --cluster create`, with a short
/// `cluster-node-timeout` so that a killed primary's replica takes over within seconds.
/// Every process is one this helper started, signalled by its own PID.
public final class RedisClusterProcess: Sendable {
    public let nodes: [RedisServerProcess]
    public let nodeTimeoutMilliseconds: Int

    /// `redis-cluster://127.0.0.1:<p1>,127.0.0.1:<p2>,…` (every node a seed).
    public var url: String { "redis-cluster://" + nodes.map { "127.0.0.1:\($0.port)" }.joined(separator: ",") }

    private init(nodes: [RedisServerProcess], nodeTimeoutMilliseconds: Int) {
        self.nodes = nodes
        self.nodeTimeoutMilliseconds = nodeTimeoutMilliseconds
    }

    /// Starts the nodes on free port pairs; a port taken between the check and the bind (by a
    /// test running beside this one) makes it start again on other ports, up to three times.
    public static func start(primaries: Int = 3, replicas: Int = 1, nodeTimeoutMilliseconds: Int = 1000) async throws -> RedisClusterProcess {
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try await startOnce(primaries: primaries, replicas: replicas, nodeTimeoutMilliseconds: nodeTimeoutMilliseconds)
            } catch let failure as RedisServerProcess.Failure where attempt < 3 && failure.description.contains("Address already in use") {
                continue
            }
        }
    }

    private static func startOnce(primaries: Int, replicas: Int, nodeTimeoutMilliseconds: Int) async throws -> RedisClusterProcess {
        var nodes: [RedisServerProcess] = []
        do {
            var ports = Set<Int>()
            while ports.count < primaries * (1 + replicas) { ports.insert(try clusterPort()) }
            for port in ports.sorted() {
                let options = RedisServerProcess.Options(
                    extraConfiguration: [
                        "cluster-enabled yes", "cluster-config-file nodes.conf", "cluster-node-timeout \(nodeTimeoutMilliseconds)",
                        // Seconds, not the default ten, before a replica of a failed primary may run for election.
                        "cluster-replica-validity-factor 0", "cluster-require-full-coverage no",
                    ],
                    port: port
                )
                nodes.append(try RedisServerProcess(options: options))
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for node in nodes { group.addTask { try await node.start() } }
                try await group.waitForAll()
            }
            let cluster = RedisClusterProcess(nodes: nodes, nodeTimeoutMilliseconds: nodeTimeoutMilliseconds)
            let create = try await cluster.cli(
                ["--cluster", "create"] + nodes.map { "127.0.0.1:\($0.port)" } + ["--cluster-replicas", "\(replicas)", "--cluster-yes"],
                timeout: .seconds(60)
            )
            guard create.contains("[OK] All 16384 slots covered") else {
                throw RedisServerProcess.Failure(description: "redis-cli --cluster create failed: \(create.suffix(2000))")
            }
            try await cluster.waitUntilHealthy(timeout: .seconds(60))
            return cluster
        } catch {
            for node in nodes { await node.kill() }
            throw error
        }
    }

    /// Every running node answers `cluster_state:ok` with every slot served, and every replica
    /// has its link to its primary up.
    public func waitUntilHealthy(timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        var last = ""
        while ContinuousClock.now < deadline {
            var healthy = true
            for node in self.nodes where node.isRunning {
                last = (try? await self.cli(["-p", "\(node.port)", "CLUSTER", "INFO"], timeout: .seconds(5))) ?? ""
                if !last.contains("cluster_state:ok") || !last.contains("cluster_slots_ok:16384") {
                    healthy = false
                    break
                }
                // A replica still in its first sync would not acknowledge writes (WAIT).
                let replication = (try? await self.cli(["-p", "\(node.port)", "INFO", "replication"], timeout: .seconds(5))) ?? ""
                if replication.contains("role:slave"), !replication.contains("master_link_status:up") {
                    last = replication
                    healthy = false
                    break
                }
            }
            if healthy { return }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw RedisServerProcess.Failure(description: "cluster not healthy within \(timeout): \(last)")
    }

    /// The nodes that are primaries right now (by `ROLE`).
    public func primaries() async throws -> [RedisServerProcess] {
        var result: [RedisServerProcess] = []
        for node in self.nodes where node.isRunning {
            let role = try await self.cli(["-p", "\(node.port)", "ROLE"], timeout: .seconds(5))
            if role.hasPrefix("master") { result.append(node) }
        }
        return result
    }

    public func stop() async {
        await withTaskGroup(of: Void.self) { group in
            for node in self.nodes { group.addTask { await node.stop() } }
        }
    }

    /// Runs `redis-cli -h 127.0.0.1 <arguments>` and returns its standard output.
    public func cli(_ arguments: [String], timeout: Duration = .seconds(10)) async throws -> String {
        try await runRedisCLI(arguments, timeout: timeout)
    }

    /// A port whose cluster bus port (+10000) is free too, both below the ephemeral range.
    static func clusterPort() throws -> Int {
        for _ in 0..<200 {
            let port = Int.random(in: 10000..<22000)
            if RedisServerProcess.canBind(port: port), RedisServerProcess.canBind(port: port + 10000) { return port }
        }
        throw RedisServerProcess.Failure(description: "no free port pair for a cluster node")
    }
}

/// Runs `redis-cli -h 127.0.0.1 …` (no shell), bounded in time; its output as text.
public func runRedisCLI(_ arguments: [String], timeout: Duration = .seconds(10)) async throws -> String {
    let executable = try RedisServerProcess.findRedisServer().deletingLastPathComponent().appendingPathComponent("redis-cli")
    let process = Process()
    process.executableURL = executable
    process.arguments = ["-h", "127.0.0.1"] + arguments
    let output = Pipe()
    process.standardOutput = output
    process.standardError = output
    process.standardInput = FileHandle.nullDevice
    let finished = AsyncStream<Void>.makeStream()
    process.terminationHandler = { _ in finished.continuation.finish() }
    try runWithSignalsUnblocked(process)
    // Read while it runs, so a full pipe never blocks it — on a Dispatch thread: a blocking read
    // on one of the few cooperative threads (two on a 2-core machine) can starve every task
    // of the suite while a long command (a script kept busy on purpose) runs.
    let reader = Task {
        await withCheckedContinuation { (continuation: CheckedContinuation<Data, Never>) in
            DispatchQueue.global().async { continuation.resume(returning: output.fileHandleForReading.readDataToEndOfFile()) }
        }
    }
    let timer = Task {
        try await Task.sleep(for: timeout)
        if process.isRunning { sendSignal(process.processIdentifier, SIGKILL) }
    }
    for await _ in finished.stream {}
    timer.cancel()
    let data = await reader.value
    return String(decoding: data, as: UTF8.self)
}

/// Starts a cluster, runs `body`, and always stops every node.
public func withRedisCluster<T>(
    primaries: Int = 3, replicas: Int = 1, _ body: (RedisClusterProcess) async throws -> T
) async throws -> T {
    let cluster = try await RedisClusterProcess.start(primaries: primaries, replicas: replicas)
    return try await withCleanup({ await cluster.stop() }) { try await body(cluster) }
}
