import TesseraRESP

/// Where the deny keys are listed, so that the revocation view reloads in time proportional to
/// the live denylist instead of SCANning the whole keyspace (a million sessions made a reload
/// take seconds, with the view untrusted meanwhile).
///
/// A sorted set, member the deny key, score its end in milliseconds, written by the scripts in
/// the same atomic step as the denial, pruned on every write and expiring with its last entry:
/// - one server (or Sentinel): one set, `<prefix>denials`, read with one command;
/// - a Redis Cluster, where a script may only touch keys of one slot: one set per slot,
///   `<prefix>{<tag>}:denials`, where `<tag>` is the smallest decimal number whose hash slot is
///   that slot; a reload reads all 16,384 sets in pipelines (each node its own slots).
///
/// Denials written before the index existed are found once by SCAN and added to it; then the
/// marker `<prefix>denials:indexed` (`…:indexed:slots` on a cluster; no TTL: maintained by this
/// type alone) says the index is complete.
enum DenialIndex {
    /// `tags[slot]`: a hash tag that lands in `slot`.
    static let tags: [String] = {
        var tags = [String?](repeating: nil, count: RedisKeySlot.count)
        var missing = RedisKeySlot.count
        var n = 0
        while missing > 0 {
            let tag = String(n)
            let slot = RedisKeySlot.slot(of: tag)
            if tags[slot] == nil {
                tags[slot] = tag
                missing -= 1
            }
            n += 1
        }
        return tags.map { $0! }
    }()

    /// The set listing `denyKey` (on a cluster: the one of its slot).
    static func key(prefix: String, for denyKey: String, cluster: Bool) -> String {
        cluster ? key(prefix: prefix, slot: RedisKeySlot.slot(of: denyKey)) : serverKey(prefix: prefix)
    }

    static func key(prefix: String, slot: Int) -> String { "\(prefix){\(tags[slot])}:denials" }

    /// The one set of a single server (or Sentinel).
    static func serverKey(prefix: String) -> String { prefix + "denials" }

    /// Every set a reload reads.
    static func keys(prefix: String, cluster: Bool) -> [String] {
        cluster ? (0..<RedisKeySlot.count).map { key(prefix: prefix, slot: $0) } : [serverKey(prefix: prefix)]
    }

    static func markerKey(prefix: String, cluster: Bool) -> String { prefix + (cluster ? "denials:indexed:slots" : "denials:indexed") }

    /// Adds one denial (KEYS: index. ARGV: deny key, until in ms): for the one-time backfill.
    static let add = RedisScript(
        name: "denials.add",
        """
        redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[1])
        local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
        redis.call('PEXPIREAT', KEYS[1], last[2])
        return 1
        """
    )
}
