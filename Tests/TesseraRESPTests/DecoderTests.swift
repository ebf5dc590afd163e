import NIOCore
import Testing

@testable import TesseraRESP

/// Feeds bytes through the same processor the channel pipeline uses.
func decode(_ chunks: [[UInt8]], limits: RESPDecoderLimits = RESPDecoderLimits()) throws -> [RESPValue] {
    let processor = NIOSingleStepByteToMessageProcessor(RESPValueDecoder(limits: limits))
    var values: [RESPValue] = []
    for chunk in chunks {
        try processor.process(buffer: ByteBuffer(bytes: chunk)) { values.append($0) }
    }
    return values
}

func decodeWhole(_ text: String, limits: RESPDecoderLimits = RESPDecoderLimits()) throws -> [RESPValue] {
    try decode([Array(text.utf8)], limits: limits)
}

func decodeByteByByte(_ bytes: [UInt8], limits: RESPDecoderLimits = RESPDecoderLimits()) throws -> [RESPValue] {
    try decode(bytes.map { [$0] }, limits: limits)
}

func bulk(_ s: String) -> RESPValue { .bulkString(ByteBuffer(string: s)) }

@Suite("RESP decoder")
struct DecoderTests {
    static let frames: [(String, RESPValue)] = [
        ("+OK\r\n", .simpleString("OK")),
        ("+\r\n", .simpleString("")),
        ("-ERR unknown command\r\n", .simpleError("ERR unknown command")),
        (":0\r\n", .integer(0)),
        (":-42\r\n", .integer(-42)),
        (":+7\r\n", .integer(7)),
        (":9223372036854775807\r\n", .integer(.max)),
        (":-9223372036854775808\r\n", .integer(.min)),
        ("$5\r\nhello\r\n", bulk("hello")),
        ("$0\r\n\r\n", bulk("")),
        ("$4\r\na\r\nb\r\n", bulk("a\r\nb")),
        ("$-1\r\n", .null),
        ("*-1\r\n", .null),
        ("_\r\n", .null),
        (",3.25\r\n", .double(3.25)),
        (",-1.5e10\r\n", .double(-1.5e10)),
        (",10\r\n", .double(10)),
        (",inf\r\n", .double(.infinity)),
        (",-inf\r\n", .double(-.infinity)),
        ("#t\r\n", .boolean(true)),
        ("#f\r\n", .boolean(false)),
        ("(3492890328409238509324850943850943825024385\r\n", .bigNumber("3492890328409238509324850943850943825024385")),
        ("(-12\r\n", .bigNumber("-12")),
        ("!21\r\nSYNTAX invalid syntax\r\n", .bulkError("SYNTAX invalid syntax")),
        ("=15\r\ntxt:Some string\r\n", .verbatimString(format: "txt", text: ByteBuffer(string: "Some string"))),
        ("=4\r\nmkd:\r\n", .verbatimString(format: "mkd", text: ByteBuffer())),
        ("*0\r\n", .array([])),
        ("*3\r\n:1\r\n$1\r\na\r\n*0\r\n", .array([.integer(1), bulk("a"), .array([])])),
        ("*2\r\n$-1\r\n*-1\r\n", .array([.null, .null])),
        ("%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n", .map([.simpleString("first"): .integer(1), .simpleString("second"): .integer(2)])),
        ("%0\r\n", .map([:])),
        ("~2\r\n+a\r\n+b\r\n", .set([.simpleString("a"), .simpleString("b")])),
        (">3\r\n+message\r\n+chan\r\n$3\r\nhey\r\n", .push([.simpleString("message"), .simpleString("chan"), bulk("hey")])),
        (
            "|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.5\r\n*1\r\n:1\r\n",
            .attributed(
                attributes: [.simpleString("key-popularity"): .map([bulk("a"): .double(0.5)])],
                value: .array([.integer(1)])
            )
        ),
        ("|0\r\n:5\r\n", .attributed(attributes: [:], value: .integer(5))),
        (
            "*2\r\n*1\r\n%1\r\n+k\r\n~1\r\n_\r\n#t\r\n",
            .array([.array([.map([.simpleString("k"): .set([.null])])]), .boolean(true)])
        ),
        ("*2\r\n|1\r\n+a\r\n+b\r\n:1\r\n:2\r\n", .array([.attributed(attributes: [.simpleString("a"): .simpleString("b")], value: .integer(1)), .integer(2)])),
    ]

