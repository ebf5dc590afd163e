import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import Tessera
import TesseraRESP

/// This instance's copy of the Redis denylist, so that checking an access token costs no
/// Redis round trip. See docs/REDIS.md, "Local revocation view".
///
/// - Every revocation script `PUBLISH`es `"<until> <deny key>"` on `<prefix>revocations`,
///   atomically with its write; the view applies each message as it arrives.
/// - After every (re)subscription it loads every `<prefix>…:deny:*` key by SCAN + MGET. It is
///   *synced* once that load has finished on a connection that is still subscribed.
/// - It answers only while synced **and** a heartbeat on the subscription connection, sent less
///   than `lease` ago, has come back (proof that no message is stuck or lost). Otherwise
///   `isRevoked` returns nil and `RedisTokenStore` asks Redis, as it would without a view.
/// - Entries live until their `until` (the last access token they cover expires), so the view
///   is as small as the live denylist.
///
/// Lookups take one shard's lock for a dictionary read: concurrent requests do not queue up
/// behind each other or behind the subscription.
public final class RevocationView: Sendable, Service {
    public let keyPrefix: String
    public let channel: String
    private let invalidationHandlers = Mutex<[@Sendable (String) -> Void]>([])
    /// How long a heartbeat answer keeps the view trusted.
    public let lease: Duration
    private let client: RedisClient
    let clock: any TesseraClock
    private let logger: Logger
    private let shards: [Shard]
    private let sync = Mutex(SyncState())
    /// Nanoseconds since `origin` until which the view may answer; 0 while not synced.
    private let trustedUntil = Atomic<Int64>(0)
    private let resyncTotal = Atomic<Int>(0)
    private let origin = ContinuousClock.now
    private let resyncRequests: AsyncStream<Int>
    private let resyncContinuation: AsyncStream<Int>.Continuation
    private let subscriptionBox = Mutex<RedisSubscription?>(nil)
    /// Every denial this view learns (from any instance), for the revocation stream. Live only
    /// while the view is trusted; ended whenever the subscription is lost or renewed.
    public let feed = RevocationFeed()

    private final class Shard: Sendable {
        let entries = Mutex<[String: Double]>([:])
    }

    private struct SyncState {
        /// The subscription connection the view currently follows, if subscribed.
        var connection: Int?
        var synced = false
        /// Latest instant by which every published message is known to have arrived.
        var lastProof: ContinuousClock.Instant?
        var resyncs = 0
    }

    /// - Parameters:
    ///   - client: the pool used for the (re)load; the subscription has its own connection,
    ///     opened with `client.configuration`.
    ///   - keyPrefix: the same prefix as the `RedisTokenStore` this view serves.
    public init(
        client: RedisClient, keyPrefix: String = "tessera:", clock: any TesseraClock = SystemClock(),
        heartbeatInterval: Duration = .milliseconds(250), lease: Duration = .seconds(1), shardCount: Int = 16,
        logger: Logger = Logger(label: "tessera.revocations")
    ) {
        self.client = client
        self.keyPrefix = keyPrefix
        self.channel = keyPrefix + "revocations"
        self.clock = clock
        self.lease = lease
        self.logger = logger
        self.shards = (0..<max(1, shardCount)).map { _ in Shard() }
        (self.resyncRequests, self.resyncContinuation) = AsyncStream.makeStream(of: Int.self, bufferingPolicy: .bufferingNewest(1))
        var subscriptionConfiguration = client.configuration
        subscriptionConfiguration.protocolVersion = .resp3
        if let name = subscriptionConfiguration.clientName { subscriptionConfiguration.clientName = name + "-revocations" }
        let subscription = RedisSubscription(
            configuration: subscriptionConfiguration, channels: [self.channel], heartbeatInterval: heartbeatInterval, logger: logger
        ) { [weak self] event in self?.handle(event) }
        self.subscriptionBox.withLock { $0 = subscription }
        self.feed.setLiveness { [weak self] in self?.isTrusted ?? false }
    }

    private var subscription: RedisSubscription { subscriptionBox.withLock { $0! } }

    // MARK: Answers

    /// True if one of the deny keys is in force, false if none is, nil when the view cannot
    /// vouch for its completeness right now (ask Redis).
    public func isRevoked(_ keys: String...) -> Bool? {
        guard self.isTrusted else { return nil }
        return self.holds(keys)
    }

