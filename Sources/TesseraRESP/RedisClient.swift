import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle
import Synchronization

/// A bounded pool of `RESPConnection`s: the object application code talks to.
///
/// Connections are opened lazily. Single commands and pipelines are multiplexed: many callers'
/// commands are in flight on one connection at once and go out in one write per event-loop
/// tick; another connection is brought in once each has `commandsPerConnection` in flight.
/// Commands that need a connection to themselves — a command with its own (longer) timeout,
/// which would hold up the commands behind it, and `withConnection`'s dependent commands —
/// lease one. After a failed connect the pool backs off (capped exponential, with jitter) and, while it
/// has no connection at all, fails commands at once with `.connectionFailed` instead of letting
/// them queue up against a dead server.
///
/// Run it in a `ServiceGroup` (it closes its connections on graceful shutdown) or call
/// `shutdown()` yourself.
public final class RedisClient: Sendable, Service {
    public let configuration: RedisConfiguration
    private let eventLoopGroup: any EventLoopGroup
    private let logger: Logger
    /// Built once: loading trust roots per connection would be wasted work.
    private let sslContext: Result<NIOSSLContext?, RedisError>
    private let state: Mutex<RedisPoolStateMachine<PooledConnection, Waiter>>
    /// Keeps the minimum open and checks unused connections; started by the first command,
    /// ended by `shutdown()`.
    private let keepAlive = Mutex<KeepAlive>(.notStarted)
    /// Set once the keep-alive was started, so the command path checks it without a lock.
    private let keepAliveStarted = Atomic<Bool>(false)

    private enum KeepAlive {
        case notStarted
        case running(Task<Void, Never>)
        case stopped
    }

    /// Connections compared by identity, for the pool's bookkeeping.
    struct PooledConnection: Equatable, Sendable {
        let connection: RESPConnection
        static func == (lhs: Self, rhs: Self) -> Bool { lhs.connection === rhs.connection }
    }

    private enum Lease {
        case connection(RESPConnection)
        /// A slot was freed for the waiter: it may open a connection itself.
        case openNew
    }

    private struct Waiter {
        var continuation: CheckedContinuation<Lease, any Error>
        var timeout: Scheduled<Void>?

        /// Ends the wait: its timeout is cancelled and the caller resumed.
        func resume(returning lease: Lease) {
            timeout?.cancel()
            continuation.resume(returning: lease)
        }

        func resume(throwing error: RedisError) {
            timeout?.cancel()
            continuation.resume(throwing: error)
        }
    }

