extension String {
    /// The longest prefix of at most `maxBytes` UTF-8 bytes that ends on a scalar boundary
    /// (a cut may split a grapheme cluster, never a scalar: the result is valid UTF-8).
    public func truncatedToUTF8(_ maxBytes: Int) -> String {
        guard utf8.count > maxBytes else { return self }
        var end = utf8.index(utf8.startIndex, offsetBy: maxBytes)
        while end > utf8.startIndex, UTF8.isContinuation(utf8[end]) {
            end = utf8.index(before: end)
        }
        return String(decoding: utf8[utf8.startIndex..<end], as: UTF8.self)
    }
}
