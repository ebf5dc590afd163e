/// Lowercase hexadecimal text of bytes, written straight into the string's storage
/// (`String(format: "%02x")` per byte went through Foundation's formatter: 18% of a refresh's
/// CPU with rate limits on, which hash the client's address and the account on every request).
enum Hex {
    private static let digits: StaticString = "0123456789abcdef"

    static func lowercase<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> String {
        String(unsafeUninitializedCapacity: bytes.count * 2) { out in
            digits.withUTF8Buffer { digits in
                var index = 0
                for byte in bytes {
                    out[index] = digits[Int(byte >> 4)]
                    out[index + 1] = digits[Int(byte & 0x0F)]
                    index += 2
                }
                return index
            }
        }
    }
}
