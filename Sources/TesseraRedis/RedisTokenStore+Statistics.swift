import Foundation
import Tessera
import TesseraRESP

/// `statistics()` walks every user key of this prefix with SCAN (MATCH `P{u:*`, COUNT 1000),
/// then reads the expiry of each session, denylist entry and one-time token in one pipeline per
/// batch and compares it with the injected clock. O(keys in the database): meant for the admin
/// endpoint, never for a request path. SCAN may return a key twice; keys are de-duplicated.
/// On a Redis Cluster every primary is scanned, and each batch is read on the node that
/// returned it.
extension RedisTokenStore {
    public func statistics() async throws -> TokenStoreStatistics {
        let now = clock.now().timeIntervalSince1970
        let pattern = globEscaped(keyPrefix) + "{u:*"
        var seen = Set<String>()
        var statistics = TokenStoreStatistics(liveSessions: 0, deniedTokens: 0, pendingOneTimeTokens: [:])
        let nodes: [RedisClient]
        do {
            nodes = try await client.primaries()
        } catch {
            throw StoreError(backend: backendName, message: "\(error)")
        }
        for node in nodes {
            var cursor = "0"
            repeat {
                let reply: RESPValue
                do {
                    reply = try await node.send(["SCAN", .init(cursor), "MATCH", .init(pattern), "COUNT", 1000])
                } catch {
                    throw StoreError(backend: backendName, message: "\(error)")
                }
                guard let parts = reply.array, parts.count == 2, let next = parts[0].string, let batch = parts[1].array else {
                    throw malformed("SCAN")
                }
                cursor = next
                let entries = batch.compactMap(\.string).filter { seen.insert($0).inserted }.compactMap(statisticsEntry)
                // Through the executor: a key migrated since the SCAN is read where it now lives.
                let replies = entries.isEmpty ? [] : try await pipeline(entries.map(\.read))
                for (entry, value) in zip(entries, replies) where entry.isLive(value, now) {
                    switch entry.kind {
                    case .session: statistics.liveSessions += 1
                    case .denied: statistics.deniedTokens += 1
                    case .oneTime(let kind): statistics.pendingOneTimeTokens[kind, default: 0] += 1
                    }
                }
            } while cursor != "0"
        }
        return statistics
    }

    private struct StatisticsEntry {
        enum Kind { case session, denied, oneTime(String) }
        var kind: Kind
        var read: [RESPArgument]

        func isLive(_ reply: RESPValue, _ now: Double) -> Bool {
            let times = (reply.array ?? [reply]).map { $0.string.flatMap(Double.init) }
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
            return StatisticsEntry(kind: .session, read: ["HMGET", argument, "idle", "abs"])
        } else if rest.hasPrefix("deny:") {
            return StatisticsEntry(kind: .denied, read: ["GET", argument])
        } else if rest.hasPrefix("ott:") {
            return StatisticsEntry(kind: .oneTime(String(rest.dropFirst(4))), read: ["HGET", argument, "exp"])
        }
        return nil
    }
}