    public init(
        configuration: RedisConfiguration,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "TesseraRESP")
    ) {
        var configuration = configuration
        // A pool of zero would make every command wait out the acquire timeout.
        configuration.maximumConnections = max(1, configuration.maximumConnections)
        self.configuration = configuration
        self.state = Mutex(
            RedisPoolStateMachine(
                maximumConnections: configuration.maximumConnections, commandsPerConnection: configuration.commandsPerConnection
            )
        )
        self.eventLoopGroup = eventLoopGroup
        self.logger = logger
        self.sslContext = Result { () throws(RedisError) in try RESPConnection.makeSSLContext(configuration) }
    }

    /// Convenience for `RedisClient(configuration: RedisConfiguration(url: url))`.
    public convenience init(url: String, logger: Logger = Logger(label: "TesseraRESP")) throws(RedisError) {
        self.init(configuration: try RedisConfiguration(url: url), logger: logger)
    }

    // MARK: Commands

    /// Sends one command on a pooled connection. Error replies are thrown as `RedisError`.
    /// A command is re-sent on a fresh connection only when it certainly never left the client.
    ///
    /// Multiplexed with other callers' commands, except a command that blocks its connection or
    /// changes its state (`BLPOP`, `WAIT`, `MULTI`, `SELECT`, …) or has its own `timeout`
    /// (a long-running one): those lease a connection.
    @discardableResult
    public func send(_ command: [RESPArgument], timeout: Duration? = nil) async throws(RedisError) -> RESPValue {
        if timeout != nil || RedisCommandRouting.needsLease(command) {
            return try await self.leased { connection in try await connection.sendUnlessClosed(command, timeout: timeout, onCancel: .close) }
        }
        return try await self.shared { connection in
            try await connection.sendUnlessClosed(command, timeout: nil, onCancel: .abandon)
        }
    }

    /// Sends the commands in one write on one connection; replies come back in order, error
    /// replies as values (see `RESPConnection.pipeline`). Multiplexed like `send`, unless it
    /// has its own timeout.
    public func pipeline(_ commands: [[RESPArgument]], timeout: Duration? = nil) async throws(RedisError) -> [RESPValue] {
        if timeout != nil || commands.contains(where: RedisCommandRouting.needsLease) {
            return try await self.leased { connection in
                try await connection.pipelineUnlessClosed(commands, timeout: timeout, onCancel: .close)
            }
        }
        return try await self.shared { connection in
            try await connection.pipelineUnlessClosed(commands, timeout: nil, onCancel: .abandon)
        }
    }

    private func leased<Result: Sendable>(_ body: (RESPConnection) async throws -> Result) async throws(RedisError) -> Result {
        try await self.request(leased: true, body)
    }

    private func shared<Result: Sendable>(_ body: (RESPConnection) async throws -> Result) async throws(RedisError) -> Result {
        try await self.request(leased: false, body)
    }

    /// Runs one request on a leased or a shared connection; re-sent once on another when it
    /// certainly never left (the connection was found closed only when the command reached it).
    /// A cancelled lease's connection is dropped (see `RESPConnection.send`); a shared one stays.
    private func request<Result: Sendable>(leased: Bool, _ body: (RESPConnection) async throws -> Result) async throws(RedisError) -> Result {
        var attempt = 0
        while true {
            attempt += 1
            let connection = leased ? try await self.acquire() : try await self.acquireShared()
            func done(broken: Bool) {
                if leased { self.release(connection, broken: broken) } else { self.releaseShared(connection, broken: broken) }
            }
            do {
                let result = try await body(connection)
                done(broken: false)
                return result
            } catch is RESPNotSentError {
                done(broken: true)
                if attempt >= 2 { throw .connectionClosed }
            } catch let error as RedisError {
                done(broken: leased ? error.closesConnection : error.isConnectionError)
                throw error
            } catch {
                done(broken: true)
                throw .connectionClosed
            }
        }
    }

    /// Leases one connection for several dependent commands (e.g. WATCH/MULTI/EXEC).
    /// The connection is dropped afterwards if the body failed with a connection error.
    public func withConnection<Result: Sendable>(
        _ body: (RESPConnection) async throws(RedisError) -> Result
    ) async throws(RedisError) -> Result {
        let connection = try await self.acquire()
        do {
            let result = try await body(connection)
            self.release(connection)
            return result
        } catch {
            self.release(connection, broken: error.closesConnection)
            throw error
        }
    }

    // MARK: Lifecycle

    /// Runs until graceful shutdown (or cancellation), then closes every connection.
    public func run() async throws {
        try? await gracefulShutdown()
        await self.shutdown()
    }

    /// Fails waiting commands, closes idle connections now and busy ones when they are
    /// returned. Later commands fail with `.clientShutdown`.
    public func shutdown() async {
        let task = self.keepAlive.withLock { keepAlive -> Task<Void, Never>? in
            defer { keepAlive = .stopped }
            if case .running(let task) = keepAlive { return task }
            return nil
        }
        task?.cancel()
        let (idle, waiters) = self.state.withLock { $0.shutdown() }
        for waiter in waiters {
            waiter.resume(throwing: RedisError.clientShutdown)
        }
        for pooled in idle {
            await pooled.connection.close()
        }
    }

    // MARK: Keep-alive

    private func startKeepAliveIfNeeded() {
        guard let interval = self.configuration.keepAliveInterval, !self.keepAliveStarted.load(ordering: .relaxed) else { return }
        self.keepAliveStarted.store(true, ordering: .relaxed)
        self.keepAlive.withLock { keepAlive in
            guard case .notStarted = keepAlive else { return }
            keepAlive = .running(
                Task { [weak self] in
                    while !Task.isCancelled {
                        try? await Task.sleep(for: interval)
                        guard let self, !Task.isCancelled else { return }
                        await self.maintain()
                    }
                }
            )
        }
    }

    /// One keep-alive round: `PING` on every unused connection (a dead one fails, is closed and
    /// its slot freed), then the minimum topped up in the background.
    func maintain() async {
        let (leased, shared) = self.state.withLock { $0.checkOutForKeepAlive() }
        await withDiscardingTaskGroup { group in
            for pooled in leased {
                group.addTask { self.release(pooled.connection, broken: !(await self.ping(pooled.connection))) }
            }
            for pooled in shared {
                group.addTask { self.releaseShared(pooled.connection, broken: !(await self.ping(pooled.connection))) }
            }
        }
        self.warmUp()
    }

    private func ping(_ connection: RESPConnection) async -> Bool {
        do {
            _ = try await connection.sendUnlessClosed(["PING"], timeout: nil, onCancel: .abandon)
            return true
        } catch {
            self.logger.debug("Redis keep-alive PING failed; dropping the connection", metadata: ["error": "\(error)"])
            return false
        }
    }

    /// Opens connections in the background until the configured minimum are open.
    private func warmUp() {
        let now = ContinuousClock.now
        let missing = self.state.withLock { $0.reserveWarm(minimum: self.configuration.minimumConnections, now: now) }
        for _ in 0..<missing {
            Task { try? await self.openConnection(shared: true, forCaller: false) }
        }
    }

    // MARK: Pool mechanics

    private func acquire() async throws(RedisError) -> RESPConnection {
        self.startKeepAliveIfNeeded()
        let now = ContinuousClock.now
        // A connection closed while idle (server restart, CLIENT KILL, idle timeout) is forgotten.
        let (step, backoff) = self.state.withLock { state in
            let step = state.acquire(now: now) { $0.connection.isActive }
            guard case .failBackingOff = step else { return (step, RedisError?.none) }
            return (step, self.backoffError(state, now: now))
        }
        switch step {
        case .use(let pooled):
            return pooled.connection
        case .open:
            return try await self.openConnection(shared: false)
        case .failShutdown:
            throw .clientShutdown
        case .failBackingOff:
            throw backoff ?? .connectionFailed("backing off")
        case .wait:
            switch try await self.waitForLease(exclusive: true) {
            case .connection(let connection): return connection
            case .openNew: return try await self.openConnection(shared: false)
            }
        }
    }

    private func acquireShared() async throws(RedisError) -> RESPConnection {
        self.startKeepAliveIfNeeded()
        let now = ContinuousClock.now
        let (step, backoff) = self.state.withLock { state in
            let step = state.acquireShared(now: now) { $0.connection.isActive }
            guard case .failBackingOff = step else { return (step, RedisError?.none) }
            return (step, self.backoffError(state, now: now))
        }
        switch step {
        case .use(let pooled, let openAnother):
            if openAnother {
                Task { try? await self.openConnection(shared: true, forCaller: false) }
            }
            return pooled.connection
        case .open:
            return try await self.openConnection(shared: true)
        case .failShutdown:
            throw .clientShutdown
        case .failBackingOff:
            throw backoff ?? .connectionFailed("backing off")
        case .wait:
            switch try await self.waitForLease(exclusive: false) {
            case .connection(let connection): return connection
            case .openNew: return try await self.openConnection(shared: true)
            }
        }
    }

    private func releaseShared(_ connection: RESPConnection, broken: Bool) {
        let broken = broken || !connection.isActive
        if broken, connection.isActive {
            self.logger.debug("Dropping Redis connection after a connection error")
            connection.channel.close(promise: nil)
        }
        switch self.state.withLock({ $0.releaseShared(PooledConnection(connection: connection), broken: broken) }) {
        case .keep:
            break
        case .handOver(let waiter, let pooled):
            waiter.resume(returning: .connection(pooled.connection))
        case .close(let pooled):
            pooled.connection.channel.close(promise: nil)
        case .openFor(let waiter):
            waiter.resume(returning: .openNew)
        }
    }

    private func backoffError(_ state: RedisPoolStateMachine<PooledConnection, Waiter>, now: ContinuousClock.Instant) -> RedisError {
        let remaining = state.retryAfter.map { now.duration(to: $0) } ?? .zero
        let cause: String
        switch state.lastFailure {
        case .connectionFailed(let message)?: cause = message
        case let error?: cause = "\(error)"
        case nil: cause = "earlier connection failures"
        }
        let milliseconds = remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000
        return .connectionFailed("\(cause) (backing off, next attempt in \(milliseconds) ms)")
    }

    /// Opens a connection into a slot the caller already reserved. `shared`: the slot was
    /// reserved for sharing; the connection then serves the shared commands waiting for it, and
    /// the caller's own command too unless `forCaller` is false (a background open).
    private func openConnection(shared: Bool, forCaller: Bool = true) async throws(RedisError) -> RESPConnection {
        let now = ContinuousClock.now
        let backoff: RedisError? = self.state.withLock { state in
            if let retryAfter = state.retryAfter, now < retryAfter { return self.backoffError(state, now: now) }
            return nil
        }
        if let backoff {
            let waiter = self.state.withLock { $0.abandonOpen(shared: shared) }
            if let waiter {
                waiter.resume(returning: .openNew)
            }
            throw backoff
        }
        let connection: RESPConnection
        do {
            let sslContext = try self.sslContext.get()
            connection = try await RESPConnection.connect(
                configuration: self.configuration,
                sslContext: sslContext,
                eventLoopGroup: self.eventLoopGroup,
                logger: self.logger,
                pushHandler: nil
            )
        } catch {
            self.connectFailed(error, shared: shared)
            throw error
        }
        let pooled = PooledConnection(connection: connection)
        let served: [Waiter]?? = self.state.withLock { state in
            state.connected()
            if shared { return .some(state.sharedOpened(pooled, forCaller: forCaller)) }
            return state.isShutdown ? .some(nil) : .none
        }
        switch served {
        case .some(nil):
            // Shut down meanwhile.
            await connection.close()
            if !shared { self.freeSlot() }
            throw .clientShutdown
        case .some(let waiters?):
            for waiter in waiters {
                waiter.resume(returning: .connection(connection))
            }
        case .none:
            break
        }
        return connection
    }

    private func connectFailed(_ error: RedisError, shared: Bool) {
        let now = ContinuousClock.now
        let waitersToFail: [Waiter] = self.state.withLock { state in
            state.connectFailed(error, now: now, shared: shared) { failures in
                Self.backoffDelay(failures: failures, base: self.configuration.reconnectBaseDelay, maximum: self.configuration.reconnectMaximumDelay)
            }
        }
        self.logger.warning("Redis connect failed", metadata: ["redis": "\(self.configuration)", "error": "\(error)"])
        for waiter in waitersToFail {
            waiter.resume(throwing: error)
        }
    }

    /// Capped exponential backoff with jitter (half to full delay), so that many clients
    /// restarting together do not reconnect in lockstep.
    static func backoffDelay(failures: Int, base: Duration, maximum: Duration) -> Duration {
        let exponent = min(max(failures - 1, 0), 30)
        let uncapped = base * (1 << exponent)
        let capped = min(uncapped, maximum)
        return capped * Double.random(in: 0.5...1.0)
    }

    /// A slot became free (connection dropped, or an open attempt abandoned): hand it to the
    /// first waiter so it can open a connection, or give it back.
    private func freeSlot() {
        let waiter: Waiter? = self.state.withLock { $0.freeSlot() }
        if let waiter {
            waiter.resume(returning: .openNew)
        }
    }

    private func release(_ connection: RESPConnection, broken: Bool = false) {
        let pooled = PooledConnection(connection: connection)
        if broken || !connection.isActive {
            if connection.isActive {
                self.logger.debug("Dropping Redis connection after a connection error")
                connection.channel.close(promise: nil)
            }
            self.freeSlot()
            return
        }
        switch self.state.withLock({ $0.release(pooled) }) {
        case .handOver(let waiter, let pooled):
            waiter.resume(returning: .connection(pooled.connection))
        case .share(let waiters, let pooled):
            for waiter in waiters {
                waiter.resume(returning: .connection(pooled.connection))
            }
        case .close(let pooled):
            pooled.connection.channel.close(promise: nil)
        case .keep:
            break
        }
    }

    private func waitForLease(exclusive: Bool) async throws(RedisError) -> Lease {
        let id = self.state.withLock { $0.nextWaiter() }
        do {
            return try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Lease, any Error>) in
                    let timeout = self.eventLoopGroup.any().scheduleTask(in: TimeAmount(self.configuration.acquireTimeout)) {
                        self.removeWaiter(id, error: .poolAcquireTimeout)
                    }
                    let failure: RedisError? = self.state.withLock { state in
                        if Task.isCancelled { return .cancelled }
                        return state.enqueue(Waiter(continuation: continuation, timeout: timeout), id: id, exclusive: exclusive) ? nil : .clientShutdown
                    }
                    if let failure {
                        timeout.cancel()
                        continuation.resume(throwing: failure)
                    }
                }
            } onCancel: {
                self.removeWaiter(id, error: .cancelled)
            }
        } catch let error as RedisError {
            throw error
        } catch {
            throw .cancelled
        }
    }

    private func removeWaiter(_ id: Int, error: RedisError) {
        let waiter: Waiter? = self.state.withLock { $0.removeWaiter(id) }
        if let waiter {
            waiter.resume(throwing: error)
        }
    }
}
