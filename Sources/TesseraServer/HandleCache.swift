import Synchronization

/// Metric handles made once per label set and then reused: making one looks it up in the
/// registry under the registry's lock, which every request would otherwise queue on.
///
/// Sixteen shards, each behind its own lock held for one dictionary lookup, so concurrent
/// requests rarely meet on the same lock.
final class HandleCache<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private final class Shard: Sendable {
        let entries = Mutex<[Key: Value]>([:])
    }

    private let shards: [Shard] = (0..<16).map { _ in Shard() }

    func value(for key: Key, make: () -> Value) -> Value {
        shards[Int(UInt(bitPattern: key.hashValue) % 16)].entries.withLock { entries in
            if let value = entries[key] { return value }
            let value = make()
            entries[key] = value
            return value
        }
    }
}
