import NIOCore
import Tessera

/// Writes a flat JSON object straight into a `ByteBuffer`, for the bodies every token request
/// answers with (`/me`, login, refresh): Foundation's `JSONEncoder` was 5.6% of the `/me`
/// profile. The output is byte for byte what the shared `JSONEncoder` (sorted keys, slashes
/// not escaped) writes for the same value, which `JSONObjectWriterTests` pins; callers add
/// members in sorted key order.
struct JSONObjectWriter {
    private(set) var buffer: ByteBuffer
    private var first = true

    init(capacity: Int = 256) {
        self.buffer = ByteBuffer()
        self.buffer.reserveCapacity(capacity)
        self.buffer.writeInteger(UInt8(ascii: "{"))
    }

    mutating func add(_ key: StaticString, _ value: String) {
        self.key(key)
        Self.writeString(value, into: &self.buffer)
    }

    mutating func add(_ key: StaticString, _ value: String?) {
        guard let value else { return }
        self.add(key, value)
    }

    mutating func add(_ key: StaticString, _ value: Int) {
        self.key(key)
        self.buffer.writeString(String(value))
    }

    mutating func add(_ key: StaticString, _ value: Bool) {
        self.key(key)
        if value { self.buffer.writeStaticString("true") } else { self.buffer.writeStaticString("false") }
    }

    /// A nested object written by `body`.
    mutating func add(_ key: StaticString, object body: (inout JSONObjectWriter) -> Void) {
        self.key(key)
        var nested = JSONObjectWriter(capacity: 128)
        body(&nested)
        var bytes = nested.finished()
        self.buffer.writeBuffer(&bytes)
    }

    /// The object, closed.
    func finished() -> ByteBuffer {
        var buffer = self.buffer
        buffer.writeInteger(UInt8(ascii: "}"))
        return buffer
    }

    private mutating func key(_ key: StaticString) {
        if !self.first { self.buffer.writeInteger(UInt8(ascii: ",")) }
        self.first = false
        self.buffer.writeInteger(UInt8(ascii: "\""))
        self.buffer.writeStaticString(key)
        self.buffer.writeStaticString("\":")
    }

    /// A JSON string as the shared `JSONEncoder` (slashes not escaped) writes it.
    static func writeString(_ value: String, into buffer: inout ByteBuffer) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(value.utf8.count + 2)
        JSONString.append(value, escapingSlashes: false, to: &bytes)
        buffer.writeBytes(bytes)
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
