import NIOCore
import Synchronization
import Tessera
import TesseraRESP

/// When a revocation counts as done: once the primary has it, or once replicas have it too, so
/// that a failover (which promotes a replica) cannot undo a logout that was already answered.
///
/// With replicas required, a revocation script is followed on the same connection by
/// `WAIT <n> <timeout>`; fewer acknowledgements within the timeout fail the operation (the
/// request answers 503). The revocation may or may not have landed then; retrying it is safe.
public struct RevocationDurability: Sendable {
    /// Replicas that must acknowledge; nil means one if the primary has a replica, none
    /// otherwise. It has one when `INFO replication` on the same connection shows one
    /// connected, or, with a control plane (cluster slot map, Sentinels), when that lists a
    /// healthy replica — connected or not: a replica still connecting, or cut off while it is
    /// being promoted, is what a failover would promote, so a logout waits for it (503 until it
    /// is back) instead of being acknowledged unreplicated. Without a control plane (one server)
    /// the primary has one when it showed one connected less than `replicaMemory` ago in the
    /// same replication history (`master_replid`). A primary whose only replica the control
    /// plane reports down acknowledges alone until a replica connects.
    public var minimumReplicas: Int?
    /// How long `WAIT` may block.
    public var timeout: Duration
    public var replicaMemory: Duration
    private let history = ReplicaHistory()

    public init(minimumReplicas: Int?, timeout: Duration = .seconds(1), replicaMemory: Duration = .seconds(60)) {
        self.minimumReplicas = minimumReplicas
        self.timeout = timeout
        self.replicaMemory = replicaMemory
    }

    /// One replica if there is one: the default.
    public static let automatic = RevocationDurability(minimumReplicas: nil)
    /// Acknowledged as soon as the primary has it.
    public static let primaryOnly = RevocationDurability(minimumReplicas: 0)

    /// Waits for the replicas the write on `connection` needs (`expected`: what the control
    /// plane says the primary has). Throws when too few answered.
    /// - Parameter replicationInfo: `INFO replication` as read on the same connection right
    ///   after the write (pipelined with it), so the automatic rule costs no round trip of its own.
    func acknowledge(on connection: RedisNodeConnection, expected: Int?, replicationInfo: RESPValue? = nil) async throws(RedisError) {
        let required: Int
        if let minimumReplicas {
            required = minimumReplicas
        } else {
            let info: RESPValue
            if let replicationInfo { info = replicationInfo } else { info = try await connection.send(["INFO", "replication"]) }
            required = requiredReplicas(replicationInfo: info, expected: expected)
        }
        try await wait(for: required, on: connection)
    }

    /// Whether a revocation may skip the leased connection: under the automatic rule, on one
    /// server whose control plane (if any) lists no replica and that showed none connected
    /// within `replicaMemory`. The script then goes out on a shared connection with
    /// `INFO replication` behind it, and only a replica that INFO reveals costs a lease.
    func expectsNoReplica(expected: Int?, isCluster: Bool, now: ContinuousClock.Instant = .now) -> Bool {
        minimumReplicas == nil && !isCluster && (expected ?? 0) == 0 && !history.hadReplica(since: now - replicaMemory)
    }

    /// How many replicas the automatic rule needs, from `INFO replication` read right after the
    /// write on the same connection.
    func requiredReplicas(replicationInfo info: RESPValue, expected: Int?) -> Int {
        if let minimumReplicas { return minimumReplicas }
        let (replicationID, connected) = Self.replication(info)
        let remembered = self.history.recentlyHadReplica(replicationID, connected: connected, memory: self.replicaMemory)
        return Self.required(connected: connected, expected: expected, remembered: remembered)
    }

    /// `WAIT` for `required` replicas on `connection`, which must have written the revocation
    /// or something after it: WAIT counts the replicas that have the connection's last write.
    func wait(for required: Int, on connection: RedisNodeConnection) async throws(RedisError) {
        guard required > 0 else { return }
        let milliseconds = max(1, Int(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000))
        let reply: RESPValue
        do {
            reply = try await connection.send(
                ["WAIT", RESPArgument(required), RESPArgument(milliseconds)], timeout: timeout + connection.connection.commandTimeout
            )
        } catch .err(let message) where message.contains("replica") {
            // A demoted primary that is a replica now: the revocation ran (if at all) on the
            // wrong node. READONLY makes a Sentinel or cluster client look again and retry.
            throw .readOnly(message: message)
        }
        let acknowledged = reply.int ?? 0
        guard acknowledged >= required else {
            throw .server(
                code: "NOREPLICAS",
                message: "revocation acknowledged by \(acknowledged) of \(required) replicas within \(milliseconds) ms"
            )
        }
    }

