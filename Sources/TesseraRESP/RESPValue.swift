import NIOCore

/// One RESP2/RESP3 value as sent by the server.
///
/// Errors are values here (`.simpleError`, `.bulkError`) because a pipelined batch must be able
/// to carry a failed reply next to successful ones; `RESPConnection.send` turns them into
/// `RedisError` for the common single-command case.
public enum RESPValue: Sendable, Hashable {
    case simpleString(String)
    case simpleError(String)
    case integer(Int64)
    /// Binary-safe payload; kept as bytes so values that are not UTF-8 survive untouched.
    case bulkString(ByteBuffer)
    /// RESP3 `_`, and RESP2's `$-1` / `*-1`, which mean the same thing.
    case null
    case double(Double)
    case boolean(Bool)
    /// Kept as its decimal text: Swift has no arbitrary-precision integer to put it in.
    case bigNumber(String)
    case bulkError(String)
    case verbatimString(format: String, text: ByteBuffer)
    case array([RESPValue])
    /// Redis maps are unordered and their keys unique, so a dictionary loses nothing.
    case map([RESPValue: RESPValue])
    case set([RESPValue])
    /// Out-of-band data (RESP3 `>`): pub/sub messages, client-side caching invalidations.
    case push([RESPValue])
    /// A RESP3 attribute (`|`) together with the value it decorates. Accessors look through it.
    indirect case attributed(attributes: [RESPValue: RESPValue], value: RESPValue)
}

extension RESPValue {
    /// The value with any attribute wrapper removed.
    public var withoutAttributes: RESPValue {
        if case .attributed(_, let value) = self { return value.withoutAttributes }
        return self
    }

    public var isNull: Bool {
        if case .null = self.withoutAttributes { return true }
        return false
    }

    /// Text of a string-like reply (simple, bulk or verbatim string); nil for anything else
    /// or for bytes that are not valid UTF-8.
    public var string: String? {
        switch self.withoutAttributes {
        case .simpleString(let s): return s
        case .bulkString(let b): return String(validating: b.readableBytesView, as: UTF8.self)
        case .verbatimString(_, let b): return String(validating: b.readableBytesView, as: UTF8.self)
        case .bigNumber(let s): return s
        default: return nil
        }
    }

    /// Raw bytes of a string-like reply.
    public var bytes: ByteBuffer? {
        switch self.withoutAttributes {
        case .bulkString(let b), .verbatimString(_, let b): return b
        case .simpleString(let s), .bigNumber(let s): return ByteBuffer(string: s)
        default: return nil
        }
    }

    /// Integer replies, and string replies holding a decimal integer (RESP2 servers and Lua
    /// scripts often return numbers as bulk strings).
    public var int: Int? {
        switch self.withoutAttributes {
        case .integer(let i): return Int(exactly: i)
        case .bulkString, .simpleString, .bigNumber: return self.string.flatMap { Int($0) }
        default: return nil
        }
    }

    /// Double replies (RESP3 `,`), and numeric strings (what RESP2 returns for INCRBYFLOAT).
    public var double: Double? {
        switch self.withoutAttributes {
        case .double(let d): return d
        case .integer(let i): return Double(i)
        case .bulkString, .simpleString: return self.string.flatMap { Double($0) }
        default: return nil
        }
    }

    /// RESP3 booleans, and the 0/1 integers RESP2 uses in their place.
    public var bool: Bool? {
        switch self.withoutAttributes {
        case .boolean(let b): return b
        case .integer(0): return false
        case .integer(1): return true
        default: return nil
        }
    }

    /// Elements of an array, set or push.
    public var array: [RESPValue]? {
        switch self.withoutAttributes {
        case .array(let a), .set(let a), .push(let a): return a
        default: return nil
        }
    }

    /// A map reply, or a flat RESP2 array of alternating keys and values (HGETALL under RESP2).
    public var map: [RESPValue: RESPValue]? {
        switch self.withoutAttributes {
        case .map(let m): return m
        case .array(let a) where a.count % 2 == 0:
            var m: [RESPValue: RESPValue] = [:]
            m.reserveCapacity(a.count / 2)
            var i = 0
            while i < a.count {
                m[a[i]] = a[i + 1]
                i += 2
            }
            return m
        default: return nil
        }
    }

    /// A map reply keyed by string (the usual shape of HGETALL); nil when a key is not a string.
    public var stringMap: [String: RESPValue]? {
        guard let m = self.map else { return nil }
        var result: [String: RESPValue] = [:]
        result.reserveCapacity(m.count)
        for (k, v) in m {
            guard let key = k.string else { return nil }
            result[key] = v
        }
        return result
    }

    /// The server error carried by this value, if it is an error reply.
    public var error: RedisError? {
        switch self.withoutAttributes {
        case .simpleError(let s), .bulkError(let s): return RedisError(serverMessage: s)
        default: return nil
        }
    }

    /// Throws the carried server error, otherwise returns the value; handy on pipeline results.
    @discardableResult
    public func get() throws(RedisError) -> RESPValue {
        if let error = self.error { throw error }
        return self
    }
}

extension RESPValue: ExpressibleByStringLiteral {
    /// Mostly for tests: a string literal is a bulk string, as Redis would send a stored value.
    public init(stringLiteral value: String) {
        self = .bulkString(ByteBuffer(string: value))
    }
}

extension RESPValue: CustomStringConvertible {
    public var description: String {
        switch self {
        case .simpleString(let s): return "+\(s)"
        case .simpleError(let s): return "-\(s)"
        case .integer(let i): return ":\(i)"
        case .bulkString(let b):
            if let s = String(validating: b.readableBytesView, as: UTF8.self) { return "\"\(s)\"" }
            return "<\(b.readableBytes) bytes>"
        case .null: return "null"
        case .double(let d): return ",\(d)"
        case .boolean(let b): return b ? "#t" : "#f"
        case .bigNumber(let s): return "(\(s)"
        case .bulkError(let s): return "!\(s)"
        case .verbatimString(let f, let b): return "=\(f):\(String(decoding: b.readableBytesView, as: UTF8.self))"
        case .array(let a): return "[" + a.map(\.description).joined(separator: ", ") + "]"
        case .map(let m): return "{" + m.map { "\($0.key): \($0.value)" }.joined(separator: ", ") + "}"
        case .set(let a): return "~[" + a.map(\.description).joined(separator: ", ") + "]"
        case .push(let a): return ">[" + a.map(\.description).joined(separator: ", ") + "]"
        case .attributed(let attrs, let v): return "|\(RESPValue.map(attrs)) \(v)"
        }
    }
}
