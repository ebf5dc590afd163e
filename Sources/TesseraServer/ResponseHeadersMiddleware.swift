import HTTPTypes
import Hummingbird

/// Headers every API answer carries, problem details included: the content is never sniffed as
/// another type, and no answer is rendered as a document that could run script or be framed.
struct ResponseHeadersMiddleware<Context: RequestContext>: RouterMiddleware {
    static var contentSecurityPolicy: String { "default-src 'none'; frame-ancestors 'none'; base-uri 'none'" }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response = try await next(request, context)
        response.headers[.xContentTypeOptions] = "nosniff"
        if response.headers[.contentSecurityPolicy] == nil {
            response.headers[.contentSecurityPolicy] = Self.contentSecurityPolicy
        }
        return response
    }
}

/// `CONNECT` names no resource here. An answer to CONNECT without a body length leaves clients
/// waiting for the tunnel, so the refusal carries its body and closes. (`TRACE` is refused on the
/// not-found path, by `MethodNotAllowedMiddleware`, which knows the path's methods for `Allow`.)
struct UnsupportedMethodMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard request.method == .connect else { return try await next(request, context) }
        throw APIError(
            .methodNotAllowed, code: "method_not_allowed", detail: "\(request.method.rawValue) is not supported.",
            headers: [.connection: "close", .allow: ""]
        )
    }
}
