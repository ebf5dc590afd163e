/// A CIDR block such as `10.0.0.0/8` or `fd00::/8`; a bare address is a /32 or /128.
public struct IPNetwork: Hashable, Sendable, CustomStringConvertible {
    public let address: IPAddress
    public let prefixLength: Int

    /// Rejects host bits set below the prefix (`10.0.0.1/8`): such a typo would trust more or
    /// less than meant.
    public init(parsing text: some StringProtocol) throws(IPNetwork.ParseError) {
        let text = String(text)
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddress(parts[0]) else {
            throw ParseError("'\(text)' is not an IPv4 or IPv6 address or CIDR block")
        }
        let bits = address.bytes.count * 8
        var length = bits
        if parts.count == 2 {
            let digits = parts[1]
            guard !digits.isEmpty, digits.utf8.count <= 3, digits.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                digits == "0" || !digits.hasPrefix("0"), let parsed = Int(digits), parsed <= bits
            else {
                throw ParseError("'\(text)' has a bad prefix length: use 0-\(bits)")
            }
            length = parsed
        }
        guard Self.masked(address.bytes, length) == address.bytes else {
            throw ParseError("'\(text)' has host bits set; write the network address (e.g. \(IPAddress(bytes: Self.masked(address.bytes, length)))/\(length))")
        }
        self.address = address
        self.prefixLength = length
    }

    public func contains(_ candidate: IPAddress) -> Bool {
        candidate.bytes.count == address.bytes.count && Self.masked(candidate.bytes, prefixLength) == address.bytes
    }

    public var description: String { "\(address)/\(prefixLength)" }

    static func masked(_ bytes: [UInt8], _ length: Int) -> [UInt8] {
        bytes.enumerated().map { index, byte in
            let keep = min(8, max(0, length - index * 8))
            return keep == 8 ? byte : byte & ~(UInt8(0xFF) >> keep)
        }
    }

    /// Why a network did not parse; the text is meant for the one-line start-up error.
    public struct ParseError: Error, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }
}