    /// Whether one of the keys is in force among the entries held, trusted or not.
    func holds(_ keys: String...) -> Bool {
        self.holds(keys)
    }

    private func holds(_ keys: [String]) -> Bool {
        let now = self.clock.now().timeIntervalSince1970
        for key in keys {
            if let until = self.shard(key).entries.withLock({ $0[key] }), until > now { return true }
        }
        return false
    }

    /// Whether the view answers right now (synced, with a recent heartbeat).
    public var isTrusted: Bool {
        self.elapsed(ContinuousClock.now) < self.trustedUntil.load(ordering: .acquiring)
    }

    /// How many loads completed (one per subscription, after start and after each reconnect).
    /// An atomic, not the sync lock: the user cache reads it on every cached read.
    public var resyncCount: Int { resyncTotal.load(ordering: .acquiring) }

    /// Entries held, expired ones not yet swept included.
    public var count: Int { shards.reduce(0) { total, shard in total + shard.entries.withLock { $0.count } } }

    /// Records a denial this instance wrote itself, so it is in force here at once, without
    /// waiting for its own message.
    public func record(key: String, until: Date) {
        self.merge(key, until.timeIntervalSince1970)
        self.publish(key, until.timeIntervalSince1970)
    }

    /// The live denylist held by the view; throws while the view cannot vouch for it.
    public func snapshot() throws -> [Revocation] {
        guard self.isTrusted else {
            throw StoreError(backend: "redis", message: "revocation view not synchronised")
        }
        return self.entries(inForceAt: self.clock.now()).compactMap { key, until in Revocation(storageKey: key, until: until) }
    }

    /// The deny keys held whose time has not passed, with their `until` (seconds since 1970).
    func entries(inForceAt date: Date) -> [(key: String, until: Double)] {
        let now = date.timeIntervalSince1970
        return self.shards.flatMap { shard in
            shard.entries.withLock { entries in entries.compactMap { key, until in until > now ? (key, until) : nil } }
        }
    }

    /// Drops the subscription connection; the view falls back to Redis until it has reloaded.
    public func dropSubscription() async {
        await self.subscription.dropConnection()
    }

    // MARK: Service

    /// Runs the subscription, the loads it asks for and the expiry sweep, until shutdown.
    public func run() async throws {
        let subscription = self.subscription
        await withDiscardingTaskGroup { group in
            group.addTask { try? await subscription.run() }
            group.addTask {
                try? await cancelWhenGracefulShutdown {
                    for await connection in self.resyncRequests {
                        await self.resync(connection)
                    }
                }
            }
            group.addTask {
                try? await cancelWhenGracefulShutdown {
                    while !Task.isCancelled {
                        try await Task.sleep(for: .seconds(10))
                        self.sweep()
                    }
                }
            }
            // Returns on graceful shutdown, or when cancelled.
            try? await gracefulShutdown()
            self.resyncContinuation.finish()
            group.cancelAll()
        }
    }

    // MARK: Events

    private func handle(_ event: RedisSubscription.Event) {
        switch event {
        case .message(let channel, let payload):
            guard channel == self.channel else { return }
            self.apply(payload)
        case .subscribed(let connection, let at):
            self.sync.withLock { state in
                state.connection = connection
                state.synced = false
                state.lastProof = at
            }
            self.trustedUntil.store(0, ordering: .releasing)
            // Messages may have been missed before this subscription: streams start again.
            self.feed.interrupt()
            self.resyncContinuation.yield(connection)
        case .heartbeat(let connection, let sentAt):
            self.sync.withLock { state in
                guard state.connection == connection else { return }
                state.lastProof = sentAt
                if state.synced { self.trust(until: sentAt + self.lease) }
            }
        case .disconnected(let connection):
            self.sync.withLock { state in
                guard state.connection == connection else { return }
                state.connection = nil
                state.synced = false
                self.trustedUntil.store(0, ordering: .releasing)
            }
            self.feed.interrupt()
            self.logger.warning("revocation subscription lost; checking revocations in Redis until resynchronised")
        }
    }

