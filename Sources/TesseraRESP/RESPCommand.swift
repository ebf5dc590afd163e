import NIOCore

/// One argument of a command. Redis commands are arrays of binary-safe bulk strings, so every
/// argument is just bytes; the initialisers spell out how numbers are rendered.
public struct RESPArgument: Sendable, Hashable {
    public var bytes: ByteBuffer

    public init(_ bytes: ByteBuffer) { self.bytes = bytes }
    public init(_ string: String) { self.bytes = ByteBuffer(string: string) }
    public init(_ substring: Substring) { self.bytes = ByteBuffer(substring: substring) }
    public init(_ bytes: [UInt8]) { self.bytes = ByteBuffer(bytes: bytes) }
    public init<I: BinaryInteger>(_ value: I) { self.bytes = ByteBuffer(string: String(value)) }
    /// Uses Swift's shortest round-tripping form, which Redis parses back exactly.
    public init(_ value: Double) {
        if value == .infinity {
            self.bytes = ByteBuffer(string: "+inf")
        } else if value == -.infinity {
            self.bytes = ByteBuffer(string: "-inf")
        } else {
            self.bytes = ByteBuffer(string: String(value))
        }
    }
}

extension RESPArgument: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByStringInterpolation {
    public init(stringLiteral value: String) { self.init(value) }
    public init(integerLiteral value: Int) { self.init(value) }
}

extension RESPArgument: CustomStringConvertible {
    public var description: String { String(decoding: self.bytes.readableBytesView, as: UTF8.self) }
}

/// Writes commands in the request format Redis expects: `*N` then N `$len` bulk strings.
public enum RESPCommandEncoder {
    public static func encode(_ command: [RESPArgument], into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: "*"))
        writeDecimal(command.count, into: &buffer)
        for argument in command {
            buffer.writeInteger(UInt8(ascii: "$"))
            writeDecimal(argument.bytes.readableBytes, into: &buffer)
            var bytes = argument.bytes
            buffer.writeBuffer(&bytes)
            buffer.writeStaticString("\r\n")
        }
    }

    public static func encode(_ command: [RESPArgument], allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: encodedSizeEstimate(command))
        encode(command, into: &buffer)
        return buffer
    }

    static func encodedSizeEstimate(_ command: [RESPArgument]) -> Int {
        command.reduce(16) { $0 + $1.bytes.readableBytes + 16 }
    }

    private static func writeDecimal(_ value: Int, into buffer: inout ByteBuffer) {
        buffer.writeString(String(value))
        buffer.writeStaticString("\r\n")
    }
}
