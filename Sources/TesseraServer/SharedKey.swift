import Crypto
import Foundation
import HTTPTypes
import Hummingbird

/// A long-lived key shared with operators or services (`--admin-key`, `--service-key`).
///
/// Compared as SHA-256 digests in constant time, so neither the key's length nor a matching
/// prefix leaks through timing. The key itself is never logged or echoed.
struct SharedKey: Sendable {
    private let digest: SHA256.Digest

    init(_ key: String) { digest = SHA256.hash(data: Data(key.utf8)) }

    func matches(_ presented: String) -> Bool { SHA256.hash(data: Data(presented.utf8)) == digest }

    /// `Authorization: Bearer <key>`, or HTTP Basic with the key as the password (any user
    /// name), which is how RFC 7662/7009 clients usually send their credentials.
    func authorizes(_ request: Request) -> Bool {
        if let bearer = request.bearerToken { return matches(bearer) }
        if let password = request.basicPassword { return matches(password) }
        return false
    }
}

extension Request {
    /// The password of an `Authorization: Basic <base64(user:password)>` header.
    var basicPassword: String? {
        guard let header = headers[.authorization] else { return nil }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "basic",
            let decoded = Data(base64Encoded: String(parts[1])), let text = String(data: decoded, encoding: .utf8),
            let colon = text.firstIndex(of: ":")
        else { return nil }
        return String(text[text.index(after: colon)...])
    }
}
