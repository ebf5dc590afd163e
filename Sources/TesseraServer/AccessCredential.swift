import HTTPTypes
import Hummingbird

/// The access token a request presents, and how: an `Authorization: Bearer` header wins,
/// otherwise the `__Host-tessera_at` cookie. Every authenticated route (and forward-auth) reads
/// the token here only, so the CSRF rule, which applies to cookies alone, knows which one it was.
enum AccessCredential: Sendable, Equatable {
    case bearer(String)
    case cookie(String)

    init?(_ headers: HTTPFields) {
        if let header = headers.value(of: .authorization), let token = Self.bearerToken(header) {
            self = .bearer(token)
        } else if let token = SessionCookies.value(of: SessionCookies.accessName, in: headers) {
            self = .cookie(token)
        } else {
            return nil
        }
    }

    var token: String {
        switch self {
        case .bearer(let token), .cookie(let token): token
        }
    }

    var isCookie: Bool {
        if case .cookie = self { true } else { false }
    }

    /// `Bearer <token>` with the scheme in any case and optional whitespace around the token,
    /// parsed on the header's bytes in place (this runs on every authenticated request).
    static func bearerToken(_ header: String) -> String? {
        var header = header
        return header.withUTF8 { bytes -> String? in
            let scheme: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0x62, 0x65, 0x61, 0x72, 0x65, 0x72)  // "bearer"
            guard bytes.count > 7,
                bytes[0] | 0x20 == scheme.0, bytes[1] | 0x20 == scheme.1, bytes[2] | 0x20 == scheme.2,
                bytes[3] | 0x20 == scheme.3, bytes[4] | 0x20 == scheme.4, bytes[5] | 0x20 == scheme.5,
                HTTPBytes.isSpace(bytes[6])
            else { return nil }
            var start = 7
            var end = bytes.count
            while start < end, HTTPBytes.isSpace(bytes[start]) { start += 1 }
            while end > start, HTTPBytes.isSpace(bytes[end - 1]) { end -= 1 }
            guard start < end else { return nil }
            return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
        }
    }
}

extension Request {
    /// The token of an `Authorization: Bearer` header, and nothing else: the admin, service and
    /// metrics keys are never read from a cookie.
    var bearerToken: String? {
        headers.value(of: .authorization).flatMap(AccessCredential.bearerToken)
    }
}