    /// Loads every deny key; marks the view synced if `connection` stayed subscribed meanwhile.
    private func resync(_ connection: Int) async {
        var attempt = 0
        while !Task.isCancelled {
            guard self.sync.withLock({ $0.connection == connection }) else { return }
            do {
                let loaded = try await self.load()
                self.sync.withLock { state in
                    guard state.connection == connection else { return }
                    state.synced = true
                    state.resyncs += 1
                    self.resyncTotal.add(1, ordering: .releasing)
                    if let proof = state.lastProof { self.trust(until: proof + self.lease) }
                }
                self.logger.info("revocation view synchronised", metadata: ["entries": "\(loaded)"])
                return
            } catch {
                attempt += 1
                self.logger.warning("revocation view load failed; retrying", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .milliseconds(min(100 * (1 << min(attempt, 5)), 2000)))
            }
        }
    }

    /// SCAN for the deny keys, MGET their values. Returns how many were found.
    func load() async throws -> Int {
        let pattern = Self.globEscaped(self.keyPrefix) + "*:deny:*"
        var cursor = "0"
        var found = 0
        repeat {
            let reply = try await self.client.send(["SCAN", RESPArgument(cursor), "MATCH", RESPArgument(pattern), "COUNT", "1000", "TYPE", "string"])
            guard let parts = reply.array, parts.count == 2, let next = parts[0].string else {
                throw RedisError.protocolError("unexpected SCAN reply")
            }
            cursor = next
            let keys = (parts[1].array ?? []).compactMap(\.string)
            if !keys.isEmpty {
                let values = try await self.client.send(["MGET"] + keys.map { RESPArgument($0) }).array ?? []
                for (key, value) in zip(keys, values) {
                    if let until = value.string.flatMap(Double.init) {
                        self.merge(key, until)
                        found += 1
                    }
                }
            }
        } while cursor != "0"
        return found
    }

    /// Removes entries whose time has passed.
    func sweep() {
        let now = self.clock.now().timeIntervalSince1970
        for shard in self.shards {
            shard.entries.withLock { entries in entries = entries.filter { $0.value > now } }
        }
    }

    // MARK: Plumbing

    /// `"<until> <key>"`, as the scripts publish it.
    private func apply(_ payload: ByteBuffer) {
        let text = String(decoding: payload.readableBytesView, as: UTF8.self)
        guard let space = text.firstIndex(of: " "), let until = Double(text[..<space]) else {
            self.logger.warning("malformed revocation message ignored", metadata: ["message": "\(text.prefix(200))"])
            return
        }
        let key = String(text[text.index(after: space)...])
        // The same channel carries "this cached record changed" for per-instance caches.
        if key.hasSuffix(":user") {
            for handler in self.invalidationHandlers.withLock({ $0 }) { handler(key) }
            return
        }
        self.merge(key, until)
        self.publish(key, until)
    }

    private func publish(_ key: String, _ until: Double) {
        guard until > self.clock.now().timeIntervalSince1970, let revocation = Revocation(storageKey: key, until: until) else { return }
        self.feed.publish([revocation])
    }

    /// Calls `handler` with the key of every cache entry another instance invalidated
    /// (`<prefix>{u:<id>}:user`). Messages missed while disconnected are not replayed: a cache
    /// fed by this must also drop what it holds whenever `resyncCount` changes.
    public func onInvalidation(_ handler: @escaping @Sendable (String) -> Void) {
        self.invalidationHandlers.withLock { $0.append(handler) }
    }

    private func merge(_ key: String, _ until: Double) {
        guard until > self.clock.now().timeIntervalSince1970 else { return }
        self.shard(key).entries.withLock { entries in
            if (entries[key] ?? 0) < until { entries[key] = until }
        }
    }

    private func shard(_ key: String) -> Shard {
        self.shards[Int(UInt(bitPattern: key.hashValue) % UInt(self.shards.count))]
    }

    private func trust(until instant: ContinuousClock.Instant) {
        self.trustedUntil.store(self.elapsed(instant), ordering: .releasing)
    }

    private func elapsed(_ instant: ContinuousClock.Instant) -> Int64 {
        let duration = instant - self.origin
        return duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000 + 1
    }

    /// Escapes the glob characters SCAN's MATCH gives meaning to.
    static func globEscaped(_ text: String) -> String {
        var result = ""
        for character in text {
            if "*?[]\\".contains(character) { result.append("\\") }
            result.append(character)
        }
        return result
    }
}