    /// The automatic rule: the control plane's word, when there is one, over the memory — a
    /// replica it lists healthy but not (yet) connected is waited for, so that a failover to it
    /// cannot lose what was acknowledged meanwhile.
    static func required(connected: Int, expected: Int?, remembered: Bool) -> Int {
        connected > 0 || (expected.map { $0 > 0 } ?? remembered) ? 1 : 0
    }

    /// `master_replid` and `connected_slaves` from `INFO replication`, read on the reply's bytes
    /// (every revocation reads one, ~400 bytes).
    static func replication(_ info: RESPValue) -> (id: String, connectedReplicas: Int) {
        guard let buffer = info.bytes else { return ("", 0) }
        return buffer.withUnsafeReadableBytes { bytes in
            var id = ""
            var connected = 0
            var lineStart = 0
            while lineStart < bytes.count {
                var lineEnd = lineStart
                while lineEnd < bytes.count, bytes[lineEnd] != UInt8(ascii: "\n") { lineEnd += 1 }
                var valueEnd = lineEnd
                if valueEnd > lineStart, bytes[valueEnd - 1] == UInt8(ascii: "\r") { valueEnd -= 1 }
                let line = UnsafeRawBufferPointer(rebasing: bytes[lineStart..<valueEnd])
                if let value = Self.value(of: replicationIDField, in: line) {
                    id = String(decoding: value, as: UTF8.self)
                } else if let value = Self.value(of: connectedReplicasField, in: line) {
                    connected = Int(String(decoding: value, as: UTF8.self)) ?? 0
                }
                lineStart = lineEnd + 1
            }
            return (id, connected)
        }
    }

    private static let replicationIDField = Array("master_replid:".utf8)
    private static let connectedReplicasField = Array("connected_slaves:".utf8)

    /// What follows `prefix` in `line`, when the line starts with it.
    private static func value(of prefix: [UInt8], in line: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? {
        guard line.count >= prefix.count, line.prefix(prefix.count).elementsEqual(prefix) else { return nil }
        return UnsafeRawBufferPointer(rebasing: line[prefix.count...])
    }
}

/// When each replication history (a primary's `master_replid`) last had a connected replica.
final class ReplicaHistory: Sendable {
    private let lastSeen = Mutex<[String: ContinuousClock.Instant]>([:])

    /// Whether any history had a connected replica at or after `instant`.
    func hadReplica(since instant: ContinuousClock.Instant) -> Bool {
        self.lastSeen.withLock { lastSeen in lastSeen.values.contains { $0 >= instant } }
    }

