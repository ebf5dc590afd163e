import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle
import Synchronization

/// A dedicated pub/sub connection: SUBSCRIBEs to fixed channels, delivers their messages,
/// proves the stream is live with a heartbeat, and reconnects (capped exponential backoff with
/// jitter) and re-subscribes whenever the connection is lost.
///
/// Redis pub/sub is fire-and-forget: whatever was published while no connection was subscribed
/// is gone. The owner learns about every gap through the events and must resynchronise after
/// each `.subscribed` (see `RevocationView`).
///
/// Needs RESP3 (pushes and ordinary replies on one connection); on a RESP2-only server it never
/// reports `.subscribed` and logs an error, so an owner that waits for it stays on its slow path.
///
/// Run it in a `ServiceGroup` or call `run()` in a task; cancellation or graceful shutdown ends it.
public final class RedisSubscription: Sendable, Service {
    public enum Event: Sendable {
        /// Subscribed on connection `connection`: every message published from now on is
        /// delivered, anything published earlier may have been missed.
        case subscribed(connection: Int, at: ContinuousClock.Instant)
        case message(channel: String, payload: ByteBuffer)
        /// A PING sent at `sentAt` on `connection` was answered: every message published before
        /// `sentAt` has been delivered (replies and pushes share one ordered stream).
        case heartbeat(connection: Int, sentAt: ContinuousClock.Instant)
        /// The connection is gone; messages may be missed until the next `.subscribed`.
        case disconnected(connection: Int)
    }

    public let configuration: RedisConfiguration
    public let channels: [String]
    /// Time between two heartbeat PINGs on the subscription connection.
    public let heartbeatInterval: Duration
    private let eventLoopGroup: any EventLoopGroup
    private let logger: Logger
    private let handler: @Sendable (Event) -> Void
    private let current = Mutex<RESPConnection?>(nil)

    /// - Parameter handler: called for every event, on a NIO event loop or the `run()` task; it
    ///   must not block.
    public init(
        configuration: RedisConfiguration, channels: [String], heartbeatInterval: Duration = .milliseconds(250),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger = Logger(label: "TesseraRESP"),
        handler: @escaping @Sendable (Event) -> Void
    ) {
        self.configuration = configuration
        self.channels = channels
        self.heartbeatInterval = heartbeatInterval
        self.eventLoopGroup = eventLoopGroup
        self.logger = logger
        self.handler = handler
    }

    /// Subscribes, and keeps re-subscribing after every loss, until cancelled or shut down.
    public func run() async throws {
        try? await cancelWhenGracefulShutdown {
            await self.loop()
        }
        await self.current.withLock { $0.take() }?.close()
    }

    /// Closes the current connection (tests use it to simulate a drop; the loop reconnects).
    public func dropConnection() async {
        await self.current.withLock { $0 }?.close()
    }

    private func loop() async {
        var failures = 0
        var connectionNumber = 0
        while !Task.isCancelled {
            connectionNumber += 1
            var subscribed = false
            do {
                try await self.session(connectionNumber, subscribed: &subscribed)
            } catch {
                // A connection that had subscribed starts the count again: the delay after a
                // drop must not grow with the drops of earlier, healthy connections.
                failures = subscribed ? 1 : failures + 1
                if !Task.isCancelled {
                    self.logger.warning(
                        "Redis subscription lost", metadata: ["redis": "\(self.configuration)", "error": "\(error)"]
                    )
                }
            }
            let delay = RedisClient.backoffDelay(
                failures: max(failures, 1), base: self.configuration.reconnectBaseDelay,
                maximum: self.configuration.reconnectMaximumDelay
            )
            try? await Task.sleep(for: delay)
        }
    }

    /// One connection's life: connect, subscribe, heartbeat until it fails.
    private func session(_ id: Int, subscribed: inout Bool) async throws {
        let router = PushRouter(channels: Set(self.channels), handler: self.handler)
        let connection = try await RESPConnection.connect(
            configuration: self.configuration, eventLoopGroup: self.eventLoopGroup, logger: self.logger,
            pushHandler: { router.receive($0) }
        )
        self.current.withLock { $0 = connection }
        connection.channel.closeFuture.whenComplete { _ in self.handler(.disconnected(connection: id)) }
        defer { connection.channel.close(promise: nil) }
        guard connection.protocolVersion == .resp3 else {
            self.logger.error("Redis pub/sub needs RESP3 (HELLO 3); this server speaks RESP2 only")
            throw RedisError.invalidConfiguration("pub/sub needs RESP3")
        }
        let confirmed = connection.channel.eventLoop.makePromise(of: Void.self)
        router.awaitConfirmation(confirmed)
        let timeout = connection.channel.eventLoop.scheduleTask(in: TimeAmount(self.configuration.connectTimeout)) {
            confirmed.fail(RedisError.timeout)
        }
        connection.channel.closeFuture.whenComplete { _ in confirmed.fail(RedisError.connectionClosed) }
        try await connection.sendPushCommand(["SUBSCRIBE"] + self.channels.map { RESPArgument($0) })
        try await confirmed.futureResult.get()
        timeout.cancel()
        subscribed = true
        self.handler(.subscribed(connection: id, at: .now))
        // Heartbeats on a timer that stops when the connection closes, so the reconnect starts
        // then, not after the rest of a heartbeat interval.
        let (ticks, tick) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let timer = connection.channel.eventLoop.scheduleRepeatedTask(initialDelay: .zero, delay: TimeAmount(self.heartbeatInterval)) { _ in
            tick.yield()
        }
        connection.channel.closeFuture.whenComplete { _ in tick.finish() }
        defer { timer.cancel() }
        for await _ in ticks {
            let sentAt = ContinuousClock.now
            try await connection.send(["PING"], timeout: self.configuration.commandTimeout)
            self.handler(.heartbeat(connection: id, sentAt: sentAt))
        }
        throw Task.isCancelled ? CancellationError() : RedisError.connectionClosed
    }
}

/// Sorts the pushes of one subscription connection: confirmations, then messages.
private final class PushRouter: Sendable {
    private struct State {
        var unconfirmed: Set<String>
        var confirmation: EventLoopPromise<Void>?
    }

    private let state: Mutex<State>
    private let handler: @Sendable (RedisSubscription.Event) -> Void

    init(channels: Set<String>, handler: @escaping @Sendable (RedisSubscription.Event) -> Void) {
        self.state = Mutex(State(unconfirmed: channels))
        self.handler = handler
    }

    func awaitConfirmation(_ promise: EventLoopPromise<Void>) {
        let done = self.state.withLock { state in
            state.confirmation = promise
            return state.unconfirmed.isEmpty
        }
        if done { promise.succeed() }
    }

    func receive(_ value: RESPValue) {
        guard case .push(let parts) = value.withoutAttributes, parts.count >= 3, let kind = parts[0].string?.lowercased(),
            let channel = parts[1].string
        else { return }
        switch kind {
        case "message":
            if let payload = parts[2].bytes { self.handler(.message(channel: channel, payload: payload)) }
        case "subscribe":
            let promise: EventLoopPromise<Void>? = self.state.withLock { state in
                state.unconfirmed.remove(channel)
                return state.unconfirmed.isEmpty ? state.confirmation : nil
            }
            promise?.succeed()
        default:
            break
        }
    }
}