    @Test("every RESP3 type, whole, byte by byte, and all frames as one stream")
    func everyType() throws {
        for (text, expected) in Self.frames {
            #expect(try decodeWhole(text) == [expected], "\(text.debugDescription)")
            #expect(try decodeByteByByte(Array(text.utf8)) == [expected], "\(text.debugDescription)")
        }
        let stream = Self.frames.map(\.0).joined()
        #expect(try decodeWhole(stream) == Self.frames.map(\.1))
        #expect(try decodeByteByByte(Array(stream.utf8)) == Self.frames.map(\.1))
    }

    @Test("nan decodes to a NaN double")
    func nan() throws {
        let values = try decodeWhole(",nan\r\n")
        guard case .double(let d) = values.first else {
            Issue.record("expected a double, got \(values)")
            return
        }
        #expect(d.isNaN)
    }

    @Test("incomplete frames produce nothing and no error")
    func incomplete() throws {
        for (text, _) in Self.frames {
            let bytes = Array(text.utf8)
            for cut in 0..<bytes.count {
                #expect(try decode([Array(bytes[0..<cut])]).isEmpty, "\(text.debugDescription) cut at \(cut)")
            }
        }
    }

    static let malformed: [String] = [
        "?\r\n", "x\r\n", ":abc\r\n", ":\r\n", ":-\r\n", ":1 2\r\n", ":99999999999999999999\r\n",
        ":9223372036854775808\r\n", "$abc\r\n", "$-2\r\n", "$\r\n", "$3\r\nabcd\r\n", 
        "#x\r\n", "#\r\n", ",\r\n", ",abc\r\n", ",infinity\r\n", ",0x10\r\n", "_x\r\n",
        "=2\r\nab\r\n", "=5\r\nabcde\r\n", "+OK\rX", "+OK\n", "*-2\r\n", "$?\r\n", "*?\r\n",
        "(12a\r\n", "(\r\n", "%-1\r\n", "~-1\r\n", ">-1\r\n", "!-1\r\n", "*1\r\n?\r\n",
    ]

    @Test("malformed input is rejected with a protocol error")
    func malformedInput() {
        for text in Self.malformed {
            #expect(throws: RedisError.self, "\(text.debugDescription)") { try decodeWhole(text) }
            do {
                _ = try decodeWhole(text)
            } catch let error as RedisError {
                guard case .protocolError = error else {
                    Issue.record("\(text.debugDescription): \(error)")
                    continue
                }
            } catch {
                Issue.record("\(text.debugDescription): unexpected \(error)")
            }
        }
    }

    @Test("limits: bulk length, aggregate count, depth and line length are enforced before buffering")
    func limits() throws {
        let limits = RESPDecoderLimits(maximumBulkLength: 100, maximumAggregateCount: 10, maximumDepth: 5, maximumLineLength: 50)
        // Rejected from the header alone: nothing of the claimed payload needs to arrive.
        #expect(throws: RedisError.self) { try decodeWhole("$101\r\n", limits: limits) }
        #expect(throws: RedisError.self) { try decodeWhole("!101\r\n", limits: limits) }
        #expect(throws: RedisError.self) { try decodeWhole("$536870913\r\n") }  // default 512 MiB
        #expect(throws: RedisError.self) { try decodeWhole("*11\r\n", limits: limits) }
        #expect(throws: RedisError.self) { try decodeWhole("%11\r\n", limits: limits) }
        #expect(throws: RedisError.self) { try decodeWhole("*9223372036854775807\r\n") }
        #expect(throws: RedisError.self) { try decodeWhole(String(repeating: "*1\r\n", count: 6), limits: limits) }
        #expect(throws: RedisError.self) { try decodeWhole(String(repeating: "*1\r\n", count: 1000)) }
        // A line with no CRLF cannot grow past the limit.
        #expect(throws: RedisError.self) { try decodeWhole("+" + String(repeating: "a", count: 60), limits: limits) }
        #expect(throws: RedisError.self) { try decodeByteByByte(Array(("-" + String(repeating: "a", count: 60)).utf8), limits: limits) }
        // Right at the limits is fine.
        let atLimit = "$100\r\n" + String(repeating: "x", count: 100) + "\r\n"
        #expect(try decodeWhole(atLimit, limits: limits) == [bulk(String(repeating: "x", count: 100))])
        #expect(try decodeWhole(String(repeating: "*1\r\n", count: 5) + ":1\r\n", limits: limits).count == 1)
    }

