import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Tessera
@testable import TesseraServer
import Testing

/// docs/openapi.yaml against the server: the embedded copy is current, it is what
/// `/openapi.json` serves, and it names exactly the routes the router has. (scripts/contract
/// checks the answers themselves, with a fuzzer against a real `tessera serve`.)
@Suite("Contract: the OpenAPI document")
struct OpenAPIContractTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Every optional part on, so that every route is registered.
    static func fullOptions() -> TesseraHTTP.Options {
        TesseraHTTP.Options(
            adminKey: "admin-key-0123456789", serviceKey: "service-key-0123456789", metricsKey: "metrics-key-0123456789",
            metrics: TesseraMetrics()
        )
    }

    static let operationMethods: Set<String> = ["get", "put", "post", "delete", "options", "head", "patch", "trace"]

    /// "METHOD /path" for every operation of the served document.
    static func documentedOperations(_ document: [String: Any]) -> Set<String> {
        let paths = document["paths"] as? [String: [String: Any]] ?? [:]
        return Set(paths.flatMap { path, item in
            item.keys.filter(operationMethods.contains).map { "\($0.uppercased()) \(path)" }
        })
    }

    @Test func theEmbeddedDocumentIsGeneratedFromTheCurrentYAML() throws {
        let yaml = try Data(contentsOf: Self.root.appendingPathComponent("docs/openapi.yaml"))
        let digest = SHA256.hash(data: yaml).map { String(format: "%02x", $0) }.joined()
        #expect(digest == OpenAPIDocument.sourceSHA256, "docs/openapi.yaml changed since it was embedded: run scripts/generate-openapi")
    }

    @Test func openAPIJSONServesTheEmbeddedDocument() async throws {
        var tessera = try await TestTessera.make()
        tessera.options = Self.fullOptions()
        try await tessera.test { client in
            let reply = try await client.raw(.get, "/openapi.json")
            #expect(reply.status == .ok)
            #expect(reply.headers[.contentType] == "application/json")
            #expect(reply.body == Data(OpenAPIDocument.json.utf8))
            let document = try #require(try JSONSerialization.jsonObject(with: reply.body) as? [String: Any])
            #expect(document["openapi"] as? String == "3.1.0")
        }
    }

    /// A route the document lacks is an endpoint no client or fuzzer knows of; a documented
    /// operation the router lacks is a promise the server does not keep.
    @Test func theDocumentNamesExactlyTheRoutesOfTheRouter() async throws {
        let tessera = try await TestTessera.make()
        let router = TesseraHTTP.router(service: tessera.service, options: Self.fullOptions())
        var served = Set(router.routes.map { "\($0.method.rawValue) \($0.path.description)" })
        // Forward-auth is a middleware on the not-found path (any method), not a route.
        for path in [AuthController.forwardAuthPath, AuthController.forwardAuthPath + "/{path}"] {
            for method in ForwardAuthMiddleware.methods { served.insert("\(method.rawValue) \(path)") }
        }
        let document = try #require(try JSONSerialization.jsonObject(with: Data(OpenAPIDocument.json.utf8)) as? [String: Any])
        let documented = Self.documentedOperations(document)
        #expect(served.subtracting(documented).sorted() == [], "routes missing from docs/openapi.yaml")
        #expect(documented.subtracting(served).sorted() == [], "documented operations the router does not have")
    }

    @Test func everyOperationHasAUniqueOperationIDAndOnlyDocumentedCodes() throws {
        let document = try #require(try JSONSerialization.jsonObject(with: Data(OpenAPIDocument.json.utf8)) as? [String: Any])
        let paths = document["paths"] as? [String: [String: Any]] ?? [:]
        let ids = paths.values.flatMap { item in
            item.filter { Self.operationMethods.contains($0.key) }.compactMap { ($0.value as? [String: Any])?["operationId"] as? String }
        }
        #expect(ids.count == Self.documentedOperations(document).count, "an operation without operationId")
        #expect(Set(ids).count == ids.count, "duplicate operationId")
    }
}
