// A Hummingbird app with Tessera embedded: accounts in SQLite, one protected route.
//   swift run EmbeddedExample            (listens on 127.0.0.1:8081; PORT=… to change)
//   curl -X POST 'localhost:8081/signup?email=ada@example.com&password=correct%20horse'
//   curl localhost:8081/hello -H "Authorization: Bearer <access token>"
import Foundation
import Hummingbird
import HummingbirdAuth
import Tessera
import TesseraHummingbird
import TesseraSQLite

@main struct EmbeddedExample {
    static func main() async throws {
        let database = try SQLiteDatabase(path: "example/app.db")
        let tessera = try await AuthService(
            policy: TokenPolicy(), users: database.userStore(), tokens: database.tokenStore(),
            keys: try KeyFile.loadOrCreate(path: "example/tessera.key").0,
            security: .local(secrets: try EncryptionKeyFile.loadOrCreate(path: "example/tessera-encryption.key").0, outbox: "example/outbox")
        )
        let router = Router(context: TesseraAuthRequestContext.self)
        router.add(middleware: TesseraAuthenticator(verifier: tessera))
        router.post("signup") { request, _ in
            let query = request.uri.queryParameters
            return try await tessera.register(email: String(query["email"] ?? ""), password: String(query["password"] ?? "")).accessToken
        }
        router.get("hello") { _, context in "hello \(try context.requireIdentity().userID)\n" }
        let port = Int(ProcessInfo.processInfo.environment["PORT"] ?? "") ?? 8081
        try await Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port))).runService()
    }
}
