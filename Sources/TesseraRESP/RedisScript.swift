import NIOCore

/// Anything that can run a command: a pooled `RedisClient` or a single `RESPConnection`.
public protocol RedisCommandSender: Sendable {
    func send(_ command: [RESPArgument], timeout: Duration?) async throws(RedisError) -> RESPValue
}

extension RESPConnection: RedisCommandSender {}
extension RedisClient: RedisCommandSender {}

extension RedisCommandSender {
    /// `send("SET", key, value)`: the variadic spelling of `send([...])`.
    @discardableResult
    public func send(_ arguments: RESPArgument...) async throws(RedisError) -> RESPValue {
        try await self.send(arguments, timeout: nil)
    }

    /// Runs a Lua script by SHA1 (EVALSHA) so its source is not resent each time; when the
    /// server's script cache lacks it (fresh server, restart, SCRIPT FLUSH) the source is sent
    /// once with EVAL, which also caches it again.
    @discardableResult
    public func evalScript(
        _ script: RedisScript,
        keys: [RESPArgument] = [],
        arguments: [RESPArgument] = []
    ) async throws(RedisError) -> RESPValue {
        do {
            return try await self.send(script.command(keys: keys, arguments: arguments), timeout: nil)
        } catch .noScript {
            return try await self.send(script.command(keys: keys, arguments: arguments, bySource: true), timeout: nil)
        }
    }
}

/// A Lua script and the SHA1 Redis knows it by.
///
/// The digest is computed locally (a small SHA-1, since this module does not depend on a
/// crypto library) so the first call can already try EVALSHA.
public struct RedisScript: Sendable, Hashable {
    /// What logs call the script (`EVALSHA rotate`): its arguments never appear there.
    public let name: String
    public let source: String
    /// Lower-case hex SHA1 of the source, as SCRIPT LOAD would return it.
    public let sha1: String

    public init(name: String, _ source: String) {
        self.name = name
        self.source = source
        self.sha1 = SHA1.hexDigest(Array(source.utf8))
    }

    /// `EVALSHA <sha1> <key count> keys… arguments…`, or `EVAL <source> …` when the server's
    /// script cache lacks it (`NOSCRIPT`).
    public func command(keys: [RESPArgument], arguments: [RESPArgument], bySource: Bool = false) -> [RESPArgument] {
        (bySource ? ["EVAL", RESPArgument(source)] : ["EVALSHA", RESPArgument(sha1)]) + [RESPArgument(keys.count)] + keys + arguments
    }

    /// An ad-hoc script, logged as `script`.
    public init(_ source: String) {
        self.init(name: "script", source)
    }
}

/// SHA-1 (FIPS 180-4). Used only to name scripts, never for security.
enum SHA1 {
    static func hexDigest(_ message: [UInt8]) -> String {
        let digest = self.digest(message)
        let hex: [UInt8] = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(40)
        for byte in digest {
            out.append(hex[Int(byte >> 4)])
            out.append(hex[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func digest(_ message: [UInt8]) -> [UInt8] {
        var h: (UInt32, UInt32, UInt32, UInt32, UInt32) = (0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0)
        var padded = message
        padded.append(0x80)
        while padded.count % 64 != 56 { padded.append(0) }
        let bitLength = UInt64(message.count) &* 8
        for shift in stride(from: 56, through: 0, by: -8) {
            padded.append(UInt8(truncatingIfNeeded: bitLength >> UInt64(shift)))
        }
        var w = [UInt32](repeating: 0, count: 80)
        for chunk in stride(from: 0, to: padded.count, by: 64) {
            for i in 0..<16 {
                let j = chunk + i * 4
                w[i] = UInt32(padded[j]) << 24 | UInt32(padded[j + 1]) << 16 | UInt32(padded[j + 2]) << 8 | UInt32(padded[j + 3])
            }
            for i in 16..<80 {
                w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotatedLeft(1)
            }
            var (a, b, c, d, e) = h
            for i in 0..<80 {
                let f: UInt32
                let k: UInt32
                switch i {
                case 0..<20: f = (b & c) | (~b & d); k = 0x5A82_7999
                case 20..<40: f = b ^ c ^ d; k = 0x6ED9_EBA1
                case 40..<60: f = (b & c) | (b & d) | (c & d); k = 0x8F1B_BCDC
                default: f = b ^ c ^ d; k = 0xCA62_C1D6
                }
                let temp = a.rotatedLeft(5) &+ f &+ e &+ k &+ w[i]
                e = d
                d = c
                c = b.rotatedLeft(30)
                b = a
                a = temp
            }
            h = (h.0 &+ a, h.1 &+ b, h.2 &+ c, h.3 &+ d, h.4 &+ e)
        }
        var out: [UInt8] = []
        out.reserveCapacity(20)
        for word in [h.0, h.1, h.2, h.3, h.4] {
            out.append(UInt8(truncatingIfNeeded: word >> 24))
            out.append(UInt8(truncatingIfNeeded: word >> 16))
            out.append(UInt8(truncatingIfNeeded: word >> 8))
            out.append(UInt8(truncatingIfNeeded: word))
        }
        return out
    }
}

extension UInt32 {
    fileprivate func rotatedLeft(_ n: UInt32) -> UInt32 { (self << n) | (self >> (32 - n)) }
}
