import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

/// The primary that a set of Redis Sentinels names, followed through failovers.
///
/// - The primary is found with `SENTINEL master <name>` asked of every Sentinel: the answer
///   with the highest `config-epoch` wins (a Sentinel that missed a failover still names the
///   old primary), and it is accepted only once `ROLE` on it says `master` — on every new
///   connection, not just the first.
/// - `+switch-master` is followed on a subscription to every Sentinel, and the address is
///   asked for again every `refreshInterval`.
/// - `READONLY` (a demoted primary still reachable) or a primary that cannot be reached makes
///   it look again and retry until the command timeout has passed. A connection lost after a
///   command was sent is not retried (the command may have run), but triggers a new look.
public final class RedisSentinelClient: RedisCommandExecutor, Service {
    /// The primary's settings (credentials, database, TLS); host and port are found.
    public let configuration: RedisConfiguration
    public let sentinels: [RedisNodeAddress]
    public let masterName: String
    public let refreshInterval: Duration
    private let sentinelConfiguration: RedisConfiguration
    private let eventLoopGroup: any EventLoopGroup
    private let logger: Logger
    private let state = Mutex(State())
    private let lookup = SingleFlightRefresh()

    private struct State {
        var primary: (address: RedisNodeAddress, client: RedisClient)?
        var sentinelClients: [RedisNodeAddress: RedisClient] = [:]
        /// Replicas of the primary that the Sentinels do not flag down, at the last lookup.
        var healthyReplicas: Int?
        var switches = 0
        var isShutdown = false
    }

    public init(
        configuration: RedisConfiguration, sentinels: [RedisNodeAddress], masterName: String, sentinelUser: String? = nil,
        sentinelPassword: String? = nil, refreshInterval: Duration = .seconds(5),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger = Logger(label: "TesseraRESP")
    ) {
        self.configuration = configuration
        self.sentinels = sentinels
        self.masterName = masterName
        self.refreshInterval = refreshInterval
        var sentinel = configuration
        sentinel.username = sentinelUser
        sentinel.password = sentinelPassword
        sentinel.database = 0
        sentinel.maximumConnections = 2
        self.sentinelConfiguration = sentinel
        self.eventLoopGroup = eventLoopGroup
        self.logger = logger
    }

    /// The primary in use, nil before the first successful lookup.
    public var primaryAddress: RedisNodeAddress? { state.withLock { $0.primary?.address } }

    /// How many times the primary changed after the first lookup.
    public var switchCount: Int { state.withLock { $0.switches } }

    // MARK: Commands

    /// Sends on the primary's multiplexed connections (`RedisClient.send`).
    @discardableResult
    public func send(_ command: [RESPArgument], timeout: Duration? = nil) async throws(RedisError) -> RESPValue {
        try await self.onPrimary { client throws(RedisError) in
            try await client.send(command, timeout: timeout)
        }
    }

    public func pipeline(_ commands: [[RESPArgument]], timeout: Duration? = nil) async throws(RedisError) -> [RESPValue] {
        try await self.onPrimary { client throws(RedisError) in
            let replies = try await client.pipeline(commands, timeout: timeout)
            // Nothing ran on a demoted primary: redo the batch on the new one.
            if let readOnly = replies.lazy.compactMap(\.error).first(where: { $0.serverCode == "READONLY" }) { throw readOnly }
            return replies
        }
    }

    public func withConnection<Result: Sendable>(
        routingKey: RESPArgument?, _ body: (RedisNodeConnection) async throws(RedisError) -> Result
    ) async throws(RedisError) -> Result {
        try await self.onPrimary { client throws(RedisError) in
            try await client.withConnection { (connection: RESPConnection) async throws(RedisError) -> Result in
                try await body(RedisNodeConnection(connection))
            }
        }
    }

