import Crypto
import Foundation
import HummingbirdBcrypt
import NIOCore
import NIOPosix
import Synchronization

/// bcrypt password hashing, run on a thread pool: a cost-12 hash takes a quarter of a second
/// of CPU and must not block an event loop.
///
/// bcrypt reads at most 72 bytes, so the password is first reduced to base64(SHA-256(password)):
/// two long passwords that share a 72-byte prefix do not collide, and the input has no NUL bytes.
///
/// Admission is bounded: at most `maxInFlight` hashes run or wait at once. Past that a hash is
/// refused at once with `PasswordHasher.Overloaded` (503 with `Retry-After`), instead of
/// queueing without bound until every login takes seconds.
public struct PasswordHasher: Sendable {
    /// Refused because `maxInFlight` hashes are already running or waiting.
    public struct Overloaded: Error, Sendable {
        public init() {}
    }

    public let cost: UInt8
    /// Hashes running on the pool plus those waiting for a thread.
    public let maxInFlight: Int
    private let threadPool: NIOThreadPool
    private let inFlight = InFlightCounter()

    /// `maxQueued` hashes may wait for one of the pool's threads (`System.coreCount` by default).
    public init(cost: UInt8, maxQueued: Int = 16, threadPool: NIOThreadPool = .singleton, threads: Int = System.coreCount) {
        precondition(maxQueued >= 0)
        self.cost = cost
        self.maxInFlight = max(1, threads) + maxQueued
        self.threadPool = threadPool
    }

    public func hash(_ password: String) async throws -> String {
        let input = Self.prehash(password)
        let cost = self.cost
        return try await admitted { try await threadPool.runIfActive { Bcrypt.hash(input, cost: cost) } }
    }

    public func verify(_ password: String, hash: String) async throws -> Bool {
        let input = Self.prehash(password)
        return try await admitted { try await threadPool.runIfActive { Bcrypt.verify(input, hash: hash) } }
    }

    /// Hashes admitted and not yet finished.
    public var pending: Int { inFlight.value }

    private func admitted<T>(_ body: () async throws -> T) async throws -> T {
        guard inFlight.enter(limit: maxInFlight) else { throw Overloaded() }
        defer { inFlight.leave() }
        return try await body()
    }

    static func prehash(_ password: String) -> String {
        Data(SHA256.hash(data: Data(password.utf8))).base64EncodedString()
    }
}

/// A counter shared by copies of one hasher.
private final class InFlightCounter: Sendable {
    private let count = Mutex(0)

    func enter(limit: Int) -> Bool {
        count.withLock { count in
            guard count < limit else { return false }
            count += 1
            return true
        }
    }

    func leave() { count.withLock { $0 -= 1 } }

    var value: Int { count.withLock { $0 } }
}
