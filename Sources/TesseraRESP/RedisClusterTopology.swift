/// Where a Redis node listens.
public struct RedisNodeAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port` (the last colon splits, so an IPv6 literal survives); an empty host
    /// means "the node that said it", `fallbackHost`.
    init?(_ text: Substring, fallbackHost: String) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port) else {
            return nil
        }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        self.init(host: host.isEmpty ? fallbackHost : host, port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

extension RedisConfiguration {
    /// The same settings for the node at `address`.
    public func at(_ address: RedisNodeAddress) -> RedisConfiguration {
        var configuration = self
        configuration.host = address.host
        configuration.port = address.port
        return configuration
    }
}

/// Which primary serves each of the 16384 slots, and the replicas of each primary, as
/// `CLUSTER SLOTS` reported it (patched by `MOVED` redirections in between).
public struct RedisClusterSlotMap: Sendable, Hashable {
    public struct Shard: Sendable, Hashable {
        public var primary: RedisNodeAddress
        public var replicas: [RedisNodeAddress]
    }

    public private(set) var shards: [Shard] = []
    /// Index into `shards` per slot; -1 for a slot no node serves.
    private var owners = [Int16](repeating: -1, count: RedisKeySlot.count)

    public init() {}

    public func primary(forSlot slot: Int) -> RedisNodeAddress? {
        let owner = owners[slot]
        return owner < 0 ? nil : shards[Int(owner)].primary
    }

    public func shard(forSlot slot: Int) -> Shard? {
        let owner = owners[slot]
        return owner < 0 ? nil : shards[Int(owner)]
    }

    /// Distinct primaries that serve at least one slot.
    public var primaries: [RedisNodeAddress] {
        var seen = Set<Int16>()
        var result: [RedisNodeAddress] = []
        for owner in owners where owner >= 0 && seen.insert(owner).inserted {
            result.append(shards[Int(owner)].primary)
        }
        return result
    }

    /// Every node known, primaries first: where to ask for a fresh map.
    public var allNodes: [RedisNodeAddress] { primaries + shards.flatMap(\.replicas) }

    public var coveredSlots: Int { owners.reduce(0) { $0 + ($1 >= 0 ? 1 : 0) } }

    /// A `MOVED` answer: `slot` is now served by `primary`.
    public mutating func assign(slot: Int, to primary: RedisNodeAddress) {
        if let index = shards.firstIndex(where: { $0.primary == primary }) {
            owners[slot] = Int16(index)
        } else {
            shards.append(Shard(primary: primary, replicas: []))
            owners[slot] = Int16(shards.count - 1)
        }
    }

    /// Reads a `CLUSTER SLOTS` reply: `[[start, end, [host, port, id, …], replica…], …]`.
    /// An empty host means the node that answered (`answeredBy`).
    public init?(clusterSlots reply: RESPValue, answeredBy: RedisNodeAddress) {
        guard let ranges = reply.array else { return nil }
        func address(_ value: RESPValue) -> RedisNodeAddress? {
            guard let parts = value.array, parts.count >= 2, let host = parts[0].string, let port = parts[1].int else { return nil }
            return RedisNodeAddress(host: host.isEmpty || host == "?" ? answeredBy.host : host, port: port)
        }
        for range in ranges {
            guard let parts = range.array, parts.count >= 3, let start = parts[0].int, let end = parts[1].int,
                0 <= start, start <= end, end < RedisKeySlot.count, let primary = address(parts[2])
            else { return nil }
            let shard = Shard(primary: primary, replicas: parts.dropFirst(3).compactMap(address))
            let index: Int
            if let existing = shards.firstIndex(where: { $0.primary == primary }) {
                index = existing
                for replica in shard.replicas where !shards[index].replicas.contains(replica) { shards[index].replicas.append(replica) }
            } else {
                shards.append(shard)
                index = shards.count - 1
            }
            for slot in start...end { owners[slot] = Int16(index) }
        }
    }
}

/// What a server error means to a client of a cluster (or of a failing-over primary),
/// recognised from the error code the server sent.
public enum RedisTopologyError: Sendable, Hashable {
    /// The slot lives elsewhere for good: update the map, retry there.
    case moved(slot: Int, to: RedisNodeAddress)
    /// The slot is being migrated and this key already went: retry there once, after ASKING.
    case ask(slot: Int, to: RedisNodeAddress)
    /// A multi-key command during a migration, or the cluster cannot serve the slot for now.
    case tryAgain
    case clusterDown
    /// A write reached a replica: the node was demoted; find the primary again.
    case readOnly
    /// The server is loading its dataset (a restarted or freshly promoted node).
    case loading

    public init?(_ error: RedisError, answeredBy node: RedisNodeAddress) {
        switch error {
        case .readOnly: self = .readOnly
        case .loading: self = .loading
        case .server(let code, let message):
            switch code {
            case "MOVED", "ASK":
                let parts = message.split(separator: " ")
                guard parts.count == 2, let slot = Int(parts[0]), (0..<RedisKeySlot.count).contains(slot),
                    let address = RedisNodeAddress(parts[1], fallbackHost: node.host)
                else { return nil }
                self = code == "MOVED" ? .moved(slot: slot, to: address) : .ask(slot: slot, to: address)
            case "TRYAGAIN": self = .tryAgain
            case "CLUSTERDOWN": self = .clusterDown
            case "MASTERDOWN": self = .clusterDown
            default: return nil
            }
        default:
            return nil
        }
    }
}
