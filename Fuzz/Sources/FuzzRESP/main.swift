import FuzzSupport
import NIOCore
import TesseraRESP

// Small limits, so that the fuzzer explores the limit checks rather than allocating.
let limits = RESPDecoderLimits(maximumBulkLength: 1 << 16, maximumAggregateCount: 256, maximumDepth: 16, maximumLineLength: 512)

/// Decodes everything `bytes` holds, fed in pieces of `step` bytes; stops at the first error.
func decodeAll(_ bytes: UnsafeRawBufferPointer, step: Int) -> (values: [RESPValue], failed: Bool) {
    var decoder = RESPValueDecoder(limits: limits)
    var buffer = ByteBufferAllocator().buffer(capacity: bytes.count)
    var values: [RESPValue] = []
    var offset = 0
    do {
        while offset < bytes.count {
            let end = min(bytes.count, offset + step)
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[offset..<end]))
            offset = end
            while let value = try decoder.decode(buffer: &buffer) { values.append(value) }
        }
        if let value = try decoder.decodeLast(buffer: &buffer, seenEOF: true) { values.append(value) }
    } catch {
        return (values, true)
    }
    return (values, false)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRESP(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    guard let start else { return 0 }
    let bytes = UnsafeRawBufferPointer(start: start, count: count)
    let whole = decodeAll(bytes, step: max(1, count))
    let trickled = decodeAll(bytes, step: 1)
    // However the reads are split, the same replies come out. A NaN double is unequal to
    // itself (and map order differs between instances), so replies holding one are skipped.
    precondition(whole.values.count == trickled.values.count, "split-dependent reply count")
    for (a, b) in zip(whole.values, trickled.values) where !String(describing: a).lowercased().contains("nan") {
        precondition(a == b, "split-dependent reply")
    }
    precondition(whole.failed == trickled.failed, "split-dependent error")
    return 0
}

// SwiftPM aliases `main` to this; libFuzzer's own `main` (which calls LLVMFuzzerTestOneInput)
// is linked too but not the entry point.
@_cdecl("FuzzRESP_main")
public func main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv) { start, count in fuzzRESP(start, count) }
}
