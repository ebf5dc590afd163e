import NIOCore

/// What the stores talk to, whatever the deployment: one server (`RedisClient`), a Redis
/// Cluster (`RedisClusterClient`) or the primary a set of Sentinels points at
/// (`RedisSentinelClient`). Commands are routed by their key; keyless ones go to any primary.
public protocol RedisCommandExecutor: RedisCommandSender {
    /// Settings every node shares (credentials, TLS, timeouts). Per-node clients and
    /// subscriptions are built from it with the node's address.
    var configuration: RedisConfiguration { get }

    /// Sends the commands in one write per node; replies in order, error replies as values.
    func pipeline(_ commands: [[RESPArgument]], timeout: Duration?) async throws(RedisError) -> [RESPValue]

    /// Runs `body` on one connection of the primary serving `routingKey` (any primary for nil),
    /// for commands that must share a connection, such as a write and the `WAIT` after it.
    /// A cluster re-runs `body` on the right node after a redirection (which means the command
    /// was not executed).
    func withConnection<Result: Sendable>(
        routingKey: RESPArgument?, _ body: (RedisNodeConnection) async throws(RedisError) -> Result
    ) async throws(RedisError) -> Result

    /// A client per primary, for what must see the whole keyspace (SCAN) or every node's
    /// messages (subscriptions). One element for a single server or Sentinel.
    func primaries() async throws(RedisError) -> [RedisClient]

    /// How many healthy replicas the deployment's control plane (cluster slot map, Sentinels)
    /// says the primary serving `routingKey` has; nil when only the primary itself can tell.
    /// A primary being demoted has lost its replica already while this still counts it.
    func expectedReplicas(routingKey: RESPArgument?) -> Int?
    /// Whether keys are spread over nodes by hash slot (a Redis Cluster): a script may then
    /// touch only keys of one slot.
    var isCluster: Bool { get }
}

extension RedisCommandExecutor {
    public func expectedReplicas(routingKey: RESPArgument?) -> Int? { nil }
    public var isCluster: Bool { false }
}

/// One leased connection to one node. During a cluster slot migration (`ASK`) it prefixes each
/// command with `ASKING`, which the target node needs before it serves a slot being imported.
public struct RedisNodeConnection: RedisCommandSender {
    public let connection: RESPConnection
    public let asking: Bool

    public init(_ connection: RESPConnection, asking: Bool = false) {
        self.connection = connection
        self.asking = asking
    }

    @discardableResult
    public func send(_ command: [RESPArgument], timeout: Duration? = nil) async throws(RedisError) -> RESPValue {
        guard self.asking else { return try await self.connection.send(command, timeout: timeout) }
        let replies = try await self.connection.pipeline([["ASKING"], command], timeout: timeout)
        return try replies[1].get()
    }

    public func pipeline(_ commands: [[RESPArgument]], timeout: Duration? = nil) async throws(RedisError) -> [RESPValue] {
        guard self.asking else { return try await self.connection.pipeline(commands, timeout: timeout) }
        let replies = try await self.connection.pipeline(commands.flatMap { [["ASKING"], $0] }, timeout: timeout)
        return stride(from: 1, to: replies.count, by: 2).map { replies[$0] }
    }
}

extension RedisClient: RedisCommandExecutor {
    public func withConnection<Result: Sendable>(
        routingKey: RESPArgument?, _ body: (RedisNodeConnection) async throws(RedisError) -> Result
    ) async throws(RedisError) -> Result {
        try await self.withConnection { (connection: RESPConnection) async throws(RedisError) -> Result in
            try await body(RedisNodeConnection(connection))
        }
    }

    public func primaries() async throws(RedisError) -> [RedisClient] { [self] }
}

/// Which key decides where a command goes.
public enum RedisCommandRouting {
    /// Commands that name no key: any primary may run them.
    static let keyless: Set<String> = [
        "PING", "SCAN", "INFO", "TIME", "ROLE", "CLUSTER", "WAIT", "PUBLISH", "SCRIPT", "DBSIZE", "ECHO", "HELLO", "AUTH",
        "CLIENT", "CONFIG", "COMMAND", "FLUSHALL", "FLUSHDB", "ASKING", "READONLY", "READWRITE",
    ]

    /// The key of `command` that Redis Cluster routes by (the first one), nil for a keyless
    /// command. EVAL, EVALSHA and FCALL name their keys after the key count.
    public static func routingKey(of command: [RESPArgument]) -> RESPArgument? {
        guard let name = command.first?.description.uppercased(), !keyless.contains(name) else { return nil }
        switch name {
        case "EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO":
            guard command.count > 3, let count = Int(command[2].description), count > 0 else { return nil }
            return command[3]
        default:
            return command.count > 1 ? command[1] : nil
        }
    }

    /// The hash slot `command` must run in, nil for a keyless command.
    public static func slot(of command: [RESPArgument]) -> Int? {
        routingKey(of: command).map { RedisKeySlot.slot(of: $0.bytes.readableBytesView) }
    }
}

extension RedisCommandRouting {
    /// Commands that need a connection to themselves: those that block it (a shared
    /// connection would hold every command behind them) and those that change its state for
    /// the commands that follow (a transaction, a database, a subscription).
    static let leased: Set<CommandName> = Set(
        [
            "BLPOP", "BRPOP", "BRPOPLPUSH", "BLMOVE", "BLMPOP", "BZPOPMIN", "BZPOPMAX", "BZMPOP", "WAIT", "WAITAOF", "XREAD",
            "XREADGROUP", "MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH", "SELECT", "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE",
            "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE", "MONITOR", "CLIENT", "HELLO", "AUTH", "RESET", "READONLY",
            "READWRITE", "ASKING", "DEBUG",
        ].map { CommandName($0.utf8)! }
    )

    /// Whether `command` must run on a leased connection rather than a shared one.
    static func needsLease(_ command: [RESPArgument]) -> Bool {
        guard let first = command.first, let name = CommandName(first.bytes.readableBytesView) else { return false }
        return leased.contains(name)
    }

    /// A command name of up to 16 bytes, upper-cased and packed into two integers, so the
    /// check costs no allocation per command.
    struct CommandName: Hashable {
        var high: UInt64 = 0
        var low: UInt64 = 0

        init?<Bytes: Collection>(_ bytes: Bytes) where Bytes.Element == UInt8 {
            guard bytes.count <= 16 else { return nil }
            for (index, byte) in bytes.enumerated() {
                let upper = UInt64(byte >= 0x61 && byte <= 0x7A ? byte - 0x20 : byte)
                if index < 8 { high |= upper << (8 * UInt64(index)) } else { low |= upper << (8 * UInt64(index - 8)) }
            }
        }
    }
}