    /// Runs `body` against the current primary's client; after READONLY, LOADING or a failed
    /// connect, looks the primary up again and retries until the command timeout.
    private func onPrimary<Result: Sendable>(_ body: (RedisClient) async throws(RedisError) -> Result) async throws(RedisError) -> Result {
        let deadline = ContinuousClock.now + self.configuration.commandTimeout
        var attempt = 0
        while true {
            attempt += 1
            let client = try await self.primaryClient()
            do {
                return try await body(client)
            } catch {
                let retryable: Bool
                switch error {
                case .readOnly, .loading, .connectionFailed: retryable = true
                default: retryable = false
                }
                guard retryable, attempt < 32, ContinuousClock.now < deadline else {
                    // NOREPLICAS: a revocation's WAIT found no replica, as on a primary being demoted.
                    if error.isConnectionError || error.serverCode == "READONLY" || error.serverCode == "NOREPLICAS" {
                        self.lookUpInBackground()
                    }
                    throw error
                }
                await self.lookUp(minimumAge: .milliseconds(100))
                try? await Task.sleep(for: RedisClusterClient.retryDelay(attempt))
            }
        }
    }

    public func primaries() async throws(RedisError) -> [RedisClient] { [try await self.primaryClient()] }

    /// Replicas the Sentinels list for the primary and do not flag down, as of
    /// the last lookup (every `refreshInterval`, and on every switch).
    public func expectedReplicas(routingKey: RESPArgument?) -> Int? { state.withLock { $0.healthyReplicas } }

    // MARK: Lifecycle

    /// Follows `+switch-master` on every Sentinel and asks again every `refreshInterval`,
    /// until graceful shutdown; then closes every pool.
    public func run() async throws {
        let subscriptions = self.sentinels.map { sentinel in
            var configuration = self.sentinelConfiguration.at(sentinel)
            configuration.protocolVersion = .resp3
            return RedisSubscription(
                configuration: configuration, channels: ["+switch-master"], heartbeatInterval: .seconds(1),
                eventLoopGroup: self.eventLoopGroup, logger: self.logger
            ) { [weak self] event in
                guard let self, case .message(_, let payload) = event else { return }
                let parts = String(decoding: payload.readableBytesView, as: UTF8.self).split(separator: " ")
                guard parts.count == 5, parts[0] == self.masterName else { return }
                Task { await self.lookUp(minimumAge: .zero) }
            }
        }
        await withDiscardingTaskGroup { group in
            for subscription in subscriptions { group.addTask { try? await subscription.run() } }
            group.addTask {
                try? await cancelWhenGracefulShutdown {
                    while !Task.isCancelled {
                        try await Task.sleep(for: self.refreshInterval)
                        await self.lookUp(minimumAge: .zero)
                    }
                }
            }
            try? await gracefulShutdown()
            group.cancelAll()
        }
        await self.shutdown()
    }

    public func shutdown() async {
        let clients = self.state.withLock { state in
            state.isShutdown = true
            var clients = Array(state.sentinelClients.values)
            if let primary = state.primary { clients.append(primary.client) }
            state.sentinelClients = [:]
            state.primary = nil
            return clients
        }
        self.lookup.close()
        for client in clients { await client.shutdown() }
    }

    // MARK: Discovery

    private func primaryClient() async throws(RedisError) -> RedisClient {
        if let client = self.state.withLock({ $0.primary?.client }) { return client }
        await self.lookUp(minimumAge: .zero)
        if let client = self.state.withLock({ $0.primary?.client }) { return client }
        if self.state.withLock({ $0.isShutdown }) { throw .clientShutdown }
        throw .connectionFailed("no Sentinel named a reachable primary '\(self.masterName)'")
    }

    /// Asks the Sentinels again unless that was done less than `minimumAge` ago; concurrent
    /// callers share one lookup.
    public func lookUp(minimumAge: Duration) async {
        await self.lookup.run(minimumAge: minimumAge) { await self.findPrimary() }
    }

    private func lookUpInBackground() {
        Task { await self.lookUp(minimumAge: .milliseconds(100)) }
    }

