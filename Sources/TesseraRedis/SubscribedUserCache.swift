import Foundation
import Synchronization
import Tessera

/// A per-instance user cache in front of the shared `RedisUserCache`, so that reading a cached
/// user (`/me`, refresh) costs no Redis command in steady state.
///
/// It follows the revocation view's rules: it answers only while the view is trusted (subscribed,
/// synced, heartbeat fresh), every invalidation arrives on the view's channel in the same atomic
/// step as the shared entry's deletion, and whatever it holds is void once the view has
/// resynchronised (messages may have been missed meanwhile). Otherwise reads go to Redis.
public final class SubscribedUserCache: UserCache {
    private struct Entry {
        var user: User
        var expiresAt: Date
        var resync: Int
    }

    private struct State {
        var entries: [String: Entry] = [:]
        /// Bumped by every invalidation of a key in this shard: a read that overlapped one is
        /// not kept.
        var invalidations = 0
    }

    /// Sixteen shards by key, each with its own lock held for one dictionary operation, so
    /// concurrent `/me` requests do not queue on one lock.
    private final class Shard: Sendable {
        let state = Mutex(State())
    }

    public let shared: RedisUserCache
    public let view: RevocationView
    private let shards: [Shard] = (0..<16).map { _ in Shard() }
    private let clock: any TesseraClock
    private let localTTL: TimeInterval
    private let capacity: Int
    public var backendName: String { "redis+local" }

    /// - Parameters:
    ///   - shared: must announce invalidations on `view.channel`.
    ///   - localTTL: how long an entry is kept here at most (invalidations end it sooner).
    public init(shared: RedisUserCache, view: RevocationView, clock: any TesseraClock = SystemClock(), localTTL: TimeInterval = 300, capacity: Int = 100_000) {
        precondition(shared.invalidationChannel == view.channel, "the shared cache must announce invalidations on the view's channel")
        self.shared = shared
        self.view = view
        self.clock = clock
        self.localTTL = localTTL
        self.capacity = capacity
        view.onInvalidation { [weak self] key in self?.drop(key) }
    }

    public func user(id: String) async throws -> User? {
        let key = shared.userKey(id)
        let now = clock.now()
        let shard = shard(for: key)
        let trusted = view.isTrusted
        let resync = view.resyncCount
        let (local, before) = shard.state.withLock { state -> (User?, Int) in
            guard trusted, let entry = state.entries[key], entry.resync == resync, now < entry.expiresAt else {
                return (nil, state.invalidations)
            }
            return (entry.user, state.invalidations)
        }
        if let local { return local }
        guard let user = try await shared.user(id: id) else { return nil }
        // Only what was read while trusted and with no invalidation in between.
        guard view.isTrusted else { return user }
        let capacity = max(1, self.capacity / shards.count)
        shard.state.withLock { state in
            guard state.invalidations == before else { return }
            if state.entries.count >= capacity, state.entries[key] == nil {
                state.entries = state.entries.filter { now < $0.value.expiresAt }
                if state.entries.count >= capacity, let victim = state.entries.keys.first { state.entries[victim] = nil }
            }
            state.entries[key] = Entry(user: user, expiresAt: now.addingTimeInterval(localTTL), resync: resync)
        }
        return user
    }

    public func store(_ user: User, ttl: TimeInterval) async throws {
        try await shared.store(user, ttl: ttl)
    }

    public func invalidate(userID: String) async throws {
        drop(shared.userKey(userID))
        try await shared.invalidate(userID: userID)
    }

    private func shard(for key: String) -> Shard { shards[Int(UInt(bitPattern: key.hashValue) % UInt(shards.count))] }

    private func drop(_ key: String) {
        shard(for: key).state.withLock { state in
            state.entries[key] = nil
            state.invalidations += 1
        }
    }
}
