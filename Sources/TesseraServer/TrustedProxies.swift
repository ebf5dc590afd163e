import HTTPTypes

/// The proxies whose `X-Forwarded-For` / `Forwarded` headers are believed (`--trusted-proxies`).
///
/// The client is the right-most hop that is not a trusted proxy: every hop to its right was
/// appended by a proxy we trust, everything to its left was written by the client and may be
/// forged. From an untrusted peer the headers are ignored.
public struct TrustedProxies: Sendable, Equatable {
    public var networks: [IPNetwork]

    public static let none = TrustedProxies(networks: [])

    public init(networks: [IPNetwork]) {
        self.networks = networks
    }

    /// A list separated by commas and/or spaces, e.g. `10.0.0.0/8, fd00::/8, 127.0.0.1`.
    /// Empty text trusts nobody.
    public init(parsing text: String) throws(IPNetwork.ParseError) {
        var networks: [IPNetwork] = []
        for item in text.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\t" }) {
            networks.append(try IPNetwork(parsing: item))
        }
        self.networks = networks
    }

    public func trusts(_ address: IPAddress) -> Bool {
        networks.contains { $0.contains(address) }
    }

    /// The client's address for rate limits and session records, in canonical form.
    public func clientAddress(peer: String?, headers: HTTPFields) -> String? {
        guard let peer, let peerAddress = IPAddress(peer) else { return peer }
        guard trusts(peerAddress) else { return peerAddress.description }
        var client = peerAddress
        for hop in Self.forwardedHops(headers).reversed() {
            // A hop we cannot read ends the walk at the last proxy we trust: better that
            // proxy's address than one chosen by whoever wrote the unreadable entry.
            guard let hop else { break }
            client = hop
            if !trusts(hop) { break }
        }
        return client.description
    }

    /// The hops, client first. `X-Forwarded-For` is what nginx, Traefik and Envoy append; the
    /// RFC 7239 `Forwarded` header is read only when no `X-Forwarded-For` is present.
    static func forwardedHops(_ headers: HTTPFields) -> [IPAddress?] {
        let xff = headers[values: .xForwardedFor]
        if !xff.isEmpty {
            return xff.flatMap { $0.split(separator: ",", omittingEmptySubsequences: false) }.map { hop(String($0)) }
        }
        return headers[values: .forwarded].flatMap { $0.split(separator: ",", omittingEmptySubsequences: false) }.map { element -> IPAddress? in
            // `for=192.0.2.1;proto=https`, `For="[2001:db8::1]:4711"`; no `for` pair: unreadable.
            for pair in element.split(separator: ";") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                guard parts.count == 2, parts[0].trimmingWhitespace().lowercased() == "for" else { continue }
                var value = parts[1].trimmingWhitespace()
                if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") { value = String(value.dropFirst().dropLast()) }
                return hop(value)
            }
            return nil
        }
    }

    /// One hop: an address, `[v6]`, `[v6]:port` or `v4:port`. `unknown` and obfuscated
    /// identifiers (`_hidden`) are unreadable.
    static func hop(_ raw: String) -> IPAddress? {
        let text = raw.trimmingWhitespace()
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            let rest = text[text.index(after: close)...]
            guard rest.isEmpty || (rest.hasPrefix(":") && isPort(rest.dropFirst())) else { return nil }
            return IPAddress(text[text.index(after: text.startIndex)..<close])
        }
        if let address = IPAddress(text) { return address }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, isPort(parts[1]), let address = IPAddress(parts[0]), address.bytes.count == 4 else { return nil }
        return address
    }

    private static func isPort(_ text: Substring) -> Bool {
        !text.isEmpty && text.utf8.count <= 5 && text.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
    }
}

extension HTTPField.Name {
    static let xForwardedFor = Self("X-Forwarded-For")!
    static let forwarded = Self("Forwarded")!
}

extension StringProtocol {
    fileprivate func trimmingWhitespace() -> String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}
