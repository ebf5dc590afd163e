import FuzzSupport
@testable import Tessera

@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>>>) -> CInt {
    writeSeedsIfAsked([
        OneTimeTokenCodec.reset.make(userID: "0f5b2c1d9e8a7b6c").token,
        OneTimeTokenCodec.mfa.make(userID: "user-1").token,
        "tsp1.u.", "tsm1..AAAA", "tsp1.a.b.c",
    ])
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneTimeToken(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let token = fuzzText(start, count)
    for codec in [OneTimeTokenCodec.reset, .mfa] {
        if let (userID, hash) = codec.decode(token) {
            precondition(!userID.isEmpty && userID.utf8.count <= 64 && hash.utf8.count == 64)
        }
    }
    return 0
}

// SwiftPM aliases `main` to this; libFuzzer's own `main` (which calls LLVMFuzzerTestOneInput)
// is linked too but not the entry point.
@_cdecl("FuzzOneTimeToken_main")
public func main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv) { start, count in fuzzOneTimeToken(start, count) }
}
