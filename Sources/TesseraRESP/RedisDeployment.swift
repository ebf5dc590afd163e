import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// How Redis is deployed, read from the URL given to Tessera:
///
/// - `redis://` / `rediss://`: one server (see `RedisConfiguration(url:)`).
/// - `redis-cluster://[user:password@]host:port[,host:port…][?…]` (`rediss-cluster://` for TLS):
///   seed nodes of a Redis Cluster; the slot map is read from whichever answers.
/// - `redis-sentinel://[user:password@]host:port[,host:port…][/db][?…]#<master name>`
///   (`rediss-sentinel://` for TLS): Sentinels to ask for the primary named after `#`.
///   The credentials, database and TLS settings are the primary's; Sentinels are asked without
///   credentials unless the query gives `sentinel_password` (and `sentinel_user`).
public enum RedisDeployment: Sendable {
    case standalone(RedisConfiguration)
    case cluster(RedisConfiguration, seeds: [RedisNodeAddress])
    case sentinel(RedisConfiguration, sentinels: [RedisNodeAddress], masterName: String, sentinelUser: String?, sentinelPassword: String?)

    public static let defaultSentinelPort = 26379

    /// The settings every node connection uses.
    public var configuration: RedisConfiguration {
        get {
            switch self {
            case .standalone(let configuration), .cluster(let configuration, _), .sentinel(let configuration, _, _, _, _): configuration
            }
        }
        set {
            switch self {
            case .standalone: self = .standalone(newValue)
            case .cluster(_, let seeds): self = .cluster(newValue, seeds: seeds)
            case .sentinel(_, let sentinels, let name, let user, let password):
                self = .sentinel(newValue, sentinels: sentinels, masterName: name, sentinelUser: user, sentinelPassword: password)
            }
        }
    }

    public init(url: String) throws(RedisError) {
        let schemes: [(String, kind: Int, tls: Bool)] = [
            ("redis-cluster://", 1, false), ("rediss-cluster://", 1, true), ("redis-sentinel://", 2, false), ("rediss-sentinel://", 2, true),
        ]
        guard let match = schemes.first(where: { url.hasPrefix($0.0) }) else {
            self = .standalone(try RedisConfiguration(url: url))
            return
        }
        let (scheme, kind, tls) = match
        let rest = url.dropFirst(scheme.count)
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        var tail = String(rest[authorityEnd...])
        var userInfo: Substring = ""
        var hostList = authority
        if let at = authority.lastIndex(of: "@") {
            userInfo = authority[...at]
            hostList = authority[authority.index(after: at)...]
        }
        var fragment: Substring?
        if let hash = tail.firstIndex(of: "#") {
            fragment = tail[tail.index(after: hash)...]
            tail = String(tail[..<hash])
        }
        // Sentinel-only query items are taken out before the rest is parsed as a node URL.
        var sentinelUser: String?
        var sentinelPassword: String?
        if kind == 2, let q = tail.firstIndex(of: "?") {
            var kept: [Substring] = []
            for item in tail[tail.index(after: q)...].split(separator: "&") {
                if item.hasPrefix("sentinel_password=") {
                    sentinelPassword = try Self.decoded(item.dropFirst("sentinel_password=".count))
                } else if item.hasPrefix("sentinel_user=") {
                    sentinelUser = try Self.decoded(item.dropFirst("sentinel_user=".count))
                } else {
                    kept.append(item)
                }
            }
            tail = String(tail[..<q]) + (kept.isEmpty ? "" : "?" + kept.joined(separator: "&"))
        }
        let hosts = hostList.split(separator: ",", omittingEmptySubsequences: false)
        guard !hosts.isEmpty, hosts.allSatisfy({ !$0.isEmpty }) else { throw .invalidConfiguration("Redis URL has an empty host in its list") }
        let nodeScheme = tls ? "rediss://" : "redis://"
        var configuration = try RedisConfiguration(url: nodeScheme + String(userInfo) + String(hosts[0]) + tail)
        var addresses: [RedisNodeAddress] = []
        for host in hosts {
            let node = try RedisConfiguration(url: "redis://" + String(host))
            let hasPort = host.hasPrefix("[") ? host.contains("]:") : host.contains(":")
            let port = hasPort ? node.port : (kind == 2 ? Self.defaultSentinelPort : node.port)
            addresses.append(RedisNodeAddress(host: node.host, port: port))
        }
        if kind == 1 {
            guard configuration.database == 0 else { throw .invalidConfiguration("a Redis Cluster has only database 0") }
            guard fragment == nil else { throw .invalidConfiguration("a redis-cluster:// URL takes no #fragment") }
            self = .cluster(configuration, seeds: addresses)
        } else {
            guard let fragment, !fragment.isEmpty else {
                throw .invalidConfiguration("a redis-sentinel:// URL names the primary after '#' (e.g. #mymaster)")
            }
            // The first host is a Sentinel, not the primary: the primary's address is found later.
            configuration.host = addresses[0].host
            configuration.port = addresses[0].port
            self = .sentinel(
                configuration, sentinels: addresses, masterName: try Self.decoded(fragment), sentinelUser: sentinelUser,
                sentinelPassword: sentinelPassword
            )
        }
    }

    private static func decoded(_ text: Substring) throws(RedisError) -> String {
        // Reuses the URL parser's percent-decoding through a throwaway client_name item.
        try RedisConfiguration(url: "redis://h?client_name=" + String(text)).clientName ?? ""
    }
}

extension RedisDeployment: CustomStringConvertible {
    /// Safe for logs: passwords masked.
    public var description: String {
        switch self {
        case .standalone(let configuration):
            return configuration.description
        case .cluster(let configuration, let seeds):
            return "\(configuration.tls == nil ? "redis" : "rediss")-cluster://\(Self.userPart(configuration))"
                + seeds.map(\.description).joined(separator: ",")
        case .sentinel(let configuration, let sentinels, let name, _, _):
            return "\(configuration.tls == nil ? "redis" : "rediss")-sentinel://\(Self.userPart(configuration))"
                + sentinels.map(\.description).joined(separator: ",") + "/\(configuration.database)#\(name)"
        }
    }

    private static func userPart(_ configuration: RedisConfiguration) -> String {
        guard configuration.username != nil || configuration.password != nil else { return "" }
        return (configuration.username ?? "") + (configuration.password == nil ? "" : ":***") + "@"
    }
}

extension RedisDeployment {
    /// The client for this deployment; run it as a service (or call `shutdown()`).
    public func makeClient(
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger = Logger(label: "TesseraRESP")
    ) -> any RedisCommandExecutor & Service {
        switch self {
        case .standalone(let configuration):
            return RedisClient(configuration: configuration, eventLoopGroup: eventLoopGroup, logger: logger)
        case .cluster(let configuration, let seeds):
            return RedisClusterClient(configuration: configuration, seeds: seeds, eventLoopGroup: eventLoopGroup, logger: logger)
        case .sentinel(let configuration, let sentinels, let name, let user, let password):
            return RedisSentinelClient(
                configuration: configuration, sentinels: sentinels, masterName: name, sentinelUser: user, sentinelPassword: password,
                eventLoopGroup: eventLoopGroup, logger: logger
            )
        }
    }
}
