import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle
import Synchronization

/// A bounded pool of `RESPConnection`s: the object application code talks to.
///
/// Connections are opened lazily, one command (or pipeline) per leased connection at a time,
/// so a slow command never delays an unrelated one queued behind it on the same socket.
/// After a failed connect the pool backs off (capped exponential, with jitter) and, while it
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
    private let state = Mutex(PoolState())

    private enum Lease {
        case connection(RESPConnection)
        /// A slot was freed for the waiter: it may open a connection itself.
        case openNew
    }

    private struct Waiter {
        var id: Int
        var continuation: CheckedContinuation<Lease, any Error>
        var timeout: Scheduled<Void>?
    }

    private struct PoolState {
        var idle: [RESPConnection] = []
        /// Connections open or being opened: what counts against the maximum.
        var slotsInUse = 0
        var waiters: [Waiter] = []
        var nextWaiterID = 0
        var consecutiveFailures = 0
        var retryAfter: ContinuousClock.Instant?
        var lastFailure: RedisError?
        var isShutdown = false
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
    @discardableResult
    public func send(_ command: [RESPArgument], timeout: Duration? = nil) async throws(RedisError) -> RESPValue {
        var attempt = 0
        while true {
            attempt += 1
            let connection = try await self.acquire()
            do {
                let reply = try await connection.sendUnlessClosed(command, timeout: timeout)
                self.release(connection)
                return reply
            } catch is RESPNotSentError {
                self.release(connection, broken: true)
                if attempt >= 2 { throw .connectionClosed }
            } catch let error as RedisError {
                self.release(connection, broken: error.closesConnection)
                throw error
            } catch {
                self.release(connection, broken: true)
                throw .connectionClosed
            }
        }
    }

    /// Sends the commands in one write on one connection; replies come back in order, error
    /// replies as values (see `RESPConnection.pipeline`).
    public func pipeline(_ commands: [[RESPArgument]], timeout: Duration? = nil) async throws(RedisError) -> [RESPValue] {
        try await self.withConnection { connection throws(RedisError) in
            try await connection.pipeline(commands, timeout: timeout)
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
        let (idle, waiters) = self.state.withLock { state in
            state.isShutdown = true
            let result = (state.idle, state.waiters)
            state.slotsInUse -= state.idle.count
            state.idle = []
            state.waiters = []
            return result
        }
        for waiter in waiters {
            waiter.timeout?.cancel()
            waiter.continuation.resume(throwing: RedisError.clientShutdown)
        }
        for connection in idle {
            await connection.close()
        }
    }

    // MARK: Pool mechanics

    private enum AcquireStep {
        case use(RESPConnection)
        case open
        case wait
        case fail(RedisError)
    }

    private func acquire() async throws(RedisError) -> RESPConnection {
        let now = ContinuousClock.now
        let step: AcquireStep = self.state.withLock { state in
            if state.isShutdown { return .fail(.clientShutdown) }
            while let connection = state.idle.popLast() {
                if connection.isActive { return .use(connection) }
                // Closed while idle (server restart, CLIENT KILL, idle timeout): forget it.
                state.slotsInUse -= 1
            }
            if state.slotsInUse < self.configuration.maximumConnections {
                if let retryAfter = state.retryAfter, now < retryAfter {
                    // Backing off. With live connections around, waiting for one is fine;
                    // with none, the server is down as far as we know: fail fast.
                    if state.slotsInUse > 0 { return .wait }
                    return .fail(self.backoffError(state, now: now))
                }
                state.slotsInUse += 1
                return .open
            }
            return .wait
        }
        switch step {
        case .use(let connection):
            return connection
        case .open:
            return try await self.openConnection()
        case .fail(let error):
            throw error
        case .wait:
            switch try await self.waitForLease() {
            case .connection(let connection): return connection
            case .openNew: return try await self.openConnection()
            }
        }
    }

    private func backoffError(_ state: PoolState, now: ContinuousClock.Instant) -> RedisError {
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

    /// Opens a connection into a slot the caller already reserved.
    private func openConnection() async throws(RedisError) -> RESPConnection {
        let now = ContinuousClock.now
        let backoff: RedisError? = self.state.withLock { state in
            if let retryAfter = state.retryAfter, now < retryAfter { return self.backoffError(state, now: now) }
            return nil
        }
        if let backoff {
            self.freeSlot()
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
            self.connectFailed(error)
            throw error
        }
        let shutdown = self.state.withLock { state in
            state.consecutiveFailures = 0
            state.retryAfter = nil
            state.lastFailure = nil
            return state.isShutdown
        }
        if shutdown {
            await connection.close()
            self.freeSlot()
            throw .clientShutdown
        }
        return connection
    }

    private func connectFailed(_ error: RedisError) {
        let waitersToFail: [Waiter] = self.state.withLock { state in
            state.slotsInUse -= 1
            state.consecutiveFailures += 1
            state.lastFailure = error
            let delay = Self.backoffDelay(
                failures: state.consecutiveFailures,
                base: self.configuration.reconnectBaseDelay,
                maximum: self.configuration.reconnectMaximumDelay
            )
            state.retryAfter = ContinuousClock.now + delay
            // Nobody will ever release a connection to these waiters: let them fail now.
            guard state.slotsInUse == 0 else { return [] }
            defer { state.waiters = [] }
            return state.waiters
        }
        self.logger.warning("Redis connect failed", metadata: ["redis": "\(self.configuration)", "error": "\(error)"])
        for waiter in waitersToFail {
            waiter.timeout?.cancel()
            waiter.continuation.resume(throwing: error)
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
        let waiter: Waiter? = self.state.withLock { state in
            if !state.isShutdown, !state.waiters.isEmpty {
                return state.waiters.removeFirst()
            }
            state.slotsInUse -= 1
            return nil
        }
        if let waiter {
            waiter.timeout?.cancel()
            waiter.continuation.resume(returning: .openNew)
        }
    }

    private func release(_ connection: RESPConnection, broken: Bool = false) {
        if broken || !connection.isActive {
            if connection.isActive {
                self.logger.debug("Dropping Redis connection after a connection error")
                connection.channel.close(promise: nil)
            }
            self.freeSlot()
            return
        }
        enum Action {
            case handOver(Waiter)
            case close
            case none
        }
        let action: Action = self.state.withLock { state in
            if state.isShutdown {
                state.slotsInUse -= 1
                return .close
            }
            if !state.waiters.isEmpty { return .handOver(state.waiters.removeFirst()) }
            state.idle.append(connection)
            return .none
        }
        switch action {
        case .handOver(let waiter):
            waiter.timeout?.cancel()
            waiter.continuation.resume(returning: .connection(connection))
        case .close:
            connection.channel.close(promise: nil)
        case .none:
            break
        }
    }

    private func waitForLease() async throws(RedisError) -> Lease {
        let id = self.state.withLock { state in
            defer { state.nextWaiterID += 1 }
            return state.nextWaiterID
        }
        do {
            return try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Lease, any Error>) in
                    let timeout = self.eventLoopGroup.any().scheduleTask(in: TimeAmount(self.configuration.acquireTimeout)) {
                        self.removeWaiter(id, error: .poolAcquireTimeout)
                    }
                    let failure: RedisError? = self.state.withLock { state in
                        if state.isShutdown { return .clientShutdown }
                        if Task.isCancelled { return .cancelled }
                        state.waiters.append(Waiter(id: id, continuation: continuation, timeout: timeout))
                        return nil
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
        let waiter: Waiter? = self.state.withLock { state in
            guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
            return state.waiters.remove(at: index)
        }
        if let waiter {
            waiter.timeout?.cancel()
            waiter.continuation.resume(throwing: error)
        }
    }
}
