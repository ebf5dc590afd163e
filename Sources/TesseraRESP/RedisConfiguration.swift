/// Where and how to connect, plus pool and timeout settings.
///
/// Usually built from a URL, `redis://[user[:password]@]host[:port][/db]` or `rediss://...` for
/// TLS. Error messages and `description` never contain the password, so a configuration can be
/// logged.
public struct RedisConfiguration: Sendable {
    public struct TLS: Sendable, Hashable {
        /// PEM file with the CA certificates to trust; nil uses the system trust store.
        public var caFilePath: String?
        /// Name checked against the server certificate and sent as SNI; defaults to the host.
        public var serverName: String?

        public init(caFilePath: String? = nil, serverName: String? = nil) {
            self.caFilePath = caFilePath
            self.serverName = serverName
        }
    }

    public enum ProtocolVersion: Int, Sendable, Hashable {
        /// Old protocol: no HELLO, AUTH and SELECT only. Maps arrive as flat arrays.
        case resp2 = 2
        /// HELLO 3 first, falling back to RESP2 when the server does not know HELLO.
        case resp3 = 3
    }

    public var host: String
    public var port: Int
    public var username: String?
    public var password: String?
    public var database: Int
    public var tls: TLS?
    public var clientName: String?
    public var protocolVersion: ProtocolVersion

    /// Most connections the pool opens at once.
    public var maximumConnections: Int
    /// Commands in flight on one shared connection before the pool brings in another (up to
    /// `maximumConnections`). Single commands and pipelines share connections; leased ones
    /// (`withConnection`) have a connection to themselves.
    public var commandsPerConnection: Int
    /// Connections the pool keeps open once it has been used, reopened in the background when
    /// they are lost, so a command after a quiet spell does not pay for a connect.
    public var minimumConnections: Int
    /// How often unused connections are checked with `PING` (a connection dropped by a
    /// firewall or a restarted server is found before a command needs it) and the minimum is
    /// topped up; nil: never.
    public var keepAliveInterval: Duration?
    /// How long a command waits for a free pooled connection.
    public var acquireTimeout: Duration
    /// How long a command waits for its reply before the connection is dropped.
    public var commandTimeout: Duration
    /// How long opening a TCP connection (plus TLS and handshake) may take.
    public var connectTimeout: Duration
    /// First delay before retrying after a failed connect; doubles per failure up to the maximum.
    public var reconnectBaseDelay: Duration
    public var reconnectMaximumDelay: Duration
    public var decoderLimits: RESPDecoderLimits
    /// When true every new connection asks `ROLE` and is refused with `.readOnly` unless the
    /// node is a primary: how a client that was told where the primary is (by Sentinels)
    /// avoids writing to a node that has been demoted since.
    public var requiresPrimary: Bool