    @Test("a large reply arriving in small reads decodes (linear scan, no quadratic rebuild)")
    func largeReplyInChunks() throws {
        var text = "*20000\r\n"
        for i in 0..<20000 { text += "$\(String(i).utf8.count)\r\n\(i)\r\n" }
        let bytes = Array(text.utf8)
        let chunks = stride(from: 0, to: bytes.count, by: 97).map { Array(bytes[$0..<min($0 + 97, bytes.count)]) }
        let values = try decode(chunks)
        #expect(values.count == 1)
        #expect(values.first?.array?.count == 20000)
        #expect(values.first?.array?.last == bulk("19999"))
    }

    @Test("command encoding is an array of bulk strings")
    func encoder() {
        let buffer = RESPCommandEncoder.encode(["SET", "key", RESPArgument(ByteBuffer(bytes: [0, 13, 10])), 42, RESPArgument(1.5)])
        #expect(String(decoding: buffer.readableBytesView, as: UTF8.self) == "*5\r\n$3\r\nSET\r\n$3\r\nkey\r\n$3\r\n\0\r\n\r\n$2\r\n42\r\n$3\r\n1.5\r\n")
    }

    @Test("accessors")
    func accessors() {
        #expect(bulk("12").int == 12)
        #expect(RESPValue.integer(3).int == 3)
        #expect(bulk("2.5").double == 2.5)
        #expect(RESPValue.simpleString("OK").string == "OK")
        #expect(RESPValue.null.isNull)
        #expect(RESPValue.integer(1).bool == true)
        let flat: RESPValue = .array([bulk("a"), bulk("1"), bulk("b"), bulk("2")])
        #expect(flat.stringMap == ["a": bulk("1"), "b": bulk("2")])
        #expect(RESPValue.attributed(attributes: [:], value: bulk("x")).string == "x")
        #expect(RESPValue.set([.integer(1)]).array == [.integer(1)])
        #expect(RESPValue.bulkString(ByteBuffer(bytes: [0xFF, 0xFE])).string == nil)
    }

    @Test("server error replies are parsed by prefix")
    func errorParsing() {
        #expect(RedisError(serverMessage: "ERR unknown command 'FOO'") == .err(message: "unknown command 'FOO'"))
        #expect(RedisError(serverMessage: "WRONGTYPE Operation against a key") == .wrongType(message: "Operation against a key"))
        #expect(RedisError(serverMessage: "NOSCRIPT No matching script.") == .noScript(message: "No matching script."))
        #expect(RedisError(serverMessage: "LOADING Redis is loading") == .loading(message: "Redis is loading"))
        #expect(RedisError(serverMessage: "NOAUTH Authentication required.") == .authentication(code: "NOAUTH", message: "Authentication required."))
        #expect(RedisError(serverMessage: "WRONGPASS invalid username-password pair") == .authentication(code: "WRONGPASS", message: "invalid username-password pair"))
        #expect(RedisError(serverMessage: "READONLY You can't write") == .readOnly(message: "You can't write"))
        #expect(RedisError(serverMessage: "BUSY Redis is busy") == .busy(message: "Redis is busy"))
        #expect(RedisError(serverMessage: "MOVED 3999 127.0.0.1:6381") == .server(code: "MOVED", message: "3999 127.0.0.1:6381"))
        #expect(RedisError(serverMessage: "something lower case") == .server(code: "", message: "something lower case"))
        #expect(RedisError(serverMessage: "ERR x").isConnectionError == false)
        #expect(RedisError.timeout.isConnectionError)
        #expect(RedisError.connectionClosed.isConnectionError)
        #expect(RedisError.connectionFailed("x").isConnectionError)
        #expect(RedisError.poolAcquireTimeout.isConnectionError)
        #expect(RESPValue.bulkError("SYNTAX bad").error == .server(code: "SYNTAX", message: "bad"))
    }

    @Test("SHA-1 test vectors")
    func sha1() {
        #expect(SHA1.hexDigest([]) == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        #expect(SHA1.hexDigest(Array("abc".utf8)) == "a9993e364706816aba3e25717850c26c9cd0d89d")
        #expect(
            SHA1.hexDigest(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
                == "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        )
        #expect(SHA1.hexDigest([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)) == "34aa973cd4c4daa4f61eeb2bdbad27316534016f")
        #expect(RedisScript("return 1").sha1 == "e0e1f9fabfc9d4800c877a703b823ac0578ff8db")
    }
}
