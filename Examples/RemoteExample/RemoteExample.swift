// A Hummingbird app beside a Tessera service: tokens verified here (JWKS + pushed revocations),
// with no call to Tessera per request.
//   tessera serve --service-key "$KEY" &
//   TESSERA_URL=http://127.0.0.1:8080 TESSERA_SERVICE_KEY="$KEY" swift run RemoteExample
//   curl localhost:8081/hello -H "Authorization: Bearer <access token from Tessera>"
import Foundation
import Hummingbird
import HummingbirdAuth
import Logging
import ServiceLifecycle
import Tessera
import TesseraHummingbird
import TesseraRemote

@main struct RemoteExample {
    static func main() async throws {
        let environment = ProcessInfo.processInfo.environment
        guard let serviceKey = environment["TESSERA_SERVICE_KEY"], !serviceKey.isEmpty else {
            FileHandle.standardError.write(Data("RemoteExample: error: set TESSERA_SERVICE_KEY to Tessera's --service-key\n".utf8))
            exit(2)
        }
        let verifier = TesseraRemoteVerifier(baseURL: environment["TESSERA_URL"] ?? "http://127.0.0.1:8080", serviceKey: serviceKey)
        let router = Router(context: TesseraAuthRequestContext.self)
        router.add(middleware: TesseraAuthenticator(verifier: verifier))
        router.get("hello") { _, context in "hello \(try context.requireIdentity().userID)\n" }
        router.get("open") { _, _ in "open\n" }
        let app = Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: Int(environment["PORT"] ?? "") ?? 8081)),
            services: [verifier],
            onServerRunning: { channel in
                // The line tests and scripts wait for (PORT=0 picks a free port).
                FileHandle.standardOutput.write(Data("listening on http://127.0.0.1:\(channel.localAddress?.port ?? 0)\n".utf8))
            }
        )
        try await app.runService()
    }
}
