import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

/// A Redis Cluster: one `RedisClient` pool per primary, commands routed by the hash slot of
/// their key through a slot map read with `CLUSTER SLOTS`.
///
/// - `MOVED`: the map is patched and the command re-sent to the new owner; a full refresh
///   follows in the background.
/// - `ASK` (slot being migrated): re-sent to the target, after `ASKING`, on that one occasion.
/// - `TRYAGAIN`, `CLUSTERDOWN`, `LOADING`, `READONLY`, or a primary that cannot be reached
///   (failover in progress): the map is refreshed and the command retried with a short backoff
///   until the command timeout has passed. A redirection means the command did not run, so the
///   retry is safe; a connection lost after a command was sent is *not* retried (it may have
///   run) but still triggers a refresh.
/// - The map is also refreshed every `refreshInterval`, from any known node or a seed.
///
/// Run it in a `ServiceGroup` (it runs the periodic refresh and closes every pool on
/// graceful shutdown) or call `shutdown()`.
public final class RedisClusterClient: RedisCommandExecutor, Service {
    public let configuration: RedisConfiguration
    public let seeds: [RedisNodeAddress]
    public let refreshInterval: Duration
    private let eventLoopGroup: any EventLoopGroup
    private let logger: Logger
    private let state = Mutex(State())
    private let refresh = SingleFlightRefresh()

    private struct State {
        var map: RedisClusterSlotMap?
        var nodes: [RedisNodeAddress: RedisClient] = [:]
        var refreshes = 0
        var redirections = Redirections()
        var isShutdown = false
    }

    /// How often commands were redirected or retried, since the client was made.
    public struct Redirections: Sendable, Hashable {
        public var moved = 0
        public var ask = 0
        /// `TRYAGAIN`, `CLUSTERDOWN`, `LOADING`, `READONLY`, or an unreachable primary.
        public var retried = 0
    }

    /// - Parameter configuration: credentials, TLS and timeouts for every node; its host and
    ///   port are replaced per node. The database is always 0 (a cluster has no other).
    public init(
        configuration: RedisConfiguration, seeds: [RedisNodeAddress], refreshInterval: Duration = .seconds(5),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger = Logger(label: "TesseraRESP")
    ) {
        var configuration = configuration
        configuration.database = 0
        self.configuration = configuration
        self.seeds = seeds.isEmpty ? [RedisNodeAddress(host: configuration.host, port: configuration.port)] : seeds
        self.refreshInterval = refreshInterval
        self.eventLoopGroup = eventLoopGroup
        self.logger = logger
    }

    /// The slot map in use (nil before the first successful refresh).
    public var slotMap: RedisClusterSlotMap? { state.withLock { $0.map } }

    /// How many full map refreshes have completed.
    public var refreshCount: Int { state.withLock { $0.refreshes } }

    public var redirections: Redirections { state.withLock { $0.redirections } }

    // MARK: Commands

    /// Sends on the node's multiplexed connections (`RedisClient.send`), following redirections.
    @discardableResult
    public func send(_ command: [RESPArgument], timeout: Duration? = nil) async throws(RedisError) -> RESPValue {
        try await self.routed(routingKey: RedisCommandRouting.routingKey(of: command)) { client, asking throws(RedisError) in
            guard asking else { return try await client.send(command, timeout: timeout) }
            // One request: ASKING goes out right before the command on the same connection.
            return try await client.pipeline([["ASKING"], command], timeout: timeout)[1].get()
        }
    }

    /// One pipeline per node the commands route to; a reply that is a redirection is answered
    /// again by `send`, which follows it.
    public func pipeline(_ commands: [[RESPArgument]], timeout: Duration? = nil) async throws(RedisError) -> [RESPValue] {
        guard !commands.isEmpty else { return [] }
        var groups: [RedisNodeAddress: [Int]] = [:]
        var order: [RedisNodeAddress] = []
        for (index, command) in commands.enumerated() {
            let node = try await self.target(forSlot: RedisCommandRouting.slot(of: command))
            if groups[node] == nil { order.append(node) }
            groups[node, default: []].append(index)
        }
        var replies = [RESPValue](repeating: .null, count: commands.count)
        for node in order {
            let indices = groups[node]!
            let client = try self.client(node)
            let batch = try await client.pipeline(indices.map { commands[$0] }, timeout: timeout)
            for (index, reply) in zip(indices, batch) {
                if let error = reply.error, RedisTopologyError(error, answeredBy: node) != nil {
                    do {
                        replies[index] = try await self.send(commands[index], timeout: timeout)
                    } catch let error where error.isServerError {
                        replies[index] = reply
                    }
                } else {
                    replies[index] = reply
                }
            }
        }
        return replies
    }

