import FuzzSupport
import Tessera

let codec = RefreshTokenCodec(key: FuzzKeys.material.refreshKey)

@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>>>) -> CInt {
    writeSeedsIfAsked([
        codec.encode(userID: "0f5b2c1d9e8a7b6c", sessionID: "a1b2c3d4e5f60718", generation: 1),
        codec.encode(userID: "u", sessionID: "s", generation: 9_223_372_036_854_775_807),
        codec.encode(userID: String(repeating: "x", count: 64), sessionID: String(repeating: "y", count: 64), generation: 42),
        "tsr1.a.b.1.", "tsr1....", "tsr1.a.b.-1.AAAA",
    ])
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRefreshToken(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let token = fuzzText(start, count)
    if let decoded = codec.decode(token) {
        // Whatever decodes must name a session the codec itself could have issued.
        precondition(!decoded.userID.isEmpty && !decoded.sessionID.isEmpty && decoded.generation > 0)
        precondition(codec.decode(codec.encode(userID: decoded.userID, sessionID: decoded.sessionID, generation: decoded.generation)) == decoded)
    }
    return 0
}

// SwiftPM aliases `main` to this; libFuzzer's own `main` (which calls LLVMFuzzerTestOneInput)
// is linked too but not the entry point.
@_cdecl("FuzzRefreshToken_main")
public func main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv) { start, count in fuzzRefreshToken(start, count) }
}
