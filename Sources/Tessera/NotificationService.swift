import ServiceLifecycle

/// Runs a `NotificationDispatcher` with the process: at start it delivers what an earlier
/// process left in the spool; at graceful shutdown (after the HTTP server has stopped taking
/// requests) it waits up to `drainTimeout` for deliveries in progress.
public struct NotificationService: Service {
    public let dispatcher: NotificationDispatcher
    public let drainTimeout: Duration

    public init(dispatcher: NotificationDispatcher, drainTimeout: Duration = .seconds(10)) {
        self.dispatcher = dispatcher
        self.drainTimeout = drainTimeout
    }

    public func run() async throws {
        dispatcher.resumePending()
        // Returns on graceful shutdown, throws on cancellation (then there is no time to drain;
        // the spool keeps what is left).
        try? await gracefulShutdown()
        guard !Task.isCancelled else { return }
        _ = await dispatcher.drain(timeout: drainTimeout)
    }
}
