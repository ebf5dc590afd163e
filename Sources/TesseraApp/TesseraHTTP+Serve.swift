import Hummingbird
import Logging
import ServiceLifecycle
import UnixSignals
import TesseraServer

extension TesseraHTTP {
    /// The Hummingbird application for a wired runtime: the router, the runtime's background
    /// services, and the address from the configuration.
    public static func application(
        runtime: TesseraRuntime, configuration: ServerConfiguration, logger: Logger, readiness: Readiness = Readiness(),
        onListening: @escaping @Sendable (_ port: Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        var options = Options(
            adminKey: configuration.adminKey, serviceKey: configuration.serviceKey, metricsKey: configuration.metricsKey,
            metrics: runtime.metrics, sweeper: runtime.sweeper, readiness: readiness, trustedProxies: configuration.trustedProxies,
            corsOrigins: configuration.corsOrigins, tracer: runtime.tracer
        )
        options.keyFiles = runtime.keyFiles
        options.keyPublishDelay = configuration.effectiveKeyPublishDelay
        return Application(
            router: router(service: runtime.service, options: options),
            server: server(configuration.connections),
            configuration: serverConfiguration(
                address: .hostname(configuration.host, port: configuration.port), limits: configuration.connections, logger: logger
            ),
            services: runtime.services,
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? configuration.port
                readiness.serving()
                logger.notice("Tessera listening on http://\(configuration.host):\(port) (\(runtime.summary))")
                await onListening(port)
            },
            logger: logger
        )
    }

    /// Serves until SIGINT/SIGTERM, then shuts down gracefully: `/health/ready` answers 503 from
    /// the signal on, while the server drains the requests in progress.
    public static func serve(runtime: TesseraRuntime, configuration: ServerConfiguration, logger: Logger) async throws {
        let readiness = Readiness()
        let app = application(runtime: runtime, configuration: configuration, logger: logger, readiness: readiness)
        // Shut down in reverse order: the watch hears of it first, then the application drains.
        let group = ServiceGroup(
            configuration: .init(services: [app, ReadinessWatch(readiness)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        )
        try await group.run()
    }
}
