import HTTPTypes
import Hummingbird
import Tracing

/// One server span per request, continuing the caller's trace (`traceparent`), named by the
/// route pattern (`/v1/auth/sessions/{id}`, never the raw path) with the method, route, status
/// and request id as attributes. Nothing else of the request is recorded: headers, paths and
/// query strings can carry tokens.
struct RequestTracingMiddleware: RouterMiddleware {
    typealias Context = TesseraRequestContext
    let tracer: any Tracer

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        try await trace(tracer, request, context, next)
    }

    private func trace<T: Tracer>(
        _ tracer: T, _ request: Request, _ context: Context, _ next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        var parent = ServiceContext.current ?? .topLevel
        tracer.extract(request.headers, into: &parent, using: HeaderExtractor())
        let span = tracer.startSpan("HTTP \(request.method.rawValue)", context: parent, ofKind: .server)
        span.attributes["http.request.method"] = request.method.rawValue
        if let id = context.requestID { span.attributes["tessera.request_id"] = id }
        defer { span.end() }
        do {
            let response = try await ServiceContext.$current.withValue(span.context) { try await next(request, context) }
            close(span, context, status: Int(response.status.code))
            return response
        } catch {
            // Status only: an error's description is not checked for secrets.
            close(span, context, status: (error as? any HTTPResponseError).map { Int($0.status.code) } ?? 500)
            throw error
        }
    }

    private func close(_ span: some Span, _ context: Context, status: Int) {
        if let route = context.endpointPath {
            span.operationName = route
            span.attributes["http.route"] = route
        }
        span.attributes["http.response.status_code"] = status
        if status >= 500 { span.setStatus(SpanStatus(code: .error)) }
    }
}

private struct HeaderExtractor: Extractor {
    func extract(key: String, from headers: HTTPFields) -> String? {
        HTTPField.Name(key).flatMap { headers[$0] }
    }
}
