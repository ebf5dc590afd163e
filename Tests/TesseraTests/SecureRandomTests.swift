import Testing

@testable import Tessera

@Suite("SecureRandom")
struct SecureRandomTests {
    @Test(arguments: [0, 1, 7, 8, 9, 12, 16, 32, 33])
    func givesExactlyTheBytesAskedFor(count: Int) {
        #expect(SecureRandom.bytes(count).count == count)
    }

    @Test func everyByteOfADrawIsUsedAndDrawsDiffer() {
        // 4,000 bytes: each byte position of the 8-byte words must take many values (a
        // position left at zero, or a word repeated, would show here).
        let bytes = SecureRandom.bytes(4000)
        for position in 0..<8 {
            let values = Set(stride(from: position, to: bytes.count, by: 8).map { bytes[$0] })
            #expect(values.count > 200)
        }
        let ids = (0..<1000).map { _ in SecureRandom.identifier(byteCount: 12) }
        #expect(Set(ids).count == 1000)
        #expect(ids.allSatisfy { $0.utf8.count == 16 })
    }
}
