import Crypto
import Foundation
import Testing

@testable import Tessera

/// base64url is how every token carries its bytes: one spelling per value, byte for byte.
@Suite struct Base64URLTests {
    @Test func rfc4648Vectors() {
        // RFC 4648 §10 with the URL-safe alphabet and without padding.
        let cases = ["": "", "f": "Zg", "fo": "Zm8", "foo": "Zm9v", "foob": "Zm9vYg", "fooba": "Zm9vYmE", "foobar": "Zm9vYmFy"]
        for (input, output) in cases {
            #expect(Base64URL.encode(Data(input.utf8)) == output)
            #expect(Base64URL.decode(output) == Data(input.utf8))
        }
        #expect(Base64URL.encode([0xFB, 0xFF, 0xBF]) == "-_-_")
        #expect(Base64URL.decode("-_-_") == Data([0xFB, 0xFF, 0xBF]))
    }

    @Test func matchesFoundationForEveryLength() {
        var generator = SystemRandomNumberGenerator()
        for length in 0...96 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let expected = Data(bytes).base64EncodedString()
                .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
            #expect(Base64URL.encode(bytes) == expected)
            #expect(Base64URL.decode(expected) == Data(bytes))
        }
    }

    @Test func refusesEveryOtherSpelling() {
        #expect(Base64URL.decode("Zg==") == nil)  // padding
        #expect(Base64URL.decode("Zh") == nil)  // "f" with a non-zero unused bit
        #expect(Base64URL.decode("Zm9") == nil)  // "fo" with non-zero unused bits
        #expect(Base64URL.decode("Zm8") != nil)
        #expect(Base64URL.decode("+/+/") == nil)  // the standard alphabet
        #expect(Base64URL.decode("Z") == nil)  // no whole byte
        #expect(Base64URL.decode("Zm9v Yg") == nil)
        #expect(Base64URL.decode("Zm9v\n") == nil)
    }

    /// The audit found 15 other accepted spellings of every JWT signature (64 bytes: 4 unused bits).
    @Test func aJWTSignatureHasOneSpelling() throws {
        let keys = KeyMaterial.generate(now: Date())
        let codec = AccessTokenCodec(keys: keys, issuer: "tessera")
        let now = Date()
        let token = try codec.sign(AccessClaims(iss: "tessera", sub: "u", sid: "s", jti: "j", iat: Int64(now.timeIntervalSince1970), exp: Int64(now.timeIntervalSince1970) + 60))
        _ = try codec.verify(token, now: now)
        for variant in Self.otherSpellings(ofLastCharacterIn: token, unusedBits: 4) {
            #expect(throws: AccessTokenError.malformed) { try codec.verify(variant, now: now) }
        }
    }

    /// …and 3 of every refresh token's MAC (32 bytes: 2 unused bits).
    @Test func aRefreshTokenMACHasOneSpelling() {
        let codec = RefreshTokenCodec(key: SymmetricKey(size: .bits256))
        let token = codec.encode(userID: "u1", sessionID: "s1", generation: 3)
        #expect(codec.decode(token) != nil)
        let variants = Self.otherSpellings(ofLastCharacterIn: token, unusedBits: 2)
        #expect(variants.count == 3)
        for variant in variants { #expect(codec.decode(variant) == nil) }
    }

    /// The token with its last character replaced by each spelling that differs only in the
    /// unused low bits.
    static func otherSpellings(ofLastCharacterIn token: String, unusedBits: Int) -> [String] {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        let last = token.last!
        let value = alphabet.firstIndex(of: last)!
        let base = value & ~((1 << unusedBits) - 1)
        return (0..<(1 << unusedBits)).map { base | $0 }.filter { $0 != value }.map { String(token.dropLast()) + String(alphabet[$0]) }
    }
}
