import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// Strict JSON in and out. Syntax errors are 400 `malformed_json`; a well-formed body with
/// missing or mistyped fields is 422 `invalid_request` naming the field.
enum JSONBody {
    static let maxSize = 64 * 1024

    static func decode<T: Decodable>(_ type: T.Type, from request: Request) async throws -> T {
        try requireJSONContentType(request)
        let buffer = try await request.body.collect(upTo: maxSize)
        return try decodeValue(type, from: Data(buffer.readableBytesView))
    }

    /// nil for an empty body (whatever its type); otherwise as `decode`.
    static func decodeIfPresent<T: Decodable>(_ type: T.Type, from request: Request) async throws -> T? {
        let buffer = try await request.body.collect(upTo: maxSize)
        guard buffer.readableBytes > 0 else { return nil }
        try requireJSONContentType(request)
        return try decodeValue(type, from: Data(buffer.readableBytesView))
    }

    /// A cross-site HTML form can only send `application/x-www-form-urlencoded`,
    /// `multipart/form-data` or `text/plain` without a CORS preflight; refusing every type but
    /// JSON closes that path to the JSON endpoints.
    static func requireJSONContentType(_ request: Request) throws {
        guard let type = request.headers[.contentType], isJSON(type) else {
            throw APIError(.unsupportedMediaType, code: "unsupported_media_type", detail: "The request body must be sent as Content-Type: application/json.")
        }
    }

    /// `application/json`, in any case, with or without parameters such as `charset`.
    static func isJSON(_ contentType: String) -> Bool {
        let mediaType = HTTPBytes.trimmed(Substring(contentType).utf8.prefix { $0 != UInt8(ascii: ";") })
        return mediaType.count == 16 && zip(mediaType, "application/json".utf8).allSatisfy { $0 | 0x20 == $1 | 0x20 }
    }

    /// The same checks on a body already read, in one parse: the decoder's own errors tell a
    /// body that is not a JSON object (400) from an object with a wrong field (422).
    static func decodeValue<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        do {
            return try decoder.decode(T.self, from: data)
        } catch DecodingError.keyNotFound(let key, let context) {
            throw APIError.invalidRequest("missing field '\(path(context.codingPath + [key]))'")
        } catch DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context),
            DecodingError.dataCorrupted(let context)
        {
            // At the top: not JSON at all, or JSON but not an object (array, string, null).
            guard !context.codingPath.isEmpty else { throw notAnObject }
            throw APIError.invalidRequest("field '\(path(context.codingPath))' has the wrong type")
        } catch {
            throw notAnObject
        }
    }

    private static var notAnObject: APIError {
        APIError(.badRequest, code: "malformed_json", detail: "The request body must be a JSON object.")
    }

    // Shared: JSONDecoder and JSONEncoder are safe to use from concurrent requests, and
    // building one per request showed in the profile.
    private static let decoder = JSONDecoder()
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    /// The bodies of the token routes, written without `JSONEncoder` (same bytes).
    static func response(_ value: some JSONObjectWritable, status: HTTPResponse.Status = .ok) -> Response {
        var writer = JSONObjectWriter()
        value.write(to: &writer)
        return Response(
            status: status, headers: [.contentType: "application/json", .cacheControl: "no-store"], body: .init(byteBuffer: writer.finished())
        )
    }

    static func response(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        let data = try encoder.encode(value)
        return Response(
            status: status, headers: [.contentType: "application/json", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(bytes: data))
        )
    }

    private static func path(_ codingPath: [any CodingKey]) -> String {
        codingPath.map(\.stringValue).joined(separator: ".")
    }
}
