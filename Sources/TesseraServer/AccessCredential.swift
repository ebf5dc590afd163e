import HTTPTypes
import Hummingbird

/// The access token a request presents, and how: an `Authorization: Bearer` header wins,
/// otherwise the `__Host-tessera_at` cookie. Every authenticated route (and forward-auth) reads
/// the token here only, so the CSRF rule, which applies to cookies alone, knows which one it was.
enum AccessCredential: Sendable, Equatable {
    case bearer(String)
    case cookie(String)

    init?(_ headers: HTTPFields) {
        if let header = headers[.authorization], let token = Self.bearerToken(header.utf8) {
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
    /// parsed on bytes (this runs on every authenticated request).
    static func bearerToken(_ header: String.UTF8View) -> String? {
        let scheme = "bearer".utf8
        guard header.count > scheme.count,
            zip(header, scheme).allSatisfy({ $0 | 0x20 == $1 }),
            header.dropFirst(scheme.count).first.map(HTTPBytes.isSpace) == true
        else { return nil }
        let token = HTTPBytes.trimmed(header.dropFirst(scheme.count))
        return token.isEmpty ? nil : String(Substring(token))
    }
}

extension Request {
    /// The token of an `Authorization: Bearer` header, and nothing else: the admin, service and
    /// metrics keys are never read from a cookie.
    var bearerToken: String? {
        headers[.authorization].flatMap { AccessCredential.bearerToken($0.utf8) }
    }
}
