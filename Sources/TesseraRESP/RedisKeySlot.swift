/// Which of Redis Cluster's 16384 hash slots a key belongs to: CRC16 (XMODEM) of the key, or of
/// its hash tag, the text between the first `{` and the next `}` when that text is not empty.
/// Keys sharing a tag (`{u:42}:sessions`, `{u:42}:s:abc`) share a slot, so one script may touch
/// them all.
public enum RedisKeySlot {
    public static let count = 16384

    public static func slot(of key: some Collection<UInt8>) -> Int {
        Int(crc16(hashedPart(of: Array(key))) % UInt16(count))
    }

    public static func slot(of key: String) -> Int { slot(of: key.utf8) }

    /// The bytes that are hashed: the hash tag if there is a non-empty one, else the whole key.
    static func hashedPart(of key: [UInt8]) -> ArraySlice<UInt8> {
        guard let open = key.firstIndex(of: UInt8(ascii: "{")),
            let close = key[(open + 1)...].firstIndex(of: UInt8(ascii: "}")), close > open + 1
        else { return key[...] }
        return key[(open + 1)..<close]
    }

    /// CRC-16/XMODEM: polynomial 0x1021, initial value 0, no reflection, as Redis Cluster uses.
    static func crc16(_ bytes: ArraySlice<UInt8>) -> UInt16 {
        var crc: UInt16 = 0
        for byte in bytes {
            crc = (crc << 8) ^ table[Int(UInt8(truncatingIfNeeded: crc >> 8) ^ byte)]
        }
        return crc
    }

    private static let table: [UInt16] = (0..<256).map { index in
        var crc = UInt16(index) << 8
        for _ in 0..<8 {
            crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1
        }
        return crc
    }
}
