import Testing

@testable import Tessera

@Suite("Hex text of digests")
struct HexTests {
    @Test("every byte value is two lowercase digits")
    func everyByte() {
        let all = (0...255).map { UInt8($0) }
        let expected = all.map { byte in
            let digits = Array("0123456789abcdef")
            return String([digits[Int(byte >> 4)], digits[Int(byte & 0x0F)]])
        }.joined()
        #expect(Hex.lowercase(all) == expected)
        #expect(Hex.lowercase([UInt8]()) == "")
    }

    /// Stored one-time token hashes and rate-limit keys are these strings: an upgrade must not
    /// change them (values from Python's hashlib).
    @Test("SHA-256 texts are those stored before", arguments: [
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("127.0.0.1", "12ca17b49af2289436f303e0166030a21e525d266e209267433801a8fd4071a0"),
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    ])
    func sha256Texts(input: String, hex: String) {
        #expect(TokenHash.hex(input) == hex)
        #expect(RateLimiter.digest(input) == String(hex.prefix(32)))
    }
}
