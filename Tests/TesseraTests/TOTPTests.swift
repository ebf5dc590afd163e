import Testing

@testable import Tessera

/// RFC 6238 Appendix B (SHA-1 column): the shared secret is the ASCII string
/// "12345678901234567890" and codes have 8 digits.
@Suite struct TOTPTests {
    static let vectors: [(time: Int64, code: String)] = [
        (59, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
        (20_000_000_000, "65353130"),
    ]

    @Test(arguments: vectors)
    func rfc6238Vector(time: Int64, code: String) {
        let totp = TOTP(key: Array("12345678901234567890".utf8), digits: 8)
        #expect(totp.codeString(step: totp.step(at: time)) == code)
    }

    @Test func sixDigitCodesAreTheLastSixOfTheTruncation() {
        // RFC 4226 Appendix D: HOTP values for counters 0…9 with the same secret.
        let expected = ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"]
        let totp = TOTP(secret: "12345678901234567890")
        #expect((0..<10).map { totp.codeString(step: Int64($0)) } == expected)
    }

    @Test func stepBoundaries() {
        let totp = TOTP(secret: "x")
        #expect(totp.step(at: 0) == 0)
        #expect(totp.step(at: 29) == 0)
        #expect(totp.step(at: 30) == 1)
        #expect(totp.step(at: -1) == -1)
    }

    @Test func authenticatorURLCarriesTheBase32Secret() {
        let totp = TOTP(secret: "12345678901234567890")
        #expect(
            totp.authenticatorURL(label: "Tessera:ada@example.com", issuer: "Tessera")
                == "otpauth://totp/Tessera%3Aada%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Tessera"
        )
    }

    @Test func base32MatchesRFC4648() {
        // RFC 4648 §10, without padding.
        let cases = ["": "", "f": "MY", "fo": "MZXQ", "foo": "MZXW6", "foob": "MZXW6YQ", "fooba": "MZXW6YTB", "foobar": "MZXW6YTBOI"]
        for (input, output) in cases { #expect(Base32.encode(input.utf8) == output) }
    }
}
