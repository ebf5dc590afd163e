import Foundation
import Synchronization

/// One denylist entry as the revocation stream carries it: every access token of session `id`
/// (`sid`), or the one token `id` (`jti`), is refused until `until` (Unix seconds).
public struct Revocation: Sendable, Hashable, Codable {
    public enum Kind: String, Sendable, Codable { case sid, jti }
    public var kind: Kind
    public var id: String
    public var until: Int64

    public init(kind: Kind, id: String, until: Int64) {
        self.kind = kind
        self.id = id
        self.until = until
    }

    /// Rounded up: a second of extra denial, never a second too little.
    public init(_ key: RevocationKey, until: Date) {
        switch key {
        case .session(let id): self.init(kind: .sid, id: id, until: Int64(until.timeIntervalSince1970.rounded(.up)))
        case .tokenID(let id): self.init(kind: .jti, id: id, until: Int64(until.timeIntervalSince1970.rounded(.up)))
        }
    }

    /// From a store key ending in `sid:<id>` or `jti:<id>` (memory, SQLite, Redis deny keys).
    public init?(storageKey key: String, until: Double) {
        let tail: Substring
        if let range = key.range(of: ":deny:", options: .backwards) { tail = key[range.upperBound...] } else { tail = key[...] }
        guard tail.count > 4, let kind = Kind(rawValue: String(tail.prefix(3))), tail.dropFirst(3).first == ":" else { return nil }
        self.init(kind: kind, id: String(tail.dropFirst(4)), until: Int64(until.rounded(.up)))
    }
}

/// Fans every denial a token store writes out to the revocation streams that follow it.
///
/// A follower subscribes *before* it reads the store's snapshot, so a denial written between
/// the two is in the snapshot or in its stream (or both: followers merge by the later `until`).
/// A follower whose buffer fills up, or every follower when the store may have missed
/// denials (a Redis view that lost its subscription), is ended: it must resync from a snapshot.
public final class RevocationFeed: Sendable {
    private struct State {
        var next = 0
        var followers: [Int: AsyncStream<Revocation>.Continuation] = [:]
    }

    private let state = Mutex(State())
    private let liveness = Mutex<(@Sendable () -> Bool)?>(nil)
    /// Denials a follower may have pending before it is dropped.
    public let bufferSize: Int

    public init(bufferSize: Int = 10_000) {
        self.bufferSize = bufferSize
    }

    /// Whether followers are seeing every denial right now (a Redis view synced and heartbeat-fresh).
    /// Streams send heartbeats only while this holds.
    public var isLive: Bool { liveness.withLock { $0 }?() ?? true }

    public func setLiveness(_ check: @escaping @Sendable () -> Bool) {
        liveness.withLock { $0 = check }
    }

    /// New denials from now on. The stream ends on `interrupt()` or when its buffer overflows.
    public func follow() -> AsyncStream<Revocation> {
        let (stream, continuation) = AsyncStream.makeStream(of: Revocation.self, bufferingPolicy: .bufferingOldest(bufferSize))
        let id = state.withLock { state in
            state.next += 1
            state.followers[state.next] = continuation
            return state.next
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.followers.removeValue(forKey: id) }
        }
        return stream
    }

    public func publish(_ revocations: [Revocation]) {
        guard !revocations.isEmpty else { return }
        let followers = state.withLock { $0.followers }
        for (_, continuation) in followers {
            for revocation in revocations {
                if case .dropped = continuation.yield(revocation) {
                    // A gap: this follower must start again from a snapshot.
                    continuation.finish()
                    break
                }
            }
        }
    }

    /// Ends every stream: the denials they would carry may be incomplete.
    public func interrupt() {
        let followers = state.withLock { state in
            defer { state.followers = [:] }
            return state.followers
        }
        for (_, continuation) in followers { continuation.finish() }
    }

    public var followerCount: Int { state.withLock { $0.followers.count } }
}
