import Hummingbird
import Logging

/// The HTTP floor for `scripts/bench`: the same Hummingbird server set-up as Tessera, with one
/// route that does no work. Tessera's own figures are read against it.
public enum FloorServer {
    public static func serve(host: String, port: Int, logger: Logger) async throws {
        let router = Router(context: TesseraRequestContext.self)
        router.get("floor") { _, _ in "ok" }
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: "tessera-floor"),
            onServerRunning: { channel in
                logger.notice("floor listening on http://\(host):\(channel.localAddress?.port ?? port)")
            },
            logger: logger
        )
        try await app.runService()
    }
}
