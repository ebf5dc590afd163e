import Hummingbird
import Logging
import TesseraServer

extension TesseraHTTP {
    /// The Hummingbird application for a wired runtime: the router, the runtime's background
    /// services, and the address from the configuration.
    public static func application(
        runtime: TesseraRuntime, configuration: ServerConfiguration, logger: Logger,
        onListening: @escaping @Sendable (_ port: Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        Application(
            router: router(
                service: runtime.service,
                options: .init(
                    adminKey: configuration.adminKey, serviceKey: configuration.serviceKey, metricsKey: configuration.metricsKey,
                    metrics: runtime.metrics, sweeper: runtime.sweeper)
            ),
            server: server(configuration.connections),
            configuration: serverConfiguration(
                address: .hostname(configuration.host, port: configuration.port), limits: configuration.connections, logger: logger
            ),
            services: runtime.services,
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? configuration.port
                logger.notice("Tessera listening on http://\(configuration.host):\(port) (\(runtime.summary))")
                await onListening(port)
            },
            logger: logger
        )
    }

    /// Serves until SIGINT/SIGTERM, then shuts down gracefully.
    public static func serve(runtime: TesseraRuntime, configuration: ServerConfiguration, logger: Logger) async throws {
        try await application(runtime: runtime, configuration: configuration, logger: logger).runService()
    }
}
