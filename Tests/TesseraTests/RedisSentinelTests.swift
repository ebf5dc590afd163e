import Foundation
import Synchronization
import Tessera
import TesseraRESP
import TesseraTestSupport
import Testing

@testable import TesseraRedis

/// 1 primary, 1 replica, 3 Sentinels: a planned switch (`SENTINEL FAILOVER`, after which the
/// old primary answers READONLY) and then `kill -9` of the new primary, both under a load of
/// logins and logouts, with one client that is never restarted.
@Suite("Redis Sentinel failover")
struct RedisSentinelTests {
    @Test func switchAndKillUnderLoadLoseNoAcknowledgedRevocation() async throws {
        try await withRedisSentinels { deployment in
            guard case .sentinel(var configuration, let sentinels, let name, _, _) = try RedisDeployment(url: deployment.url) else {
                Issue.record("not a sentinel URL")
                return
            }
            configuration.commandTimeout = .seconds(2)
            configuration.acquireTimeout = .seconds(10)
            let client = RedisSentinelClient(configuration: configuration, sentinels: sentinels, masterName: name, refreshInterval: .seconds(2))
            let following = Task { try await client.run() }
            defer { following.cancel() }
            let store = RedisTokenStore(client: client, keyPrefix: "se:", usesServerTime: false, durability: .automatic)
            try await store.ping()
            let first = try #require(client.primaryAddress)
            #expect(first.port == deployment.servers[0].port)

            let load = FailoverLoad()
            let running = Task { await load.run(store, users: (0..<16).map { "user-\($0)" }) }
            func recovery(after instant: ContinuousClock.Instant, _ what: String) async throws -> (failed: Int, milliseconds: Int64) {
                try await waitUntil(what, .seconds(60)) { load.recovery(after: instant) != nil }
                return try #require(load.recovery(after: instant))
            }

            try await Task.sleep(for: .seconds(1))
            // 1. Planned switch: the old primary stays up and is demoted (READONLY).
            let switchedAt = ContinuousClock.now
            _ = try await runRedisCLI(["-p", "\(deployment.sentinels[0].port)", "SENTINEL", "FAILOVER", RedisSentinelDeployment.masterName])
            try await waitUntil("the client follows the switch", .seconds(60)) { client.primaryAddress != first }
            _ = try await recovery(after: switchedAt, "a request after the switch")
            try await deployment.waitUntilReplicated(timeout: .seconds(60))
            let second = try #require(client.primaryAddress)
            try await deployment.waitUntilSentinelsAgree(on: second.port, timeout: .seconds(60))
            try await Task.sleep(for: .seconds(1))

            // 2. Crash of the new primary.
            let killedAt = ContinuousClock.now
            let killedCount = load.acknowledged.withLock { $0.count }
            let secondProcess = try #require(deployment.servers.first { $0.port == second.port })
            await secondProcess.kill()
            try await waitUntil("the client follows the failover", .seconds(60)) { client.primaryAddress != second }
            let crash = try await recovery(after: killedAt, "a request after the kill")
            try await Task.sleep(for: .seconds(1))
            let stoppedAt = ContinuousClock.now
            load.stop()
            await running.value
            let lostEntries = try await load.lost(store)
            let lost = lostEntries.count
            for entry in lostEntries {
                print(
                    "sentinel failover: lost logout of \(entry.session) acknowledged \(milliseconds(entry.at - switchedAt)) ms after the switch, "
                        + "\(milliseconds(entry.at - killedAt)) ms after the kill, ended \(entry.ended)"
                )
            }
            let switchGap = load.longestGap(from: switchedAt, to: killedAt)
            let killGap = load.longestGap(from: killedAt, to: stoppedAt)
            print(
                "sentinel failover: acknowledged logouts \(load.acknowledged.withLock { $0.count }) (\(killedCount) before the kill), lost \(lost); "
                    + "SENTINEL FAILOVER: \(load.failures(from: switchedAt, to: killedAt)) failed requests, longest time without a success \(switchGap) ms; "
                    + "kill -9: \(load.failures(from: killedAt, to: stoppedAt)) failed requests, first success after \(crash.milliseconds) ms, longest time without a success \(killGap) ms"
            )
            #expect(lost == 0)
            #expect(client.switchCount >= 2)
            #expect(client.primaryAddress == first)
        }
    }
}
