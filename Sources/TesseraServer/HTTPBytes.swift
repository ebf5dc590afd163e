import HTTPTypes

/// Byte helpers for header parsing without Foundation.
enum HTTPBytes {
    static func isSpace(_ byte: UInt8) -> Bool { byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }

    static func trimmed(_ bytes: Substring.UTF8View) -> Substring.UTF8View {
        var bytes = bytes
        while let first = bytes.first, isSpace(first) { bytes.removeFirst() }
        while let last = bytes.last, isSpace(last) { bytes.removeLast() }
        return bytes
    }
}

extension HTTPFields {
    /// The field's value as `self[name]` gives it, without its copy when there is one field of
    /// that name (the subscript joins every value into a new string, a copy of a 300-byte token
    /// on every authenticated request). Several fields of the name: their joined value.
    func value(of name: HTTPField.Name) -> String? {
        guard let first = firstIndex(where: { $0.name == name }) else { return nil }
        if self[index(after: first)...].contains(where: { $0.name == name }) { return self[name] }
        return self[first].value
    }
}
