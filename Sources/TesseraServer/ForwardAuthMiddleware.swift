import HTTPTypes
import Hummingbird

/// Answers `/v1/authz/check[/…]` for every method. A route would need one registration per
/// method, and gateways such as Envoy forward the original request's method, whatever it is.
/// Added after every route, so it wraps only the router's not-found path.
struct ForwardAuthMiddleware: RouterMiddleware {
    let controller: AuthController

    /// What `Allow` lists for the check paths: every method a gateway forwards, TRACE aside.
    static let methods: [HTTPRequest.Method] = [.get, .head, .post, .put, .patch, .delete, .options]

    func handle(
        _ request: Request, context: TesseraRequestContext, next: (Request, TesseraRequestContext) async throws -> Response
    ) async throws -> Response {
        // TRACE echoes the request (credentials included) and is refused everywhere.
        guard request.method != .trace, AuthController.isForwardAuth(request.uri.path) else { return try await next(request, context) }
        // The route label for metrics: one pattern, never the raw path.
        context.coreContext.endpointPath.value = AuthController.forwardAuthPath + "/**"
        var response = await controller.forwardAuth(request, logger: context.logger)
        if request.method == .head { response = response.createHeadResponse() }
        return response
    }
}
