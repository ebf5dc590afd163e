import NIOCore
import Testing

@testable import TesseraRESP

/// Small deterministic generator so a failure can be replayed from its seed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { self.state = seed }
    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Writes a value the way a server would; kept independent from the decoder under test.
func encodeValue(_ value: RESPValue, into out: inout [UInt8]) {
    func line(_ prefix: Character, _ text: String) {
        out += Array(String(prefix).utf8) + Array(text.utf8) + [13, 10]
    }
    func blob(_ prefix: Character, _ bytes: [UInt8]) {
        line(prefix, String(bytes.count))
        out += bytes + [13, 10]
    }
    switch value {
    case .simpleString(let s): line("+", s)
    case .simpleError(let s): line("-", s)
    case .integer(let i): line(":", String(i))
    case .bulkString(let b): blob("$", Array(b.readableBytesView))
    case .null: line("_", "")
    case .double(let d): line(",", d == .infinity ? "inf" : d == -.infinity ? "-inf" : "\(d)")
    case .boolean(let b): line("#", b ? "t" : "f")
    case .bigNumber(let s): line("(", s)
    case .bulkError(let s): blob("!", Array(s.utf8))
    case .verbatimString(let format, let text): blob("=", Array(format.utf8) + [UInt8(ascii: ":")] + Array(text.readableBytesView))
    case .array(let a):
        line("*", String(a.count))
        a.forEach { encodeValue($0, into: &out) }
    case .set(let a):
        line("~", String(a.count))
        a.forEach { encodeValue($0, into: &out) }
    case .push(let a):
        line(">", String(a.count))
        a.forEach { encodeValue($0, into: &out) }
    case .map(let m):
        line("%", String(m.count))
        for (k, v) in m {
            encodeValue(k, into: &out)
            encodeValue(v, into: &out)
        }
    case .attributed(let attributes, let v):
        line("|", String(attributes.count))
        for (k, v) in attributes {
            encodeValue(k, into: &out)
            encodeValue(v, into: &out)
        }
        encodeValue(v, into: &out)
    }
}

func randomValue(_ rng: inout SplitMix64, depth: Int = 0) -> RESPValue {
    let word = ["", "a", "OK", "hello world", "ERR x", "ü€", "1", "-"]
    let scalarKinds = 10
    let kind = depth >= 3 ? Int.random(in: 0..<scalarKinds, using: &rng) : Int.random(in: 0..<(scalarKinds + 6), using: &rng)
    func children() -> [RESPValue] {
        (0..<Int.random(in: 0...3, using: &rng)).map { _ in randomValue(&rng, depth: depth + 1) }
    }
    func pairs() -> [RESPValue: RESPValue] {
        var m: [RESPValue: RESPValue] = [:]
        for _ in 0..<Int.random(in: 0...3, using: &rng) {
            m[randomValue(&rng, depth: 3)] = randomValue(&rng, depth: depth + 1)
        }
        return m
    }
    switch kind {
    case 0: return .simpleString(word.randomElement(using: &rng)!)
    case 1: return .simpleError("ERR " + word.randomElement(using: &rng)!)
    case 2: return .integer(Int64.random(in: .min ... .max, using: &rng) >> Int64.random(in: 0...63, using: &rng))
    case 3:
        let bytes = (0..<Int.random(in: 0...20, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        return .bulkString(ByteBuffer(bytes: bytes))
    case 4: return .null
    case 5:
        let choices: [Double] = [0, -1.5, 3.25e-7, 1e300, .infinity, -.infinity, Double(Int32.random(in: .min ... .max, using: &rng)) / 7]
        return .double(choices.randomElement(using: &rng)!)
    case 6: return .boolean(Bool.random(using: &rng))
    case 7: return .bigNumber((Bool.random(using: &rng) ? "-" : "") + String(UInt64.random(in: 0...UInt64.max, using: &rng)) + "123456789")
    case 8: return .bulkError("SYNTAX " + word.randomElement(using: &rng)!)
    case 9: return .verbatimString(format: "txt", text: ByteBuffer(string: word.randomElement(using: &rng)!))
    case 10: return .array(children())
    case 11: return .set(children())
    case 12: return .push(children())
    case 13, 14: return .map(pairs())
    default: return .attributed(attributes: pairs(), value: randomValue(&rng, depth: depth + 1))
    }
}

/// Decoding must end in values, "need more", or a RedisError: never a crash, never another error.
func decodeAllowingErrors(_ chunks: [[UInt8]], limits: RESPDecoderLimits = RESPDecoderLimits()) -> Result<[RESPValue], RedisError> {
    do {
        return .success(try decode(chunks, limits: limits))
    } catch let error as RedisError {
        return .failure(error)
    } catch {
        Issue.record("unexpected error type \(type(of: error)): \(error)")
        return .success([])
    }
}

@Suite("RESP decoder, randomized")
struct DecoderFuzzTests {
    @Test("random values survive any split; random, truncated and mutated bytes never crash", arguments: [UInt64(0xC0FFEE), 42])
    func randomized(seed: UInt64) async {
        var rng = SplitMix64(seed: seed)
        let smallLimits = RESPDecoderLimits(maximumBulkLength: 64, maximumAggregateCount: 8, maximumDepth: 4, maximumLineLength: 64)
        let alphabet = Array("+-:$*%~>|_,#(!=?0123456789-\r\n\r\nabc".utf8)
        for iteration in 0..<10_000 {
            // Long CPU-bound loops must not hold a cooperative thread: other tests' servers
            // would miss their start-up deadlines.
            if iteration % 200 == 0 { await Task.yield() }
            let value = randomValue(&rng)
            var frame: [UInt8] = []
            encodeValue(value, into: &frame)

            // Valid frame, cut into up to 3 random chunks: same single value.
            var cuts = (0..<Int.random(in: 0...2, using: &rng)).map { _ in Int.random(in: 0...frame.count, using: &rng) }.sorted()
            cuts = [0] + cuts + [frame.count]
            let chunks = zip(cuts, cuts.dropFirst()).map { Array(frame[$0..<$1]) }
            let decoded = decodeAllowingErrors(chunks)
            #expect(decoded == .success([value]), "seed \(seed) iteration \(iteration): \(value)")

            // A strict prefix is incomplete: no value, no error.
            let prefix = Array(frame.prefix(Int.random(in: 0..<frame.count, using: &rng)))
            #expect(decodeAllowingErrors([prefix]) == .success([]), "seed \(seed) iteration \(iteration) prefix")

            // One byte flipped: anything but a crash (and only RedisError), also under tight limits.
            var mutated = frame
            mutated[Int.random(in: 0..<mutated.count, using: &rng)] = alphabet.randomElement(using: &rng)!
            _ = decodeAllowingErrors([mutated])
            _ = decodeAllowingErrors([frame], limits: smallLimits)

            // Random RESP-ish noise.
            let noise = (0..<Int.random(in: 0...48, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! }
            _ = decodeAllowingErrors([noise])
            _ = decodeAllowingErrors(noise.map { [$0] }, limits: smallLimits)
        }
    }

    @Test("a valid frame split at every position decodes identically")
    func everySplit() async throws {
        var rng = SplitMix64(seed: 7)
        for _ in 0..<300 {
            await Task.yield()
            let value = randomValue(&rng)
            var frame: [UInt8] = []
            encodeValue(value, into: &frame)
            // Two frames back to back, so a split also lands between and inside the second one.
            let stream = frame + frame
            for split in 0...stream.count {
                let values = try decode([Array(stream[..<split]), Array(stream[split...])])
                #expect(values == [value, value], "split at \(split) of \(value)")
            }
        }
    }
}
