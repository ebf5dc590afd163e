import Foundation

/// A throwaway Sentinel deployment on loopback: one primary, `replicas` replicas and
/// `sentinels` Sentinels (`redis-server <conf> --sentinel`, quorum 2, one second to declare
/// the primary down). Every process is one this helper started, signalled by its own PID.
public final class RedisSentinelDeployment: Sendable {
    public static let masterName = "tessera-primary"
    /// The data nodes, the first started as the primary (which it stays only until a failover).
    public let servers: [RedisServerProcess]
    public let sentinels: [RedisServerProcess]

    /// `redis-sentinel://127.0.0.1:<s1>,…/0#tessera-primary`.
    public var url: String {
        "redis-sentinel://" + sentinels.map { "127.0.0.1:\($0.port)" }.joined(separator: ",") + "/0#\(Self.masterName)"
    }

    private init(servers: [RedisServerProcess], sentinels: [RedisServerProcess]) {
        self.servers = servers
        self.sentinels = sentinels
    }

    public static func start(replicas: Int = 1, sentinels sentinelCount: Int = 3) async throws -> RedisSentinelDeployment {
        var started: [RedisServerProcess] = []
        do {
            let primary = try await RedisServerProcess.start()
            started.append(primary)
            var servers = [primary]
            for _ in 0..<replicas {
                let replica = try await RedisServerProcess.start(options: .init(extraConfiguration: ["replicaof 127.0.0.1 \(primary.port)"]))
                started.append(replica)
                servers.append(replica)
            }
            var sentinels: [RedisServerProcess] = []
            for _ in 0..<sentinelCount {
                let sentinel = try RedisServerProcess(options: .init(
                    extraConfiguration: [
                        "sentinel monitor \(masterName) 127.0.0.1 \(primary.port) 2",
                        "sentinel down-after-milliseconds \(masterName) 1000",
                        "sentinel failover-timeout \(masterName) 5000",
                        "sentinel parallel-syncs \(masterName) 1",
                    ],
                    arguments: ["--sentinel"]
                ))
                try await sentinel.start()
                started.append(sentinel)
                sentinels.append(sentinel)
            }
            let deployment = RedisSentinelDeployment(servers: servers, sentinels: sentinels)
            try await deployment.waitUntilReplicated(timeout: .seconds(60))
            try await deployment.waitUntilSentinelsAgree(on: primary.port, timeout: .seconds(60))
            return deployment
        } catch {
            for process in started { await process.kill() }
            throw error
        }
    }

    /// The running data node that says it is the primary (`ROLE`), if exactly one does.
    public func currentPrimary() async -> RedisServerProcess? {
        var primaries: [RedisServerProcess] = []
        for server in servers where server.isRunning {
            if let role = try? await runRedisCLI(["-p", "\(server.port)", "ROLE"], timeout: .seconds(5)), role.hasPrefix("master") {
                primaries.append(server)
            }
        }
        return primaries.count == 1 ? primaries[0] : nil
    }

    /// Exactly one running data node is the primary, and every other one is its replica with
    /// the link up (after a switch, the old primary has been turned into a replica and synced).
    public func waitUntilReplicated(timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            var primaries = 0
            var ready = true
            for server in servers where server.isRunning {
                let info = (try? await runRedisCLI(["-p", "\(server.port)", "INFO", "replication"], timeout: .seconds(5))) ?? ""
                if info.contains("role:master") {
                    primaries += 1
                } else if !info.contains("master_link_status:up") {
                    ready = false
                }
            }
            if ready && primaries == 1 { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw RedisServerProcess.Failure(description: "replicas not in sync within \(timeout)")
    }

    /// Every Sentinel names the primary on `port` and knows the replicas and the other Sentinels.
    public func waitUntilSentinelsAgree(on port: Int, timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            var agreed = true
            for sentinel in sentinels where sentinel.isRunning {
                let address = (try? await runRedisCLI(
                    ["-p", "\(sentinel.port)", "SENTINEL", "get-master-addr-by-name", Self.masterName], timeout: .seconds(5)
                )) ?? ""
                let master = (try? await runRedisCLI(["-p", "\(sentinel.port)", "SENTINEL", "master", Self.masterName], timeout: .seconds(5))) ?? ""
                let lines = master.split(separator: "\n").map(String.init)
                func field(_ name: String) -> Int? {
                    guard let index = lines.firstIndex(of: name), index + 1 < lines.count else { return nil }
                    return Int(lines[index + 1])
                }
                if !address.contains("\(port)") || (field("num-slaves") ?? 0) < servers.count - 1
                    || (field("num-other-sentinels") ?? 0) < sentinels.count - 1
                {
                    agreed = false
                }
            }
            if agreed { return }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw RedisServerProcess.Failure(description: "Sentinels did not agree on the primary :\(port) within \(timeout)")
    }

    public func stop() async {
        for process in sentinels + servers { await process.stop() }
    }
}

/// Starts a Sentinel deployment, runs `body`, and always stops every process.
public func withRedisSentinels<T>(_ body: (RedisSentinelDeployment) async throws -> T) async throws -> T {
    let deployment = try await RedisSentinelDeployment.start()
    return try await withCleanup({ await deployment.stop() }) { try await body(deployment) }
}
