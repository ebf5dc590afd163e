import HTTPTypes
import Hummingbird

/// Which methods each route path serves, read from the router once every route is added. The
/// router alone answers a known path asked with another method as if the path did not exist
/// (404); RFC 9110 §15.5.6 wants 405 with `Allow`, which tells a client its request was sent to
/// the right place with the wrong method.
struct AllowedMethods: Sendable {
    private let routes: [(path: RouterPath, methods: [HTTPRequest.Method])]

    init(_ routes: [(path: RouterPath, method: HTTPRequest.Method)]) {
        var order: [String] = []
        var byPath: [String: (path: RouterPath, methods: [HTTPRequest.Method])] = [:]
        for route in routes {
            let key = route.path.description
            if byPath[key] == nil { order.append(key) }
            byPath[key, default: (route.path, [])].methods.append(route.method)
        }
        // The router answers HEAD wherever it answers GET (`autoGenerateHeadEndpoints`).
        self.routes = order.compactMap { byPath[$0] }.map { route in
            route.methods.contains(.get) && !route.methods.contains(.head) ? (route.path, route.methods + [.head]) : route
        }
    }

    /// The methods of the route the router would pick for `path` (segment by segment, literals
    /// and `{captures}`; where several match, a literal beats a capture at the first segment
    /// they differ, as in the router: `keys/reseal` is not `keys/{kid}`); nil when none matches.
    func methods(for path: String) -> [HTTPRequest.Method]? {
        let segments = path.split(separator: "/", omittingEmptySubsequences: true)
        let matches = routes.filter { route in
            route.path.count == segments.count && zip(route.path, segments).allSatisfy { element, segment in element ~= segment }
        }
        return matches.min { Self.rank($0.path).lexicographicallyPrecedes(Self.rank($1.path)) }?.methods
    }

    /// 0 for a literal segment, 1 for a capture or wildcard.
    private static func rank(_ path: RouterPath) -> [Int] {
        path.map { element in
            let text = element.description
            return text.hasPrefix("{") || text.hasPrefix(":") || text.hasPrefix("*") ? 1 : 0
        }
    }

    /// The `Allow` value: the methods sorted, so that the header is the same on every answer.
    static func allowValue(_ methods: [HTTPRequest.Method]) -> String {
        methods.map(\.rawValue).sorted().joined(separator: ", ")
    }
}

/// Answers 405 `method_not_allowed` with `Allow` for a known path asked with a method it does not
/// serve. Added after every route, so it wraps only the router's not-found path.
struct MethodNotAllowedMiddleware<Context: RequestContext>: RouterMiddleware {
    let allowed: AllowedMethods

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        let methods = AuthController.isForwardAuth(path) ? ForwardAuthMiddleware.methods : allowed.methods(for: path)
        // TRACE is refused on every path, known or not (an unknown one allows nothing).
        guard let methods = methods ?? (request.method == .trace ? [] : nil) else { return try await next(request, context) }
        return APIError(
            .methodNotAllowed, code: "method_not_allowed", detail: "This endpoint does not accept \(request.method.rawValue).",
            headers: [.allow: AllowedMethods.allowValue(methods)]
        ).response()
    }
}
