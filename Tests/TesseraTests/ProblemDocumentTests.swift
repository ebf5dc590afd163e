import Foundation
import Testing

@testable import Tessera

/// Problem documents are written by hand; they must stay the bytes `JSONEncoder` wrote.
@Suite("Problem document bytes")
struct ProblemDocumentTests {
    static let texts = [
        "", "The access token has been revoked.", "quote \" backslash \\ slash / urn:a/b",
        "controls \u{0}\u{1}\u{8}\u{9}\u{A}\u{C}\u{D}\u{1F}\u{7F}", "non-ASCII: é 中文 🙂 \u{2028}",
    ]

    @Test(arguments: texts)
    func writtenAsJSONEncoderWithSortedKeysWritesIt(text: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        for status in [401, 503] {
            let document = ProblemDocument(status: status, title: "T/\(text)", code: "code_\(text)", detail: text)
            let expected = String(decoding: try encoder.encode(document), as: UTF8.self)
            #expect(String(decoding: document.bytes(), as: UTF8.self) == expected)
            #expect(document.encoded() == Data(document.bytes()))
        }
    }
}
