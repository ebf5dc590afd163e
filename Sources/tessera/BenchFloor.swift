import ArgumentParser
import Logging
import TesseraServer

/// `tessera bench-floor`: an endpoint that does no work, the reference `scripts/bench` measures
/// Tessera against. Hidden: not part of the service.
struct BenchFloor: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-floor", abstract: "Serve GET /floor doing no work (benchmark reference).", shouldDisplay: false
    )

    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on.")
    var port = 8090

    func run() async throws {
        try await FloorServer.serve(host: host, port: port, logger: Logger(label: "tessera.floor"))
    }
}
