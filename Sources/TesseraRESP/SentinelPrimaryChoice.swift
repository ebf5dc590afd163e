/// Which node is the primary when the Sentinels do not all say the same.
///
/// Right after a failover a Sentinel that has not heard of it yet still names the old primary,
/// and that node keeps answering `ROLE master` (and taking writes that the switch will throw
/// away) until a Sentinel reconfigures it, which can take seconds. So the first Sentinel's
/// answer, even checked with `ROLE`, can be the wrong one. Every failover raises the master's
/// `config-epoch`: the answer with the highest epoch is the newest. Among equal epochs the
/// address named by more Sentinels wins, then the first one heard.
public struct SentinelPrimaryChoice: Sendable, Hashable {
    /// One Sentinel's answer to `SENTINEL master <name>`.
    public struct Report: Sendable, Hashable {
        public var address: RedisNodeAddress
        public var configEpoch: Int

        public init(address: RedisNodeAddress, configEpoch: Int) {
            self.address = address
            self.configEpoch = configEpoch
        }

        /// Reads `ip`, `port` and `config-epoch` from the reply (a RESP3 map or RESP2's flat
        /// field/value array); nil when one is missing or not a number.
        public init?(sentinelMaster reply: RESPValue) {
            guard let fields = reply.stringMap, let host = fields["ip"]?.string, !host.isEmpty,
                let port = fields["port"]?.string.flatMap({ Int($0) }), (1...65535).contains(port),
                let epoch = fields["config-epoch"]?.string.flatMap({ Int($0) })
            else { return nil }
            self.init(address: RedisNodeAddress(host: host, port: port), configEpoch: epoch)
        }
    }

    public private(set) var reports: [Report] = []

    public init(_ reports: [Report] = []) { self.reports = reports }

    public mutating func add(_ report: Report) { self.reports.append(report) }

    /// The newest primary the reports name, nil when there are none.
    public var primary: RedisNodeAddress? {
        guard let newest = self.reports.map(\.configEpoch).max() else { return nil }
        var counts: [RedisNodeAddress: Int] = [:]
        var order: [RedisNodeAddress] = []
        for report in self.reports where report.configEpoch == newest {
            if counts[report.address] == nil { order.append(report.address) }
            counts[report.address, default: 0] += 1
        }
        guard var best = order.first else { return nil }
        for address in order.dropFirst() where counts[address, default: 0] > counts[best, default: 0] { best = address }
        return best
    }

    /// The highest epoch reported.
    public var configEpoch: Int? { self.reports.map(\.configEpoch).max() }
}