    public func withConnection<Result: Sendable>(
        routingKey: RESPArgument?, _ body: (RedisNodeConnection) async throws(RedisError) -> Result
    ) async throws(RedisError) -> Result {
        try await self.routed(routingKey: routingKey) { client, asking throws(RedisError) in
            try await client.withConnection { (connection: RESPConnection) async throws(RedisError) -> Result in
                try await body(RedisNodeConnection(connection, asking: asking))
            }
        }
    }

    /// Runs `body` against the client of the node serving `routingKey`, following MOVED and
    /// ASK (`asking`: the body must send `ASKING` first) and retrying topology errors and
    /// failed connects until the command timeout.
    private func routed<Result: Sendable>(
        routingKey: RESPArgument?, _ body: (RedisClient, _ asking: Bool) async throws(RedisError) -> Result
    ) async throws(RedisError) -> Result {
        let slot = routingKey.map { RedisKeySlot.slot(of: $0.bytes.readableBytesView) }
        let deadline = ContinuousClock.now + self.configuration.commandTimeout
        var asking: RedisNodeAddress?
        var attempt = 0
        while true {
            attempt += 1
            let node: RedisNodeAddress
            if let asking { node = asking } else { node = try await self.target(forSlot: slot) }
            let client = try self.client(node)
            let isAsking = asking != nil
            asking = nil
            do {
                return try await body(client, isAsking)
            } catch {
                let retry = attempt < 32 && ContinuousClock.now < deadline
                if let topology = RedisTopologyError(error, answeredBy: node) {
                    guard retry else { throw error }
                    switch topology {
                    case .moved(let movedSlot, let owner):
                        self.state.withLock { state in
                            state.map?.assign(slot: movedSlot, to: owner)
                            state.redirections.moved += 1
                        }
                        self.refreshInBackground()
                    case .ask(_, let target):
                        self.state.withLock { $0.redirections.ask += 1 }
                        asking = target
                    case .tryAgain, .loading:
                        self.state.withLock { $0.redirections.retried += 1 }
                        try? await Task.sleep(for: Self.retryDelay(attempt))
                    case .clusterDown, .readOnly:
                        self.state.withLock { $0.redirections.retried += 1 }
                        await self.refreshTopology(minimumAge: .milliseconds(100))
                        try? await Task.sleep(for: Self.retryDelay(attempt))
                    }
                    continue
                }
                if case .connectionFailed = error {
                    // Never connected, so nothing was sent: a primary down, perhaps being
                    // replaced. Look again and retry until the deadline.
                    guard retry else { throw error }
                    self.state.withLock { $0.redirections.retried += 1 }
                    await self.refreshTopology(minimumAge: .milliseconds(100))
                    try? await Task.sleep(for: Self.retryDelay(attempt))
                    continue
                }
                if error.isConnectionError { self.refreshInBackground() }
                throw error
            }
        }
    }

    public var isCluster: Bool { true }

    public func primaries() async throws(RedisError) -> [RedisClient] {
        let map = try await self.currentMap()
        var clients: [RedisClient] = []
        for address in map.primaries { clients.append(try self.client(address)) }
        return clients
    }

    /// The replicas `CLUSTER SLOTS` listed for the slot's shard (failed replicas are not listed).
    public func expectedReplicas(routingKey: RESPArgument?) -> Int? {
        guard let routingKey, let map = self.slotMap else { return nil }
        return map.shard(forSlot: RedisKeySlot.slot(of: routingKey.bytes.readableBytesView))?.replicas.count
    }

