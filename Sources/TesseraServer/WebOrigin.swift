/// A web origin, `scheme://host[:port]`, in the form browsers send in `Origin`: lower case,
/// no default port, no path.
public struct WebOrigin: Hashable, Sendable, CustomStringConvertible {
    public let serialized: String

    public var description: String { serialized }

    /// Accepts exactly `http(s)://host[:port]` (a trailing `/` is tolerated) and nothing else,
    /// so that a typo in `--cors-origins` can stop start-up instead of silently allowing nothing.
    public init?(configured text: String) {
        guard let origin = Self.normalized(text, strict: true) else { return nil }
        serialized = origin
    }

    init?(header text: Substring) {
        guard let origin = Self.normalized(String(text), strict: false) else { return nil }
        serialized = origin
    }

    /// Tessera's own origin for a request: the scheme it is served on and its `Host`.
    init?(scheme: String?, authority: String?) {
        guard let authority, !authority.isEmpty else { return nil }
        self.init(header: "\(scheme ?? "http")://\(authority)")
    }

    /// The origin of a `Referer` URL (its scheme, host and port).
    init?(referer: String) {
        guard let schemeEnd = referer.firstRange(of: "://") else { return nil }
        let rest = referer[schemeEnd.upperBound...]
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
        self.init(header: referer[..<authorityEnd])
    }

    /// `strict`: configuration text (no userinfo, path, query or fragment; a trailing `/` allowed).
    private static func normalized(_ text: String, strict: Bool) -> String? {
        var text = Substring(text.lowercased())
        if strict, text.hasSuffix("/") { text = text.dropLast() }
        let scheme: String
        if text.hasPrefix("https://") {
            scheme = "https"
        } else if text.hasPrefix("http://") {
            scheme = "http"
        } else {
            return nil
        }
        var authority = text.dropFirst(scheme.count + 3)
        guard !authority.isEmpty, !authority.contains(where: { "/?#@ \\".contains($0) }) else { return nil }
        // host[:port], where host may be a bracketed IPv6 literal.
        let portSeparator = authority.lastIndex(of: ":").flatMap { colon in
            authority[colon...].contains("]") ? nil : colon
        }
        if let portSeparator {
            let port = authority[authority.index(after: portSeparator)...]
            guard let number = Int(port), (1...65535).contains(number), String(number) == port else { return nil }
            if (scheme == "http" && number == 80) || (scheme == "https" && number == 443) {
                authority = authority[..<portSeparator]
            }
        }
        guard let first = authority.first, first != ":" else { return nil }
        return "\(scheme)://\(authority)"
    }
}
