import HTTPTypes
import Hummingbird
import Logging
import Tessera

extension HTTPField.Name {
    static let xRequestID = Self("X-Request-Id")!
}

/// Gives every request an id: the caller's `X-Request-Id` when it is a plain token (a proxy's
/// or the client's), else a new random one. It goes into the request's logger and audit
/// records and back in the answer's `X-Request-Id`, so one request can be followed end to end.
struct RequestIDMiddleware: RouterMiddleware {
    typealias Context = TesseraRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let id = request.headers.value(of: .xRequestID).flatMap(Self.accepted) ?? SecureRandom.identifier(byteCount: 12)
        var context = context
        context.requestID = id
        context.logger[metadataKey: "request_id"] = .string(id)
        var response = try await next(request, context)
        response.headers[.xRequestID] = id
        return response
    }

    /// 1 to 128 characters of `A-Z a-z 0-9 - _ . :`; anything else (spaces, quotes, control
    /// characters, a forged log line) is replaced rather than cleaned.
    static func accepted(_ value: String) -> String? {
        let bytes = value.utf8
        guard (1...128).contains(bytes.count) else { return nil }
        let plain = bytes.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2D || c == 0x5F || c == 0x2E || c == 0x3A
        }
        return plain ? value : nil
    }
}
