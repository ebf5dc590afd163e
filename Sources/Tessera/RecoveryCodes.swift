import Foundation

/// MFA recovery codes: 10 per user, each 80 bits from the CSPRNG, shown once as
/// `xxxx-xxxx-xxxx-xxxx` (an alphabet without 0/o and 1/l). The store keeps only
/// SHA-256(`recovery|<user id>|<code>`): bound to its user, and 80 bits cannot be searched
/// offline. Each code works once, at `mfa/verify` in place of a TOTP code.
enum RecoveryCodes {
    static let count = 10
    private static let alphabet = Array("abcdefghijkmnpqrstuvwxyz23456789".utf8)
    private static let length = 16

    static func generate() -> [String] {
        (0..<count).map { _ in
            let characters = SecureRandom.bytes(length).map { alphabet[Int($0 & 31)] }
            return stride(from: 0, to: length, by: 4).map { String(decoding: characters[$0..<$0 + 4], as: UTF8.self) }
                .joined(separator: "-")
        }
    }

    /// The stored form of a code as typed (case, dashes and spaces do not matter); nil when it
    /// cannot be a recovery code.
    static func hash(_ typed: String, userID: String) -> String? {
        guard typed.utf8.count <= 64 else { return nil }
        let compact = typed.utf8.filter { $0 != 0x2D && $0 != 0x20 }.map { $0 >= 0x41 && $0 <= 0x5A ? $0 + 0x20 : $0 }
        guard compact.count == length, compact.allSatisfy(alphabet.contains) else { return nil }
        return TokenHash.hex("recovery|\(userID)|\(String(decoding: compact, as: UTF8.self))")
    }
}