    public init(
        host: String = "127.0.0.1",
        port: Int = 6379,
        username: String? = nil,
        password: String? = nil,
        database: Int = 0,
        tls: TLS? = nil
    ) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.tls = tls
        self.clientName = nil
        self.protocolVersion = .resp3
        self.maximumConnections = 8
        self.commandsPerConnection = 32
        self.minimumConnections = 1
        self.keepAliveInterval = .seconds(30)
        self.acquireTimeout = .seconds(5)
        self.commandTimeout = .seconds(5)
        self.connectTimeout = .seconds(5)
        self.reconnectBaseDelay = .milliseconds(100)
        self.reconnectMaximumDelay = .seconds(5)
        self.decoderLimits = RESPDecoderLimits()
        self.requiresPrimary = false
    }

    /// Parses a `redis://` or `rediss://` URL. Percent-escapes are decoded in the user name,
    /// password and host. Query items: `ca_file` (rediss only), `protocol` (2 or 3), `client_name`.
    public init(url: String) throws(RedisError) {
        self.init()
        let rest: Substring
        if url.hasPrefix("redis://") {
            rest = url.dropFirst("redis://".count)
        } else if url.hasPrefix("rediss://") {
            rest = url.dropFirst("rediss://".count)
            self.tls = TLS()
        } else {
            throw .invalidConfiguration("Redis URL must start with redis:// or rediss://")
        }
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        var authority = rest[..<authorityEnd]
        var tail = rest[authorityEnd...]

        // The last '@' separates credentials: a raw '@' in a password is tolerated that way.
        if let at = authority.lastIndex(of: "@") {
            let userInfo = authority[..<at]
            authority = authority[authority.index(after: at)...]
            if let colon = userInfo.firstIndex(of: ":") {
                let user = try Self.percentDecode(userInfo[..<colon], what: "user name")
                self.username = user.isEmpty ? nil : user
                self.password = try Self.percentDecode(userInfo[userInfo.index(after: colon)...], what: "password")
            } else if !userInfo.isEmpty {
                // redis://secret@host is what many tools write for a password-only URL.
                self.password = try Self.percentDecode(userInfo, what: "password")
            }
        }

        // Host: bracketed IPv6 literal or a name, then an optional :port.
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else {
                throw .invalidConfiguration("unterminated IPv6 address in Redis URL")
            }
            self.host = String(authority[authority.index(after: authority.startIndex)..<close])
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw .invalidConfiguration("unexpected text after IPv6 address") }
                portText = after.dropFirst()
            }
        } else if let colon = authority.lastIndex(of: ":") {
            self.host = try Self.percentDecode(authority[..<colon], what: "host")
            portText = authority[authority.index(after: colon)...]
        } else {
            self.host = try Self.percentDecode(authority, what: "host")
        }
        guard !self.host.isEmpty else { throw .invalidConfiguration("Redis URL has no host") }
        guard !self.host.contains(where: { $0 == "@" || $0 == " " || $0 == ":" && !authority.hasPrefix("[") }) else {
            throw .invalidConfiguration("invalid host in Redis URL")
        }
        if let portText {
            guard let port = Int(portText), (1...65535).contains(port) else {
                throw .invalidConfiguration("invalid port '\(portText.prefix(16))' in Redis URL")
            }
            self.port = port
        }

        if let fragment = tail.firstIndex(of: "#") { tail = tail[..<fragment] }
        var path = tail
        var query: Substring = ""
        if let q = tail.firstIndex(of: "?") {
            path = tail[..<q]
            query = tail[tail.index(after: q)...]
        }
        if path.hasPrefix("/") { path = path.dropFirst() }
        if !path.isEmpty {
            guard let db = Int(path), db >= 0 else {
                throw .invalidConfiguration("invalid database '\(path.prefix(16))' in Redis URL (expected /0, /1, ...)")
            }
            self.database = db
        }
        for item in query.split(separator: "&") where !item.isEmpty {
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = String(parts[0])
            let value = parts.count > 1 ? try Self.percentDecode(parts[1], what: key) : ""
            switch key {
            case "ca_file":
                guard self.tls != nil else { throw .invalidConfiguration("ca_file needs a rediss:// URL") }
                self.tls?.caFilePath = value
            case "protocol":
                guard let v = Int(value), let version = ProtocolVersion(rawValue: v) else {
                    throw .invalidConfiguration("protocol must be 2 or 3")
                }
                self.protocolVersion = version
            case "client_name":
                self.clientName = value
            default:
                throw .invalidConfiguration("unknown Redis URL parameter '\(key.prefix(32))'")
            }
        }
    }

    private static func percentDecode(_ text: Substring, what: String) throws(RedisError) -> String {
        guard text.contains("%") else { return String(text) }
        var bytes: [UInt8] = []
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(Self.hexValue), let low = iterator.next().flatMap(Self.hexValue) else {
                // Deliberately does not quote the text: it may be a password.
                throw .invalidConfiguration("invalid percent-encoding in the \(what) of the Redis URL")
            }
            bytes.append(high << 4 | low)
        }
        guard let decoded = String(validating: bytes, as: UTF8.self) else {
            throw .invalidConfiguration("the \(what) of the Redis URL is not valid UTF-8 once decoded")
        }
        return decoded
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

extension RedisConfiguration: CustomStringConvertible {
    /// The URL with the password masked: safe for logs.
    public var description: String {
        var s = self.tls == nil ? "redis://" : "rediss://"
        if self.username != nil || self.password != nil {
            s += self.username ?? ""
            if self.password != nil { s += ":***" }
            s += "@"
        }
        s += self.host.contains(":") ? "[\(self.host)]" : self.host
        s += ":\(self.port)/\(self.database)"
        return s
    }
}