    func recentlyHadReplica(_ replicationID: String, connected: Int, memory: Duration, now: ContinuousClock.Instant = .now) -> Bool {
        self.lastSeen.withLock { lastSeen in
            if connected > 0 {
                lastSeen[replicationID] = now
                return true
            }
            guard let seen = lastSeen[replicationID] else { return false }
            return now - seen < memory
        }
    }
}

extension RedisBackedStore {
    /// Runs a revocation script and, when `revokes(reply)` says the reply answers as a
    /// revocation, waits for the replicas `durability` asks for on the same connection.
    ///
    /// A revocation that found nothing to revoke waits too: on a primary that is being demoted
    /// "nothing here" can mean the session lives on the new primary, and only the missing
    /// replica acknowledgement tells that apart from a session that is really gone.
    ///
    /// `seldomRevokes` (a rotation, which revokes only on re-use): on a server without replicas
    /// the script goes alone and `INFO replication` follows only a reply that revoked, instead
    /// of riding along with every call.
    @discardableResult
    func runRevocation(
        _ script: RedisScript, keys: [String], _ arguments: [RESPArgument], durability: RevocationDurability,
        seldomRevokes: Bool = false, revokes: @Sendable (RESPValue) -> Bool = { _ in true }
    ) async throws -> RESPValue {
        let keyArguments = keys.map { RESPArgument($0) }
        let expected = client.expectedReplicas(routingKey: keyArguments.first)
        do {
            if durability.minimumReplicas == 0 {
                return try await client.evalScript(script, keys: keyArguments, arguments: arguments)
            }
            if durability.expectsNoReplica(expected: expected, isCluster: client.isCluster) {
                return try await runOnSharedConnection(
                    script, keys: keyArguments, arguments, expected: expected, durability: durability, seldomRevokes: seldomRevokes, revokes: revokes
                )
            }
            return try await client.withConnection(routingKey: keyArguments.first) {
                (connection: RedisNodeConnection) async throws(RedisError) -> RESPValue in
                guard durability.minimumReplicas == nil else {
                    let reply = try await connection.evalScript(script, keys: keyArguments, arguments: arguments)
                    if revokes(reply) { try await durability.acknowledge(on: connection, expected: expected) }
                    return reply
                }
                // The automatic rule needs `INFO replication`: asked in the same write as the
                // script, after it, so a logout on a primary without replicas is one round trip.
                let (reply, info) = try await evalScriptThenInfo(script, keys: keyArguments, arguments: arguments) {
                    (commands: [[RESPArgument]]) async throws(RedisError) in try await connection.pipeline(commands)
                }
                if revokes(reply) { try await durability.acknowledge(on: connection, expected: expected, replicationInfo: info) }
                return reply
            }
        } catch {
            throw StoreError(redis: error, backend: backendName, operation: StoreError.commandName(of: script))
        }
    }
}

extension RedisBackedStore {
    /// The revocation and `INFO replication` in one pipeline on a shared connection (one server,
    /// so both reach the same one and INFO sees the state right after the write). When INFO
    /// shows a replica after all, a leased connection writes after the revocation (a PUBLISH no
    /// one reads, which the primary still replicates) and WAITs there: its last write is then
    /// no older than the revocation, so the replicas it counts have the revocation too.
    private func runOnSharedConnection(
        _ script: RedisScript, keys: [RESPArgument], _ arguments: [RESPArgument], expected: Int?, durability: RevocationDurability,
        seldomRevokes: Bool, revokes: @Sendable (RESPValue) -> Bool
    ) async throws(RedisError) -> RESPValue {
        let reply: RESPValue
        let info: RESPValue
        if seldomRevokes {
            reply = try await client.evalScript(script, keys: keys, arguments: arguments)
            guard revokes(reply) else { return reply }
            // Asked after the revocation on the same server, so it sees the replicas of then.
            info = try await client.send(["INFO", "replication"], timeout: nil)
        } else {
            (reply, info) = try await evalScriptThenInfo(script, keys: keys, arguments: arguments) {
                (commands: [[RESPArgument]]) async throws(RedisError) in try await client.pipeline(commands, timeout: nil)
            }
            guard revokes(reply) else { return reply }
        }
        let required = durability.requiredReplicas(replicationInfo: info, expected: expected)
        guard required > 0 else { return reply }
        try await client.withConnection(routingKey: keys.first) { (connection: RedisNodeConnection) async throws(RedisError) in
            try await connection.send(["PUBLISH", "tessera:replication-mark", ""])
            try await durability.wait(for: required, on: connection)
        }
        return reply
    }
}

/// Runs `script` (EVALSHA, resent with EVAL after NOSCRIPT) and `INFO replication` in one
/// pipeline, on whichever connection `pipeline` writes to; an error reply of either is thrown.
func evalScriptThenInfo(
    _ script: RedisScript, keys: [RESPArgument], arguments: [RESPArgument],
    pipeline: ([[RESPArgument]]) async throws(RedisError) -> [RESPValue]
) async throws(RedisError) -> (reply: RESPValue, info: RESPValue) {
    var replies = try await pipeline([script.command(keys: keys, arguments: arguments), ["INFO", "replication"]])
    if case .noScript? = replies[0].error {
        replies = try await pipeline([script.command(keys: keys, arguments: arguments, bySource: true), ["INFO", "replication"]])
    }
    return (try replies[0].get(), try replies[1].get())
}
