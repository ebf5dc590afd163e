import Crypto
import Foundation
import HTTPTypes
import HummingbirdTesting
import Testing

/// RFC 6238 written out here, independently of the server's implementation: SHA-1, 6 digits,
/// 30-second steps, from the base32 secret an authenticator app would be given.
enum TestTOTP {
    static func code(secret base32: String, at date: Date) -> String {
        let key = SymmetricKey(data: decodeBase32(base32))
        let counter = UInt64(date.timeIntervalSince1970 / 30)
        let message = withUnsafeBytes(of: counter.bigEndian) { Data($0) }
        let mac = Array(HMAC<Insecure.SHA1>.authenticationCode(for: message, using: key))
        let offset = Int(mac[mac.count - 1] & 0x0F)
        let value = (UInt32(mac[offset] & 0x7F) << 24) | (UInt32(mac[offset + 1]) << 16) | (UInt32(mac[offset + 2]) << 8)
            | UInt32(mac[offset + 3])
        return String(format: "%06d", value % 1_000_000)
    }

    static func decodeBase32(_ text: String) -> [UInt8] {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        var bytes: [UInt8] = []
        var buffer = 0
        var bits = 0
        for character in text.uppercased() where character != "=" {
            guard let index = alphabet.firstIndex(of: character) else { continue }
            buffer = (buffer << 5) | index
            bits += 5
            if bits >= 8 {
                bytes.append(UInt8((buffer >> (bits - 8)) & 0xFF))
                bits -= 8
            }
        }
        return bytes
    }
}

extension TestClientProtocol {
    func login(_ email: String, _ password: String = "correct horse", device: String? = nil) async throws -> Reply {
        var body: [String: Any] = ["email": email, "password": password]
        if let device { body["device"] = device }
        return try await post("/v1/auth/login", body)
    }
}

/// The account messages written to an outbox directory, oldest first.
func outboxMessages(_ directory: String) -> [[String: Any]] {
    let files = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".json") }.sorted()
    return files.compactMap { name in
        guard let data = FileManager.default.contents(atPath: "\(directory)/\(name)") else { return nil }
        return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
    }
}

/// Messages are written in the background: wait (bounded) until `count` have arrived.
func waitForOutbox(_ directory: String, count: Int) async throws -> [[String: Any]] {
    for _ in 0..<200 {
        let messages = outboxMessages(directory)
        if messages.count >= count { return messages }
        try await Task.sleep(for: .milliseconds(25))
    }
    Issue.record("expected \(count) outbox messages in \(directory)")
    return outboxMessages(directory)
}

/// Waits (bounded) until the outbox holds a reset token other than `previous`; returns it.
func waitForToken(_ directory: String, other previous: String? = nil) async throws -> String {
    for _ in 0..<200 {
        let tokens = outboxMessages(directory).compactMap { $0["token"] as? String }
        if let token = tokens.last(where: { $0 != previous }) { return token }
        try await Task.sleep(for: .milliseconds(25))
    }
    Issue.record("expected a new reset token in \(directory)")
    return ""
}
