import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// Strict `application/x-www-form-urlencoded` bodies (the OAuth endpoints, RFC 6749 §B). A
/// parameter given twice, bad percent-encoding or another content type is 400 `invalid_request`.
enum FormBody {
    static func decode(from request: Request) async throws -> [String: String] {
        let mediaType = request.headers[.contentType]?.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased()
        guard mediaType == "application/x-www-form-urlencoded" else {
            throw invalid("the body must be application/x-www-form-urlencoded")
        }
        let buffer = try await request.body.collect(upTo: JSONBody.maxSize)
        return try parse(String(decoding: buffer.readableBytesView, as: UTF8.self))
    }

    static func parse(_ text: String) throws -> [String: String] {
        var fields: [String: String] = [:]
        for pair in text.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = unescape(parts[0]), let value = unescape(parts.count == 2 ? parts[1] : "") else {
                throw invalid("the form body is not validly encoded")
            }
            // RFC 6749 §3.1: no parameter more than once.
            guard fields.updateValue(value, forKey: name) == nil else { throw invalid("parameter '\(name)' is given more than once") }
        }
        return fields
    }

    private static func unescape(_ text: Substring) -> String? {
        String(text).replacingOccurrences(of: "+", with: " ").removingPercentEncoding
    }

    static func invalid(_ detail: String) -> APIError {
        APIError(.badRequest, code: "invalid_request", detail: detail)
    }
}