    // MARK: Lifecycle

    /// Refreshes the map every `refreshInterval` until graceful shutdown, then closes every pool.
    public func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await Task.sleep(for: self.refreshInterval)
                await self.refreshTopology(minimumAge: .zero)
            }
        }
        await self.shutdown()
    }

    public func shutdown() async {
        let clients = self.state.withLock { state in
            state.isShutdown = true
            defer { state.nodes = [:] }
            return Array(state.nodes.values)
        }
        self.refresh.close()
        for client in clients { await client.shutdown() }
    }

    // MARK: Topology

    /// The primary for `slot` (any primary for nil), loading the map first if there is none.
    private func target(forSlot slot: Int?) async throws(RedisError) -> RedisNodeAddress {
        let map = try await self.currentMap()
        if let slot {
            if let primary = map.primary(forSlot: slot) { return primary }
            await self.refreshTopology(minimumAge: .milliseconds(100))
            if let primary = self.slotMap?.primary(forSlot: slot) { return primary }
            throw .server(code: "CLUSTERDOWN", message: "no node serves hash slot \(slot)")
        }
        guard let primary = map.primaries.randomElement() else { throw .server(code: "CLUSTERDOWN", message: "no primary known") }
        return primary
    }

    private func currentMap() async throws(RedisError) -> RedisClusterSlotMap {
        if let map = self.slotMap { return map }
        await self.refreshTopology(minimumAge: .zero)
        if let map = self.slotMap { return map }
        if self.state.withLock({ $0.isShutdown }) { throw .clientShutdown }
        throw .connectionFailed("no cluster node answered CLUSTER SLOTS (seeds: \(self.seeds.map(\.description).joined(separator: ",")))")
    }

    /// Reads the map again unless one was read less than `minimumAge` ago; concurrent callers
    /// share one refresh.
    public func refreshTopology(minimumAge: Duration) async {
        await self.refresh.run(minimumAge: minimumAge) { await self.loadTopology() }
    }

    private func refreshInBackground() {
        Task { await self.refreshTopology(minimumAge: .milliseconds(100)) }
    }

    private func loadTopology() async {
        var candidates = self.slotMap?.allNodes ?? []
        for seed in self.seeds where !candidates.contains(seed) { candidates.append(seed) }
        var lastError: RedisError?
        for node in candidates {
            guard let client = try? self.client(node) else { return }
            do {
                let reply = try await client.send(["CLUSTER", "SLOTS"], timeout: self.configuration.commandTimeout)
                guard let map = RedisClusterSlotMap(clusterSlots: reply, answeredBy: node), map.coveredSlots > 0 else {
                    lastError = .protocolError("unusable CLUSTER SLOTS reply from \(node)")
                    continue
                }
                let changed = self.state.withLock { state in
                    defer {
                        state.map = map
                        state.refreshes += 1
                    }
                    return state.map?.primaries.sorted(by: { $0.description < $1.description })
                        != map.primaries.sorted(by: { $0.description < $1.description })
                }
                if changed {
                    self.logger.info(
                        "Redis Cluster primaries", metadata: ["primaries": "\(map.primaries.map(\.description).joined(separator: ","))"]
                    )
                }
                return
            } catch {
                lastError = error
            }
        }
        self.logger.warning("Redis Cluster map refresh failed", metadata: ["error": "\(lastError.map { "\($0)" } ?? "no node")"])
    }

    /// The pool of one node, opened on first use.
    public func client(_ node: RedisNodeAddress) throws(RedisError) -> RedisClient {
        let client: RedisClient? = self.state.withLock { state in
            if state.isShutdown { return nil }
            if let existing = state.nodes[node] { return existing }
            let client = RedisClient(configuration: self.configuration.at(node), eventLoopGroup: self.eventLoopGroup, logger: self.logger)
            state.nodes[node] = client
            return client
        }
        guard let client else { throw .clientShutdown }
        return client
    }

    static func retryDelay(_ attempt: Int) -> Duration {
        .milliseconds(min(25 * (1 << min(attempt, 5)), 500))
    }
}
