import HTTPTypes
import Hummingbird
import NIOCore

/// `GET /openapi.json`: docs/openapi.yaml as JSON, embedded in the binary by
/// scripts/generate-openapi, so that a client or a fuzzer reads the contract of the very server
/// it talks to.
enum OpenAPIDocument {
    static let path: RouterPath = "openapi.json"
    static let body = ByteBuffer(string: json)

    static func addRoute(to router: Router<TesseraRequestContext>) {
        router.get(path) { _, _ in
            Response(
                status: .ok, headers: [.contentType: "application/json", .cacheControl: "public, max-age=600"],
                body: .init(byteBuffer: body)
            )
        }
    }
}
