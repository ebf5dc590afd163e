/// JSON strings written byte by byte, exactly as Foundation's `JSONEncoder` writes them, for the
/// bodies answered on every request (problem documents, token responses), where `JSONEncoder`
/// showed in the profiles.
public enum JSONString {
    private static let hex = Array("0123456789abcdef".utf8)

    /// Appends `value` quoted: `"` and `\` escaped, control characters as `\b \f \n \r \t` or
    /// `\u00XX`, `/` as `\/` unless `escapingSlashes` is false (`.withoutEscapingSlashes`),
    /// everything else (non-ASCII too) as is.
    public static func append(_ value: String, escapingSlashes: Bool, to output: inout [UInt8]) {
        output.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case UInt8(ascii: "/") where escapingSlashes: output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "/")])
            case 0x08: output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "b")])
            case 0x0C: output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "f")])
            case 0x0A: output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0x00..<0x20:
                output.append(contentsOf: "\\u00".utf8)
                output.append(hex[Int(byte >> 4)])
                output.append(hex[Int(byte & 0x0F)])
            default:
                output.append(byte)
            }
        }
        output.append(UInt8(ascii: "\""))
    }
}