    /// Asks every Sentinel at once and follows the newest answer (`SentinelPrimaryChoice`).
    /// A lookup takes as long as the slowest Sentinel, at most the command timeout.
    private func findPrimary() async {
        let clients = self.sentinels.compactMap { self.sentinelClient($0) }
        guard clients.count == self.sentinels.count else { return }
        let name = RESPArgument(self.masterName)
        let answers = await withTaskGroup(of: (Int, SentinelPrimaryChoice.Report)?.self) { group in
            for (index, client) in clients.enumerated() {
                group.addTask {
                    guard let reply = try? await client.send(["SENTINEL", "master", name]),
                        let report = SentinelPrimaryChoice.Report(sentinelMaster: reply)
                    else { return nil }
                    return (index, report)
                }
            }
            var answers: [(Int, SentinelPrimaryChoice.Report)] = []
            for await answer in group { if let answer { answers.append(answer) } }
            return answers.sorted { $0.0 < $1.0 }
        }
        let choice = SentinelPrimaryChoice(answers.map(\.1))
        guard let address = choice.primary, let epoch = choice.configEpoch,
            let witness = answers.first(where: { $0.1.address == address && $0.1.configEpoch == epoch })
        else { return }
        let replicas = await self.healthyReplicas(asking: clients[witness.0])
        if self.state.withLock({ $0.primary?.address }) == address {
            // Still the same: make sure it has not been demoted without us hearing of it.
            if let current = self.state.withLock({ $0.primary?.client }), await Self.isPrimary(current), let replicas {
                self.state.withLock { $0.healthyReplicas = replicas }
            }
            return
        }
        var primaryConfiguration = self.configuration.at(address)
        primaryConfiguration.requiresPrimary = true
        let candidate = RedisClient(configuration: primaryConfiguration, eventLoopGroup: self.eventLoopGroup, logger: self.logger)
        // Not promoted yet (or demoted again): keep what we have; commands that meet READONLY
        // look again. An older answer is never taken instead: it may be the demoted primary.
        guard await Self.isPrimary(candidate) else {
            await candidate.shutdown()
            return
        }
        let previous: RedisClient? = self.state.withLock { state in
            guard !state.isShutdown else { return candidate }
            let previous = state.primary?.client
            if previous != nil { state.switches += 1 }
            state.primary = (address, candidate)
            state.healthyReplicas = replicas
            return previous
        }
        self.logger.notice("Redis primary", metadata: ["master": "\(self.masterName)", "address": "\(address)", "config_epoch": "\(epoch)"])
        // Commands still running on the old pool finish (or fail) there.
        if let previous { Task { await previous.shutdown() } }
    }

    /// `SENTINEL replicas <name>`: how many are not flagged down (subjectively or objectively).
    /// `disconnected` is not counted as down: it is how a Sentinel's own link looks for a
    /// moment during a switch (the promoted node drops its clients), not a dead replica.
    private func healthyReplicas(asking sentinel: RedisClient) async -> Int? {
        guard let reply = try? await sentinel.send(["SENTINEL", "replicas", RESPArgument(self.masterName)]), let entries = reply.array else {
            return nil
        }
        return entries.filter { entry in
            let flags = entry.stringMap?["flags"]?.string ?? "s_down"
            return !flags.contains("s_down") && !flags.contains("o_down")
        }.count
    }

    private static func isPrimary(_ client: RedisClient) async -> Bool {
        guard let reply = try? await client.send(["ROLE"]), let role = reply.array?.first?.string else { return false }
        return role == "master"
    }

    private func sentinelClient(_ address: RedisNodeAddress) -> RedisClient? {
        self.state.withLock { state in
            if state.isShutdown { return nil }
            if let existing = state.sentinelClients[address] { return existing }
            let client = RedisClient(configuration: self.sentinelConfiguration.at(address), eventLoopGroup: self.eventLoopGroup, logger: self.logger)
            state.sentinelClients[address] = client
            return client
        }
    }
}
