import HTTPTypes
import Hummingbird

/// CORS for `--cors-origins`: credentialed answers and 204 preflights for those origins,
/// nothing for any other. Outside the problem middleware, so error answers carry the headers too
/// (a page must be able to read the `code` of a refusal).
struct CORSMiddleware<Context: RequestContext>: RouterMiddleware {
    let policy: BrowserPolicy

    static var allowedMethods: String { "GET, HEAD, POST, PUT, DELETE" }
    static var allowedHeaders: String { "Authorization, Content-Type, Tessera-Transport, If-None-Match" }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard !policy.corsOrigins.isEmpty else { return try await next(request, context) }
        let origin = policy.allowedCORSOrigin(request.headers)
        if let origin, request.method == .options, request.headers[.accessControlRequestMethod] != nil {
            var response = Response(status: .noContent)
            response.headers[.accessControlAllowMethods] = Self.allowedMethods
            response.headers[.accessControlAllowHeaders] = Self.allowedHeaders
            response.headers[.accessControlMaxAge] = "600"
            Self.allow(origin, in: &response.headers)
            return response
        }
        var response = try await next(request, context)
        if let origin {
            Self.allow(origin, in: &response.headers)
            response.headers[.accessControlExposeHeaders] = "Retry-After, WWW-Authenticate"
        } else {
            response.headers.append(Self.varyOrigin)
        }
        return response
    }

    // Answers differ by Origin (allowed ones get CORS headers): caches must keep them apart.
    private static var varyOrigin: HTTPField { HTTPField(name: .vary, value: "Origin") }

    private static func allow(_ origin: String, in headers: inout HTTPFields) {
        headers[.accessControlAllowOrigin] = origin
        headers[.accessControlAllowCredentials] = "true"
        headers.append(varyOrigin)
    }
}
