import HTTPTypes
import Hummingbird

/// The browser-facing rules (docs/BROWSER.md): which other origins may call Tessera with
/// credentials (CORS), and the CSRF check on cookie-authenticated requests.
struct BrowserPolicy: Sendable {
    let corsOrigins: Set<WebOrigin>

    init(corsOrigins: [WebOrigin]) {
        self.corsOrigins = Set(corsOrigins)
    }

    /// The `Origin` of a request when it is one of `--cors-origins`.
    func allowedCORSOrigin(_ headers: HTTPFields) -> String? {
        guard !corsOrigins.isEmpty, let header = headers[.origin], let origin = WebOrigin(header: header[...]),
            corsOrigins.contains(origin)
        else { return nil }
        return header
    }

    /// A cookie rides along with every request the browser makes to Tessera, whichever page
    /// starts it, so a state-changing request authenticated by one must show that it comes from
    /// an allowed page: its `Origin` (or, without one, its `Referer`) is one of `--cors-origins`
    /// or Tessera's own origin. Safe methods change nothing and pass.
    func verifyRequestOrigin(_ request: Request) throws {
        switch request.method {
        case .get, .head, .options: return
        default: break
        }
        let presented: WebOrigin? =
            if let origin = request.headers[.origin] {
                WebOrigin(header: origin[...])  // "null" (sandboxed frames, some redirects) is refused
            } else if let referer = request.headers[.referer] {
                WebOrigin(referer: referer)
            } else {
                nil
            }
        guard let presented, corsOrigins.contains(presented) || presented == Self.ownOrigin(of: request) else {
            throw APIError(
                .forbidden, code: "csrf_failed",
                detail: "A cookie-authenticated request must come from an allowed origin (Origin or Referer)."
            )
        }
    }

    /// The scheme this request was served on (plain HTTP unless Tessera terminates TLS) with its
    /// `Host` (HTTP/1's `Host` header arrives as the request's authority).
    static func ownOrigin(of request: Request) -> WebOrigin? {
        WebOrigin(scheme: request.head.scheme, authority: request.head.authority)
    }
}
