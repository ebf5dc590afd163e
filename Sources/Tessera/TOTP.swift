import Crypto
import Foundation

/// RFC 6238 time-based one-time passwords: HMAC-SHA-1, 6 digits, 30-second steps — the
/// parameters every authenticator app assumes. Written here on swift-crypto so that the core
/// module links no HTTP server.
///
/// The HMAC key is the bytes of `secret`; authenticator apps are given those bytes in base32.
struct TOTP: Sendable {
    let key: [UInt8]
    let digits: Int
    let period: Int64

    init(key: [UInt8], digits: Int = 6, period: Int64 = 30) {
        precondition((6...8).contains(digits) && period > 0)
        self.key = key
        self.digits = digits
        self.period = period
    }

    init(secret: String) { self.init(key: Array(secret.utf8)) }

    /// The step a Unix time falls in.
    func step(at unixTime: Int64) -> Int64 { unixTime >= 0 ? unixTime / period : (unixTime - period + 1) / period }

    /// The code for one step (RFC 4226 §5.3 dynamic truncation).
    func code(step: Int64) -> Int {
        var counter = UInt64(bitPattern: step).bigEndian
        let message = withUnsafeBytes(of: &counter) { Array($0) }
        let mac = Array(HMAC<Insecure.SHA1>.authenticationCode(for: message, using: SymmetricKey(data: key)))
        let offset = Int(mac[mac.count - 1] & 0x0F)
        let value = (Int(mac[offset] & 0x7F) << 24) | (Int(mac[offset + 1]) << 16) | (Int(mac[offset + 2]) << 8) | Int(mac[offset + 3])
        var modulus = 1
        for _ in 0..<digits { modulus *= 10 }
        return value % modulus
    }

    /// The code for one step as the user types it, zero-padded to `digits`.
    func codeString(step: Int64) -> String {
        let digitsText = String(code(step: step))
        return String(repeating: "0", count: max(0, digits - digitsText.utf8.count)) + digitsText
    }

    /// `otpauth://totp/<label>?secret=<base32>&issuer=<issuer>` (the Key URI format apps scan).
    func authenticatorURL(label: String, issuer: String) -> String {
        "otpauth://totp/\(Self.percentEncoded(label))?secret=\(Base32.encode(key))&issuer=\(Self.percentEncoded(issuer))"
            + (digits == 6 ? "" : "&digits=\(digits)") + (period == 30 ? "" : "&period=\(period)")
    }

    /// RFC 3986 percent-encoding of everything but the unreserved characters.
    static func percentEncoded(_ text: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var output: [UInt8] = []
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                output.append(byte)
            default:
                output += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]]
            }
        }
        return String(decoding: output, as: UTF8.self)
    }
}

/// RFC 4648 base32 without padding, as authenticator apps take secrets.
enum Base32 {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".utf8)

    static func encode(_ bytes: some Sequence<UInt8>) -> String {
        var output: [UInt8] = []
        var buffer = 0
        var bits = 0
        for byte in bytes {
            buffer = ((buffer << 8) | Int(byte)) & 0xFFFF
            bits += 8
            while bits >= 5 {
                output.append(alphabet[(buffer >> (bits - 5)) & 31])
                bits -= 5
            }
        }
        if bits > 0 { output.append(alphabet[(buffer << (5 - bits)) & 31]) }
        return String(decoding: output, as: UTF8.self)
    }
}
