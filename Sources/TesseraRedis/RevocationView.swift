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
/// - It subscribes on every primary (one on a single server or behind Sentinel, each primary of
///   a Redis Cluster, where a message published on one node reaches the others late or not at
///   all), and follows the set of primaries as it changes (failover).
/// - After every (re)subscription on any node it loads the denylist from `DenialIndex` (a
///   sorted set, one per slot on a cluster, written by the scripts with each denial; by SCAN of
///   every primary the first time, before the index is complete). It is *synced* once that load has finished
///   while every node is still subscribed.
/// - It answers only while synced **and** a heartbeat on every node's subscription connection,
///   sent less than `lease` ago, has come back (proof that no message is stuck or lost).
///   Otherwise `isRevoked` returns nil and `RedisTokenStore` asks Redis, as it would without a view.
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
    private let client: any RedisCommandExecutor
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
    private let subscriptions = Mutex<[RedisSubscription]>([])
    private let heartbeatInterval: Duration
    /// Every denial this view learns (from any instance), for the revocation stream. Live only
    /// while the view is trusted; ended whenever the subscription is lost or renewed.
    public let feed = RevocationFeed()

    private final class Shard: Sendable {
        let entries = Mutex<[String: Double]>([:])
    }

    private struct SyncState {
        /// Bumped whenever the set of primaries (and so of subscriptions) is replaced.
        var generation = 0
        /// Per primary of this generation, by address.
        var nodes: [String: NodeState] = [:]
        /// Bumped by every (re)subscription: a load counts only if none happened meanwhile.
        var epoch = 0
        var synced = false
        var resyncs = 0
        var lastLoad: Duration?

        var allSubscribed: Bool { !nodes.isEmpty && nodes.values.allSatisfy { $0.connection != nil } }

        /// Latest instant by which every message published on every node is known to have arrived.
        var proof: ContinuousClock.Instant? {
            guard allSubscribed else { return nil }
            return nodes.values.compactMap(\.lastProof).min()
        }
    }

    private struct NodeState {
        /// The subscription connection the view currently follows on this node, if subscribed.
        var connection: Int?
        var lastProof: ContinuousClock.Instant?
    }

    /// - Parameters:
    ///   - client: what the (re)load reads through; the subscriptions have connections of
    ///     their own, one per primary, opened with that primary's client configuration.
    ///   - keyPrefix: the same prefix as the `RedisTokenStore` this view serves.
    public init(
        client: any RedisCommandExecutor, keyPrefix: String = "tessera:", clock: any TesseraClock = SystemClock(),
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
        self.heartbeatInterval = heartbeatInterval
        self.feed.setLiveness { [weak self] in self?.isTrusted ?? false }
    }

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

    /// How long the last completed load took (reading the denylist and merging it), the part of
    /// a resync that grows with the live denials; nil before the first.
    public var lastLoadDuration: Duration? { sync.withLock { $0.lastLoad } }

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

    /// Drops every subscription connection; the view falls back to Redis until it has reloaded.
    public func dropSubscription() async {
        for subscription in self.subscriptions.withLock({ $0 }) { await subscription.dropConnection() }
    }

    // MARK: Service

    /// Runs the subscription, the loads it asks for and the expiry sweep, until shutdown.
    public func run() async throws {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.followPrimaries() }
            group.addTask {
                try? await cancelWhenGracefulShutdown {
                    for await epoch in self.resyncRequests {
                        await self.resync(epoch)
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

    // MARK: Subscriptions

    /// Keeps one subscription per primary, replacing them all when the set of primaries changes.
    private func followPrimaries() async {
        var current: [String] = []
        var running: Task<Void, Never>?
        while !Task.isCancelled {
            if let primaries = try? await self.client.primaries() {
                let addresses = primaries.map { Self.address($0.configuration) }
                if addresses != current {
                    running?.cancel()
                    await running?.value
                    running = self.subscribe(primaries, addresses: addresses)
                    current = addresses
                }
            }
            try? await Task.sleep(for: .milliseconds(500))
        }
        running?.cancel()
        await running?.value
    }

    private func subscribe(_ primaries: [RedisClient], addresses: [String]) -> Task<Void, Never> {
        let generation = self.sync.withLock { state in
            state.generation += 1
            state.nodes = Dictionary(uniqueKeysWithValues: addresses.map { ($0, NodeState()) })
            state.synced = false
            return state.generation
        }
        self.trustedUntil.store(0, ordering: .releasing)
        self.feed.interrupt()
        let subscriptions = zip(primaries, addresses).map { client, address in
            var configuration = client.configuration
            configuration.protocolVersion = .resp3
            if let name = configuration.clientName { configuration.clientName = name + "-revocations" }
            return RedisSubscription(
                configuration: configuration, channels: [self.channel], heartbeatInterval: self.heartbeatInterval, logger: self.logger
            ) { [weak self] event in self?.handle(event, node: address, generation: generation) }
        }
        self.subscriptions.withLock { $0 = subscriptions }
        if addresses.count > 1 {
            self.logger.info("revocation view subscribes on every primary", metadata: ["primaries": "\(addresses.joined(separator: ","))"])
        }
        return Task {
            await withDiscardingTaskGroup { group in
                for subscription in subscriptions { group.addTask { try? await subscription.run() } }
            }
        }
    }

    private static func address(_ configuration: RedisConfiguration) -> String {
        RedisNodeAddress(host: configuration.host, port: configuration.port).description
    }

    // MARK: Events

    private func handle(_ event: RedisSubscription.Event, node: String, generation: Int) {
        switch event {
        case .message(let channel, let payload):
            guard channel == self.channel else { return }
            self.apply(payload)
        case .subscribed(let connection, let at):
            let epoch: Int? = self.sync.withLock { state in
                guard state.generation == generation, state.nodes[node] != nil else { return nil }
                state.nodes[node] = NodeState(connection: connection, lastProof: at)
                state.synced = false
                state.epoch += 1
                return state.epoch
            }
            guard let epoch else { return }
            self.trustedUntil.store(0, ordering: .releasing)
            // Messages may have been missed before this subscription: streams start again.
            self.feed.interrupt()
            self.resyncContinuation.yield(epoch)
        case .heartbeat(let connection, let sentAt):
            self.sync.withLock { state in
                guard state.generation == generation, state.nodes[node]?.connection == connection else { return }
                state.nodes[node]?.lastProof = sentAt
                if state.synced, let proof = state.proof { self.trust(until: proof + self.lease) }
            }
        case .disconnected(let connection):
            let lost = self.sync.withLock { state in
                guard state.generation == generation, state.nodes[node]?.connection == connection else { return false }
                state.nodes[node]?.connection = nil
                state.synced = false
                self.trustedUntil.store(0, ordering: .releasing)
                return true
            }
            guard lost else { return }
            self.feed.interrupt()
            self.logger.warning(
                "revocation subscription lost; checking revocations in Redis until resynchronised", metadata: ["node": "\(node)"]
            )
        }
    }

    /// Loads every deny key; marks the view synced if no node re-subscribed or dropped meanwhile.
    private func resync(_ epoch: Int) async {
        var attempt = 0
        while !Task.isCancelled {
            guard self.sync.withLock({ $0.epoch == epoch && $0.allSubscribed }) else { return }
            do {
                let started = ContinuousClock.now
                let loaded = try await self.load()
                let took = started.duration(to: .now)
                let synced = self.sync.withLock { state in
                    guard state.epoch == epoch, state.allSubscribed else { return false }
                    state.synced = true
                    state.resyncs += 1
                    state.lastLoad = took
                    self.resyncTotal.add(1, ordering: .releasing)
                    if let proof = state.proof { self.trust(until: proof + self.lease) }
                    return true
                }
                if synced {
                    self.logger.info("revocation view synchronised", metadata: ["entries": "\(loaded)", "load_ms": "\(Int(took / .milliseconds(1)))"])
                }
                return
            } catch {
                attempt += 1
                self.logger.warning("revocation view load failed; retrying", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .milliseconds(min(100 * (1 << min(attempt, 5)), 2000)))
            }
        }
    }

    /// Loads the denylist: from the `DenialIndex` once it is complete, else by SCAN of every
    /// primary (which then completes the index). Returns how many denials were found.
    func load() async throws -> Int {
        let cluster = self.client.isCluster
        let marker = DenialIndex.markerKey(prefix: self.keyPrefix, cluster: cluster)
        if try await self.client.send(["EXISTS", RESPArgument(marker)], timeout: nil).int == 1 {
            return try await self.loadIndex()
        }
        let found = try await self.loadByScan()
        // The backfill in pipelines (routed by key), not one round trip per denial: 10,000
        // denials took seconds one by one, with the view untrusted all along.
        for start in stride(from: 0, to: found.count, by: 512) {
            let batch = found[start..<min(start + 512, found.count)].map { key, until in
                (keys: [RESPArgument(DenialIndex.key(prefix: self.keyPrefix, for: key, cluster: cluster))],
                 arguments: [RESPArgument(key), RESPArgument(Int64((until * 1000).rounded(.up)))])
            }
            let replies = try await self.client.pipeline(batch.map { DenialIndex.add.command(keys: $0.keys, arguments: $0.arguments) }, timeout: nil)
            for (entry, reply) in zip(batch, replies) {
                switch reply.error {
                case nil: continue
                // A server without the script cached: EVAL once (which caches it), then on.
                case .noScript?: try await self.client.evalScript(DenialIndex.add, keys: entry.keys, arguments: entry.arguments)
                case let error?: throw error
                }
            }
        }
        _ = try await self.client.send(["SET", RESPArgument(marker), "1"], timeout: nil)
        return found.count
    }

    /// The `DenialIndex`: one set, or on a cluster every slot's set, 1,024 per pipeline (routed
    /// by key: each node is asked for its own slots).
    func loadIndex() async throws -> Int {
        let keys = DenialIndex.keys(prefix: self.keyPrefix, cluster: self.client.isCluster)
        var found = 0
        for start in stride(from: 0, to: keys.count, by: 1024) {
            let commands = keys[start..<min(start + 1024, keys.count)].map { ["ZRANGE", RESPArgument($0), "0", "-1", "WITHSCORES"] as [RESPArgument] }
            for reply in try await self.client.pipeline(commands, timeout: nil) {
                if let error = reply.error { throw error }
                for (key, untilMs) in Self.members(reply) {
                    self.merge(key, untilMs / 1000)
                    found += 1
                }
            }
        }
        return found
    }

    /// (member, score) pairs of `ZRANGE … WITHSCORES`: pairs in RESP3, a flat list in RESP2.
    static func members(_ reply: RESPValue) -> [(String, Double)] {
        let items = reply.array ?? []
        if items.allSatisfy({ $0.array != nil }) {
            return items.compactMap { pair in
                guard let parts = pair.array, parts.count == 2, let member = parts[0].string,
                    let score = parts[1].double ?? parts[1].string.flatMap(Double.init)
                else { return nil }
                return (member, score)
            }
        }
        return stride(from: 0, to: items.count - 1, by: 2).compactMap { index in
            guard let member = items[index].string, let score = items[index + 1].string.flatMap(Double.init) else { return nil }
            return (member, score)
        }
    }

    /// SCAN every primary for the deny keys, GET their values (routed by key, so a key in
    /// another slot than its neighbours is read where it lives).
    func loadByScan() async throws -> [(key: String, until: Double)] {
        let pattern = Self.globEscaped(self.keyPrefix) + "*:deny:*"
        var found: [(key: String, until: Double)] = []
        for node in try await self.client.primaries() {
            var cursor = "0"
            repeat {
                let reply = try await node.send(["SCAN", RESPArgument(cursor), "MATCH", RESPArgument(pattern), "COUNT", "1000", "TYPE", "string"])
                guard let parts = reply.array, parts.count == 2, let next = parts[0].string else {
                    throw RedisError.protocolError("unexpected SCAN reply")
                }
                cursor = next
                let keys = (parts[1].array ?? []).compactMap(\.string)
                if !keys.isEmpty {
                    let values = try await self.client.pipeline(keys.map { ["GET", RESPArgument($0)] }, timeout: nil)
                    for (key, value) in zip(keys, values) {
                        if let until = value.string.flatMap(Double.init) {
                            self.merge(key, until)
                            found.append((key, until))
                        }
                    }
                }
            } while cursor != "0"
        }
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
