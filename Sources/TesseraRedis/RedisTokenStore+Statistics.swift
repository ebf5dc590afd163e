import Foundation
import Tessera
import TesseraRESP

/// `statistics()` walks every user key of this prefix with SCAN (MATCH `P{u:*`, COUNT 1000),
/// then reads the expiry of each session, denylist entry and one-time token in one pipeline per
/// batch and compares it with the injected clock. O(keys in the database): meant for the admin
/// endpoint, never for a request path. SCAN may return a key twice; keys are de-duplicated.
/// On a Redis Cluster every primary is scanned, and each key is read through the cluster
/// client, on the node that holds it now.
extension RedisTokenStore {
    public func statistics() async throws -> TokenStoreStatistics {
        let now = clock.now().timeIntervalSince1970
        var statistics = TokenStoreStatistics(liveSessions: 0, deniedTokens: 0, pendingOneTimeTokens: [:])
        try await scan(matching: globEscaped(keyPrefix) + "{u:*") { batch in
            let entries = batch.compactMap(statisticsEntry)
            let replies = entries.isEmpty ? [] : try await pipeline(entries.map(\.read))
            for (entry, value) in zip(entries, replies) where entry.isLive(value, now) {
                switch entry.kind {
                case .session: statistics.liveSessions += 1
                case .denied: statistics.deniedTokens += 1
                case .oneTime(let kind): statistics.pendingOneTimeTokens[kind, default: 0] += 1
                }
            }
        }
        return statistics
    }

    /// Every key matching `pattern`, batch by batch (SCAN, COUNT 1000) on every primary (one on
    /// a single server, each shard's on a cluster), each key once (SCAN may return a key twice).
    func scan(matching pattern: String, _ body: ([String]) async throws -> Void) async throws {
        let nodes: [RedisClient]
        do {
            nodes = try await client.primaries()
        } catch {
            throw StoreError(redis: error, backend: backendName, operation: "CLUSTER SLOTS")
        }
        var seen = Set<String>()
        for node in nodes {
            var cursor = "0"
            repeat {
                let reply: RESPValue
                do {
                    reply = try await node.send(["SCAN", .init(cursor), "MATCH", .init(pattern), "COUNT", 1000])
                } catch {
                    throw StoreError(redis: error, backend: backendName, operation: "SCAN")
                }
                guard let parts = reply.array, parts.count == 2, let next = parts[0].string, let batch = parts[1].array else {
                    throw malformed("SCAN")
                }
                cursor = next
                // Read back through the executor: a key migrated since the SCAN is read where it now lives.
                try await body(batch.compactMap(\.string).filter { seen.insert($0).inserted })
            } while cursor != "0"
        }
    }

    private struct StatisticsEntry {
        enum Kind { case session, denied, oneTime(String) }
        var kind: Kind
        var read: [RESPArgument]

        func isLive(_ reply: RESPValue, _ now: Double) -> Bool {
            var times = (reply.array ?? [reply]).map { $0.string.flatMap(Double.init) }
            if case .session = kind {
                // `i`, `a` in ms (layout 2), else `idle`, `abs` in seconds (layout 1).
                times = times.count == 4 && times[0] != nil ? times[0..<2].map { $0.map { $0 / 1000 } } : Array(times.dropFirst(2))
            }
            guard !times.isEmpty, times.allSatisfy({ $0 != nil }) else { return false }
            return times.allSatisfy { now < $0! }
        }
    }

    /// What a key is, from the part after the user's hash tag, and the command reading its expiry.
    private func statisticsEntry(_ key: String) -> StatisticsEntry? {
        guard key.hasPrefix(keyPrefix), let tagEnd = key.dropFirst(keyPrefix.count).range(of: "}:") else { return nil }
        let rest = key[tagEnd.upperBound...]
        let argument = RESPArgument(key)
        if rest.hasPrefix("s:") {
            return StatisticsEntry(kind: .session, read: ["HMGET", argument, "i", "a", "idle", "abs"])
        } else if rest.hasPrefix("deny:") {
            return StatisticsEntry(kind: .denied, read: ["GET", argument])
        } else if rest.hasPrefix("ott:") {
            return StatisticsEntry(kind: .oneTime(String(rest.dropFirst(4))), read: ["HGET", argument, "exp"])
        }
        return nil
    }
}
