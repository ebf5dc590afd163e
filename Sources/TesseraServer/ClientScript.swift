import Crypto
import HTTPTypes
import Hummingbird
import NIOCore

/// `GET /v1/client/tessera.js`: the browser client (clients/js/tessera.js), embedded in the
/// binary by scripts/generate-client so that an app can import it straight from its Tessera.
enum ClientScript {
    static let path: RouterPath = "v1/client/tessera.js"
    static let body = ByteBuffer(string: source)
    /// Strong validator: a digest of the bytes, so a new release never matches an old cache entry.
    static let etag: String = {
        let digest = SHA256.hash(data: Array(source.utf8))
        return "\"" + digest.prefix(16).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined() + "\""
    }()

    static func addRoute(to router: Router<TesseraRequestContext>) {
        router.get(path) { request, _ in response(ifNoneMatch: request.headers[values: .ifNoneMatch]) }
    }

    static func response(ifNoneMatch: [String]) -> Response {
        // Cached for ten minutes, then revalidated (the URL carries no version).
        var headers: HTTPFields = [.eTag: etag, .cacheControl: "public, max-age=600"]
        if matches(ifNoneMatch) { return Response(status: .notModified, headers: headers) }
        headers[.contentType] = "text/javascript; charset=utf-8"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: body))
    }

    /// RFC 9110 §13.1.2: `*` or a list of tags, compared weakly (a `W/` prefix is ignored).
    static func matches(_ fields: [String]) -> Bool {
        fields.lazy.flatMap { $0.split(separator: ",") }.contains { candidate in
            var tag = candidate.trimmingPrefix(while: { $0 == " " || $0 == "\t" })
            while tag.last == " " || tag.last == "\t" { tag = tag.dropLast() }
            if tag == "*" { return true }
            if tag.hasPrefix("W/") { tag = tag.dropFirst(2) }
            return tag == etag
        }
    }
}
