import HTTPTypes
import Tessera

/// Cookie mode (docs/BROWSER.md): the tokens travel in `HttpOnly` cookies that page scripts
/// cannot read. The `__Host-` and `__Secure-` prefixes make browsers refuse these names unless
/// they come with `Secure` (and, for `__Host-`, `Path=/` and no `Domain`), so a sibling
/// subdomain cannot plant or shadow them.
enum SessionCookies {
    static let accessName = "__Host-tessera_at"
    static let refreshName = "__Secure-tessera_rt"
    /// The refresh cookie goes to this path only: no other request carries it.
    static let refreshPath = "/v1/auth/refresh"

    /// The two `Set-Cookie` fields that hand a grant to the browser.
    static func setting(_ grant: TokenGrant) -> [HTTPField] {
        [
            cookie(accessName, grant.accessToken, maxAge: grant.accessExpiresIn, path: "/", sameSite: "Lax"),
            cookie(refreshName, grant.refreshToken, maxAge: grant.refreshExpiresIn, path: refreshPath, sameSite: "Strict"),
        ]
    }

    /// The two `Set-Cookie` fields that delete both cookies (sent on every answer that ends a session).
    static var clearing: [HTTPField] {
        [
            cookie(accessName, "", maxAge: 0, path: "/", sameSite: "Lax"),
            cookie(refreshName, "", maxAge: 0, path: refreshPath, sameSite: "Strict"),
        ]
    }

    private static func cookie(_ name: String, _ value: String, maxAge: Int, path: String, sameSite: String) -> HTTPField {
        HTTPField(name: .setCookie, value: "\(name)=\(value); Max-Age=\(max(0, maxAge)); Path=\(path); Secure; HttpOnly; SameSite=\(sameSite)")
    }

    /// The first non-empty value of the cookie `name` in the request's `Cookie` fields.
    static func value(of name: String, in headers: HTTPFields) -> String? {
        for field in headers[values: .cookie] {
            for pair in field.utf8.split(separator: UInt8(ascii: ";")) {
                let pair = HTTPBytes.trimmed(pair)
                guard let equals = pair.firstIndex(of: UInt8(ascii: "=")),
                    pair[..<equals].elementsEqual(name.utf8)
                else { continue }
                let value = pair[pair.index(after: equals)...]
                if !value.isEmpty { return String(Substring(value)) }
            }
        }
        return nil
    }
}
