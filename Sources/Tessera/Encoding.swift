import Foundation

/// Random bytes from the system CSPRNG (getrandom on Linux).
public enum SecureRandom {
    /// `count` bytes from the system CSPRNG, eight per draw: each draw of
    /// `SystemRandomNumberGenerator` is a system call (`getrandom`), so drawing per byte made a
    /// 12-byte request id cost 12 of them.
    public static func bytes(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        var output = [UInt8]()
        output.reserveCapacity(count)
        while output.count < count {
            var word = generator.next()
            for _ in 0..<min(8, count - output.count) {
                output.append(UInt8(truncatingIfNeeded: word))
                word >>= 8
            }
        }
        return output
    }

    /// A URL-safe identifier with `byteCount` bytes of entropy.
    public static func identifier(byteCount: Int = 16) -> String {
        Base64URL.encode(bytes(byteCount))
    }
}

/// base64url without padding (RFC 4648 §5), as JOSE uses it.
///
/// Byte-level (no Foundation string processing on the request path), and canonical: a decoder
/// accepts exactly the spelling the encoder produces. Unused low bits of the last character
/// must be zero and there is no padding, so a token has one spelling only (RFC 4648 §3.5).
public enum Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
    /// 0xFF marks a byte outside the alphabet.
    private static let values: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, byte) in alphabet.enumerated() { table[Int(byte)] = UInt8(index) }
        return table
    }()

    public static func encode<D: DataProtocol>(_ data: D) -> String {
        let bytes = Array(data)
        var output = [UInt8]()
        output.reserveCapacity((bytes.count * 4 + 2) / 3)
        var index = 0
        while index + 3 <= bytes.count {
            let chunk = (UInt32(bytes[index]) << 16) | (UInt32(bytes[index + 1]) << 8) | UInt32(bytes[index + 2])
            output.append(alphabet[Int(chunk >> 18)])
            output.append(alphabet[Int((chunk >> 12) & 63)])
            output.append(alphabet[Int((chunk >> 6) & 63)])
            output.append(alphabet[Int(chunk & 63)])
            index += 3
        }
        switch bytes.count - index {
        case 1:
            let chunk = UInt32(bytes[index]) << 16
            output.append(alphabet[Int(chunk >> 18)])
            output.append(alphabet[Int((chunk >> 12) & 63)])
        case 2:
            let chunk = (UInt32(bytes[index]) << 16) | (UInt32(bytes[index + 1]) << 8)
            output.append(alphabet[Int(chunk >> 18)])
            output.append(alphabet[Int((chunk >> 12) & 63)])
            output.append(alphabet[Int((chunk >> 6) & 63)])
        default:
            break
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// The bytes, or nil for anything but the canonical unpadded spelling.
    public static func decode(_ string: some StringProtocol) -> Data? {
        decode(bytes: Array(string.utf8)).map { Data($0) }
    }

    public static func decode(bytes input: [UInt8]) -> [UInt8]? {
        let remainder = input.count % 4
        guard remainder != 1 else { return nil }
        var output = [UInt8]()
        output.reserveCapacity(input.count * 3 / 4)
        var index = 0
        while index + 4 <= input.count {
            let a = values[Int(input[index])], b = values[Int(input[index + 1])]
            let c = values[Int(input[index + 2])], d = values[Int(input[index + 3])]
            guard (a | b | c | d) & 0xC0 == 0 else { return nil }
            let chunk = (UInt32(a) << 18) | (UInt32(b) << 12) | (UInt32(c) << 6) | UInt32(d)
            output.append(UInt8(chunk >> 16))
            output.append(UInt8((chunk >> 8) & 0xFF))
            output.append(UInt8(chunk & 0xFF))
            index += 4
        }
        switch remainder {
        case 2:
            let a = values[Int(input[index])], b = values[Int(input[index + 1])]
            // The low 4 bits of the last character carry no data and must be zero.
            guard (a | b) & 0xC0 == 0, b & 0x0F == 0 else { return nil }
            output.append((a << 2) | (b >> 4))
        case 3:
            let a = values[Int(input[index])], b = values[Int(input[index + 1])], c = values[Int(input[index + 2])]
            guard (a | b | c) & 0xC0 == 0, c & 0x03 == 0 else { return nil }
            output.append((a << 2) | (b >> 4))
            output.append(((b & 0x0F) << 4) | (c >> 2))
        default:
            break
        }
        return output
    }
}
