import FuzzSupport
import Tessera

let codec = AccessTokenCodec(keys: FuzzKeys.material, issuer: FuzzKeys.issuer)

@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>>>) -> CInt {
    let claims = AccessClaims(iss: FuzzKeys.issuer, sub: "user-1", sid: "session-1", jti: "jti-1", iat: 1_800_000_000, exp: 1_800_000_900)
    writeSeedsIfAsked([
        try! codec.sign(claims),
        try! codec.sign(AccessClaims(iss: FuzzKeys.issuer, sub: "", sid: "", jti: "", iat: 0, exp: Int64.max)),
        "eyJhbGciOiJub25lIn0.e30.", "..", "e30.e30.e30",
    ])
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzAccessToken(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let token = fuzzText(start, count)
    if let claims = try? codec.verify(token, now: FuzzKeys.now) {
        // Only the issuer's own, unexpired claims get through.
        precondition(claims.iss == FuzzKeys.issuer && claims.expiresAt > FuzzKeys.now)
    }
    return 0
}

// SwiftPM aliases `main` to this; libFuzzer's own `main` (which calls LLVMFuzzerTestOneInput)
// is linked too but not the entry point.
@_cdecl("FuzzAccessToken_main")
public func main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv) { start, count in fuzzAccessToken(start, count) }
}
