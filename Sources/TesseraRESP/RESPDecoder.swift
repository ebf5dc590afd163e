import NIOCore

/// Bounds that keep a hostile or broken server from making the client allocate without limit.
public struct RESPDecoderLimits: Sendable, Hashable {
    /// Largest bulk string / bulk error / verbatim string accepted (Redis' own proto-max-bulk-len).
    public var maximumBulkLength: Int
    /// Largest element count of one array, set, push, map (pairs) or attribute (pairs).
    public var maximumAggregateCount: Int
    /// Deepest nesting of aggregates (also bounds the decoder's recursion).
    public var maximumDepth: Int
    /// Longest header or simple string/error/number line, CRLF excluded.
    public var maximumLineLength: Int

    public init(
        maximumBulkLength: Int = 512 * 1024 * 1024,
        maximumAggregateCount: Int = 1 << 24,
        maximumDepth: Int = 64,
        maximumLineLength: Int = 1024 * 1024
    ) {
        self.maximumBulkLength = maximumBulkLength
        self.maximumAggregateCount = maximumAggregateCount
        self.maximumDepth = min(maximumDepth, 1024)
        self.maximumLineLength = maximumLineLength
    }
}

/// Streaming RESP2/RESP3 decoder.
///
/// Decoding is two-phase so that a large reply arriving in many reads costs linear time: a
/// resumable scan first walks frame headers and remembers how far it got (without building any
/// values), and only once a whole frame is buffered is it parsed into a `RESPValue`.
/// The scan enforces every limit, so nothing is ever allocated from an unchecked length.
public struct RESPValueDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = RESPValue

    public let limits: RESPDecoderLimits
    /// Bytes (from the buffer's reader index) made of already complete elements.
    private var scannedBytes = 0
    /// Elements still expected by each open aggregate, outermost first.
    private var pendingCounts: [Int] = []

    public init(limits: RESPDecoderLimits = RESPDecoderLimits()) {
        self.limits = limits
    }

    public mutating func decode(buffer: inout ByteBuffer) throws -> RESPValue? {
        guard try self.scan(buffer) else { return nil }
        let length = self.scannedBytes
        self.scannedBytes = 0
        self.pendingCounts.removeAll(keepingCapacity: true)
        var frame = buffer.readSlice(length: length)!
        let value = try Self.parseValue(&frame, depth: 0)
        guard frame.readableBytes == 0 else {
            throw RedisError.protocolError("trailing bytes after a RESP frame")
        }
        return value
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> RESPValue? {
        // A partial frame at EOF is dropped: the connection is going away and its pending
        // commands are failed as "connection closed" by the handler.
        try self.decode(buffer: &buffer)
    }

    // MARK: - Phase 1: resumable scan

    private static let cr = UInt8(ascii: "\r")
    private static let lf = UInt8(ascii: "\n")

    /// Returns true when a complete frame of `scannedBytes` bytes is buffered.
    private mutating func scan(_ buffer: ByteBuffer) throws -> Bool {
        let limits = self.limits
        var offset = self.scannedBytes
        var pending = self.pendingCounts
        defer {
            self.scannedBytes = offset
            self.pendingCounts = pending
        }
        return try buffer.withUnsafeReadableBytes { bytes -> Bool in
            while true {
                guard offset < bytes.count else { return false }
                let type = bytes[offset]
                guard let lineEnd = try Self.findCRLF(bytes, from: offset + 1, limit: limits.maximumLineLength) else {
                    return false
                }
                let line = UnsafeRawBufferPointer(rebasing: bytes[(offset + 1)..<lineEnd])
                var next = lineEnd + 2
                var opened = 0
                switch type {
                case UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: ":"), UInt8(ascii: "_"),
                    UInt8(ascii: ","), UInt8(ascii: "#"), UInt8(ascii: "("):
                    break
                case UInt8(ascii: "$"), UInt8(ascii: "!"), UInt8(ascii: "="):
                    let length = try Self.parseLength(line)
                    if length == -1 && type == UInt8(ascii: "$") { break }
                    guard length >= 0 else { throw RedisError.protocolError("negative bulk length \(length)") }
                    guard length <= limits.maximumBulkLength else {
                        throw RedisError.protocolError(
                            "bulk length \(length) exceeds the limit of \(limits.maximumBulkLength)"
                        )
                    }
                    guard bytes.count - next >= length + 2 else { return false }
                    guard bytes[next + length] == Self.cr, bytes[next + length + 1] == Self.lf else {
                        throw RedisError.protocolError("bulk string not terminated by CRLF")
                    }
                    next += length + 2
                case UInt8(ascii: "*"), UInt8(ascii: "~"), UInt8(ascii: ">"), UInt8(ascii: "%"), UInt8(ascii: "|"):
                    let count = try Self.parseLength(line)
                    if count == -1 && type == UInt8(ascii: "*") { break }
                    guard count >= 0 else { throw RedisError.protocolError("negative aggregate length \(count)") }
                    guard count <= limits.maximumAggregateCount else {
                        throw RedisError.protocolError(
                            "aggregate of \(count) elements exceeds the limit of \(limits.maximumAggregateCount)"
                        )
                    }
                    switch type {
                    case UInt8(ascii: "%"): opened = count * 2
                    // An attribute is followed by the value it decorates: one more element.
                    case UInt8(ascii: "|"): opened = count * 2 + 1
                    default: opened = count
                    }
                default:
                    throw RedisError.protocolError("unknown RESP type byte 0x\(String(type, radix: 16))")
                }
                offset = next
                if opened > 0 {
                    pending.append(opened)
                    guard pending.count <= limits.maximumDepth else {
                        throw RedisError.protocolError("nesting deeper than \(limits.maximumDepth)")
                    }
                    continue
                }
                // One element completed; it may complete its parents in turn.
                while !pending.isEmpty {
                    pending[pending.count - 1] -= 1
                    if pending[pending.count - 1] > 0 { break }
                    pending.removeLast()
                }
                if pending.isEmpty { return true }
            }
        }
    }

    /// Index of the CR of the CRLF ending the line that starts at `start`, nil if not buffered yet.
    private static func findCRLF(_ bytes: UnsafeRawBufferPointer, from start: Int, limit: Int) throws -> Int? {
        let end = min(bytes.count, start + limit + 1)
        var i = start
        while i < end {
            if bytes[i] == cr {
                guard i + 1 < bytes.count else { return nil }
                guard bytes[i + 1] == lf else { throw RedisError.protocolError("CR not followed by LF") }
                return i
            }
            if bytes[i] == lf { throw RedisError.protocolError("LF without CR") }
            i += 1
        }
        if end - start > limit {
            throw RedisError.protocolError("line longer than \(limit) bytes")
        }
        return nil
    }

    /// Strict decimal length: optional '-', 1...19 digits, nothing else.
    private static func parseLength(_ line: UnsafeRawBufferPointer) throws -> Int {
        guard let value = parseInt64(line) else {
            if line.first == UInt8(ascii: "?") {
                throw RedisError.protocolError("streamed RESP3 aggregates are not supported")
            }
            throw RedisError.protocolError("invalid length '\(String(decoding: line.prefix(32), as: UTF8.self))'")
        }
        return Int(value)
    }

    private static func parseInt64(_ line: UnsafeRawBufferPointer) -> Int64? {
        var index = 0
        var negative = false
        if let first = line.first, first == UInt8(ascii: "-") || first == UInt8(ascii: "+") {
            negative = first == UInt8(ascii: "-")
            index = 1
        }
        guard index < line.count, line.count - index <= 19 else { return nil }
        var value: Int64 = 0
        while index < line.count {
            let c = line[index]
            guard c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") else { return nil }
            let digit = Int64(c - UInt8(ascii: "0"))
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            // Accumulate negatively so that Int64.min is representable.
            let (s, o2) = negative ? m.subtractingReportingOverflow(digit) : m.addingReportingOverflow(digit)
            guard !o1, !o2 else { return nil }
            value = s
            index += 1
        }
        return value
    }

    // MARK: - Phase 2: parse a complete frame

    private static func readLine(_ buffer: inout ByteBuffer) throws -> ByteBuffer {
        guard let cr = buffer.readableBytesView.firstIndex(of: Self.cr),
            let line = buffer.readSlice(length: cr - buffer.readerIndex),
            buffer.readInteger(as: UInt16.self) == 0x0D0A
        else { throw RedisError.protocolError("truncated RESP line") }
        return line
    }

    private static func text(_ line: ByteBuffer) -> String {
        String(decoding: line.readableBytesView, as: UTF8.self)
    }

    private static func readBulk(_ buffer: inout ByteBuffer, length: Int) throws -> ByteBuffer {
        guard let payload = buffer.readSlice(length: length), buffer.readInteger(as: UInt16.self) == 0x0D0A else {
            throw RedisError.protocolError("truncated bulk string")
        }
        return payload
    }

    private static func length(_ line: ByteBuffer) throws -> Int {
        try line.withUnsafeReadableBytes { try parseLength($0) }
    }

    private static func parseValue(_ buffer: inout ByteBuffer, depth: Int) throws -> RESPValue {
        guard let type = buffer.readInteger(as: UInt8.self) else {
            throw RedisError.protocolError("truncated RESP frame")
        }
        let line = try readLine(&buffer)
        switch type {
        case UInt8(ascii: "+"):
            return .simpleString(text(line))
        case UInt8(ascii: "-"):
            return .simpleError(text(line))
        case UInt8(ascii: ":"):
            guard let value = line.withUnsafeReadableBytes({ parseInt64($0) }) else {
                throw RedisError.protocolError("invalid integer '\(text(line).prefix(32))'")
            }
            return .integer(value)
        case UInt8(ascii: "_"):
            guard line.readableBytes == 0 else { throw RedisError.protocolError("null with a payload") }
            return .null
        case UInt8(ascii: ","):
            let s = text(line)
            guard let value = parseDouble(s) else {
                throw RedisError.protocolError("invalid double '\(s.prefix(32))'")
            }
            return .double(value)
        case UInt8(ascii: "#"):
            switch text(line) {
            case "t": return .boolean(true)
            case "f": return .boolean(false)
            default: throw RedisError.protocolError("invalid boolean")
            }
        case UInt8(ascii: "("):
            let s = text(line)
            let digits = s.first == "-" || s.first == "+" ? s.dropFirst() : Substring(s)
            guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
            else { throw RedisError.protocolError("invalid big number") }
            return .bigNumber(s)
        case UInt8(ascii: "$"):
            let n = try length(line)
            if n == -1 { return .null }
            return .bulkString(try readBulk(&buffer, length: n))
        case UInt8(ascii: "!"):
            return .bulkError(text(try readBulk(&buffer, length: try length(line))))
        case UInt8(ascii: "="):
            var payload = try readBulk(&buffer, length: try length(line))
            guard payload.readableBytes >= 4, payload.getInteger(at: payload.readerIndex + 3, as: UInt8.self) == UInt8(ascii: ":"),
                let format = payload.readString(length: 3)
            else { throw RedisError.protocolError("verbatim string without a format prefix") }
            payload.moveReaderIndex(forwardBy: 1)
            return .verbatimString(format: format, text: payload)
        case UInt8(ascii: "*"), UInt8(ascii: "~"), UInt8(ascii: ">"):
            let n = try length(line)
            if n == -1 { return .null }
            var elements: [RESPValue] = []
            // Never trust the declared count for allocation beyond what was actually buffered.
            elements.reserveCapacity(min(n, buffer.readableBytes / 3))
            for _ in 0..<n { elements.append(try parseValue(&buffer, depth: depth + 1)) }
            switch type {
            case UInt8(ascii: "~"): return .set(elements)
            case UInt8(ascii: ">"): return .push(elements)
            default: return .array(elements)
            }
        case UInt8(ascii: "%"):
            return .map(try parsePairs(&buffer, count: try length(line), depth: depth))
        case UInt8(ascii: "|"):
            let attributes = try parsePairs(&buffer, count: try length(line), depth: depth)
            let value = try parseValue(&buffer, depth: depth + 1)
            return .attributed(attributes: attributes, value: value)
        default:
            throw RedisError.protocolError("unknown RESP type byte 0x\(String(type, radix: 16))")
        }
    }

    private static func parsePairs(_ buffer: inout ByteBuffer, count: Int, depth: Int) throws -> [RESPValue: RESPValue] {
        var result: [RESPValue: RESPValue] = [:]
        result.reserveCapacity(min(count, buffer.readableBytes / 6))
        for _ in 0..<count {
            let key = try parseValue(&buffer, depth: depth + 1)
            result[key] = try parseValue(&buffer, depth: depth + 1)
        }
        return result
    }

    /// Redis writes "inf", "-inf" and "nan"; everything else is an ordinary decimal.
    private static func parseDouble(_ s: String) -> Double? {
        switch s {
        case "inf", "+inf": return .infinity
        case "-inf": return -.infinity
        case "nan", "-nan": return .nan
        default:
            // Reject Swift-only spellings ("infinity", hex floats) the protocol does not use.
            guard !s.isEmpty, s.utf8.allSatisfy({ c in
                (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || c == UInt8(ascii: "-") || c == UInt8(ascii: "+")
                    || c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E")
            }) else { return nil }
            return Double(s)
        }
    }
}
