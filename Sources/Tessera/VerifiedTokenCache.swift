import Foundation
import Synchronization

/// Access tokens whose signature, issuer and times were already checked, keyed by the exact
/// token string, so that a client presenting the same token again skips Ed25519 (~50–100 µs).
///
/// - Only what `AccessTokenCodec.verify` accepted goes in; a hit still checks `exp` against
///   the clock, and the caller still checks revocation on every request.
/// - The key is the whole token string, not a hash of part of it: a token differing in any
///   byte (another encoding of the same signature included) is verified afresh.
/// - Bounded: `capacity` entries in all, split over shards that each have their own lock, held
///   only for one dictionary operation, so concurrent requests do not queue behind each other.
///   A full shard first drops its expired entries, then an eighth of the rest.
public final class VerifiedTokenCache: Sendable {
    private final class Shard: Sendable {
        let entries = Mutex<[String: AccessClaims]>([:])
    }

    public let capacity: Int
    private let shards: [Shard]
    private let perShard: Int

    public init(capacity: Int = 65_536, shardCount: Int = 16) {
        let shardCount = max(1, shardCount)
        self.capacity = max(0, capacity)
        self.perShard = self.capacity / shardCount
        self.shards = (0..<shardCount).map { _ in Shard() }
    }

    /// The claims of a token verified earlier, if it has not expired by `now`.
    public func claims(for token: String, now: Date) -> AccessClaims? {
        guard let claims = self.shard(token).entries.withLock({ $0[token] }) else { return nil }
        return TimeInterval(claims.exp) > now.timeIntervalSince1970 ? claims : nil
    }

    public func insert(_ token: String, claims: AccessClaims, now: Date) {
        guard self.perShard > 0 else { return }
        let nowSeconds = now.timeIntervalSince1970
        self.shard(token).entries.withLock { entries in
            if entries.count >= self.perShard {
                entries = entries.filter { TimeInterval($0.value.exp) > nowSeconds }
                if entries.count >= self.perShard {
                    let drop = max(1, self.perShard / 8)
                    entries = Dictionary(uniqueKeysWithValues: entries.dropFirst(drop).map { ($0.key, $0.value) })
                }
            }
            entries[token] = claims
        }
    }

    /// Entries held (expired ones not yet dropped included).
    public var count: Int { self.shards.reduce(0) { total, shard in total + shard.entries.withLock { $0.count } } }

    private func shard(_ token: String) -> Shard {
        self.shards[Int(UInt(bitPattern: token.hashValue) % UInt(self.shards.count))]
    }
}

extension AccessTokenCodec {
    /// `verify`, answered from the cache of already-verified tokens when it can be.
    /// Same errors, same rules: only `exp` can change between two presentations of one token.
    public func verifyCached(_ token: String, now: Date) throws(AccessTokenError) -> AccessClaims {
        if let claims = self.verifiedTokens.claims(for: token, now: now) { return claims }
        let claims = try self.verify(token, now: now)
        self.verifiedTokens.insert(token, claims: claims, now: now)
        return claims
    }
}
