import NIOCore
import Tessera

/// Writes a flat JSON object byte by byte, for the bodies every token request answers with
/// (`/me`, login, refresh): Foundation's `JSONEncoder` was 5.6% of the `/me` profile. The
/// output is byte for byte what the shared `JSONEncoder` (sorted keys, slashes not escaped)
/// writes for the same value, which `JSONObjectWriterTests` pins; callers add members in sorted
/// key order.
struct JSONObjectWriter {
    private var bytes: [UInt8]
    private var first = true

    init(capacity: Int = 256) {
        self.bytes = []
        self.bytes.reserveCapacity(capacity)
        self.bytes.append(UInt8(ascii: "{"))
    }

    mutating func add(_ key: StaticString, _ value: String) {
        self.key(key)
        JSONString.append(value, escapingSlashes: false, to: &self.bytes)
    }

    mutating func add(_ key: StaticString, _ value: String?) {
        guard let value else { return }
        self.add(key, value)
    }

    mutating func add(_ key: StaticString, _ value: Int) {
        self.key(key)
        self.bytes.append(contentsOf: String(value).utf8)
    }

    mutating func add(_ key: StaticString, _ value: Bool) {
        self.key(key)
        self.bytes.append(contentsOf: (value ? "true" : "false").utf8)
    }

    /// A nested object written by `body`, into the same bytes.
    mutating func add(_ key: StaticString, object body: (inout JSONObjectWriter) -> Void) {
        self.key(key)
        var nested = JSONObjectWriter(bytes: self.bytes)
        self.bytes = []
        body(&nested)
        nested.bytes.append(UInt8(ascii: "}"))
        self.bytes = nested.bytes
    }

    private init(bytes: [UInt8]) {
        self.bytes = bytes
        self.bytes.append(UInt8(ascii: "{"))
    }

    /// The object, closed.
    func finished() -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(self.bytes.count + 1)
        buffer.writeBytes(self.bytes)
        buffer.writeInteger(UInt8(ascii: "}"))
        return buffer
    }

    private mutating func key(_ key: StaticString) {
        if !self.first { self.bytes.append(UInt8(ascii: ",")) }
        self.first = false
        self.bytes.append(UInt8(ascii: "\""))
        key.withUTF8Buffer { self.bytes.append(contentsOf: $0) }
        self.bytes.append(contentsOf: "\":".utf8)
    }
}

/// A response body `JSONBody.response` writes with `JSONObjectWriter` instead of `JSONEncoder`.
protocol JSONObjectWritable: Encodable {
    func write(to writer: inout JSONObjectWriter)
}

extension UserResponse: JSONObjectWritable {
    func write(to writer: inout JSONObjectWriter) {
        writer.add("created_at", createdAt)
        writer.add("email", email)
        writer.add("id", id)
        writer.add("mfa_enabled", mfaEnabled)
    }
}

extension TokenResponse: JSONObjectWritable {
    func write(to writer: inout JSONObjectWriter) {
        writer.add("access_token", accessToken)
        writer.add("expires_in", expiresIn)
        writer.add("refresh_expires_in", refreshExpiresIn)
        writer.add("refresh_token", refreshToken)
        writer.add("session_id", sessionID)
        writer.add("token_type", tokenType)
        writer.add("user") { user.write(to: &$0) }
    }
}
