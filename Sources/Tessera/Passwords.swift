import Crypto
import Foundation
import HummingbirdBcrypt
import NIOPosix

/// bcrypt password hashing, run on a thread pool: a cost-12 hash takes a quarter of a second
/// of CPU and must not block an event loop.
///
/// bcrypt reads at most 72 bytes, so the password is first reduced to base64(SHA-256(password)):
/// two long passwords that share a 72-byte prefix do not collide, and the input has no NUL bytes.
public struct PasswordHasher: Sendable {
    public let cost: UInt8
    private let threadPool: NIOThreadPool

    public init(cost: UInt8, threadPool: NIOThreadPool = .singleton) {
        self.cost = cost
        self.threadPool = threadPool
    }

    public func hash(_ password: String) async throws -> String {
        let input = Self.prehash(password)
        let cost = self.cost
        return try await threadPool.runIfActive { Bcrypt.hash(input, cost: cost) }
    }

    public func verify(_ password: String, hash: String) async throws -> Bool {
        let input = Self.prehash(password)
        return try await threadPool.runIfActive { Bcrypt.verify(input, hash: hash) }
    }

    static func prehash(_ password: String) -> String {
        Data(SHA256.hash(data: Data(password.utf8))).base64EncodedString()
    }
}
