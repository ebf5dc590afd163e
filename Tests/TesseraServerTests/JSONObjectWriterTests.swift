import Foundation
import NIOCore
import Testing

@testable import Tessera
@testable import TesseraServer

/// The hand-written token bodies must be exactly what `JSONEncoder` wrote before.
@Suite("JSON object writer")
struct JSONObjectWriterTests {
    static let awkward = [
        "", "plain", "quote \" backslash \\ slash /", "controls \u{0}\u{1}\u{8}\u{9}\u{A}\u{C}\u{D}\u{1F}\u{7F}",
        "non-ASCII: é ü 中文 🙂 \u{2028}\u{2029}", "ends with backslash \\",
    ]

    func encoded(_ value: some Encodable) throws -> String {
        String(decoding: try JSONBody.encoder.encode(value), as: UTF8.self)
    }

    func written(_ value: some JSONObjectWritable) -> String {
        var writer = JSONObjectWriter()
        value.write(to: &writer)
        return String(buffer: writer.finished())
    }

    func user(email: String, mfa: Bool = false) -> User {
        User(id: UUID().uuidString.lowercased(), email: email, passwordHash: "x", mfaEnabled: mfa, createdAt: Date(timeIntervalSince1970: 1_767_225_600.123))
    }

    @Test(arguments: awkward)
    func aUserIsWrittenAsJSONEncoderWritesIt(email: String) throws {
        for mfa in [false, true] {
            let response = UserResponse(user(email: email, mfa: mfa))
            #expect(written(response) == (try encoded(response)))
        }
    }

    @Test(arguments: [true, false])
    func aTokenResponseIsWrittenAsJSONEncoderWritesIt(includingTokens: Bool) throws {
        for text in Self.awkward {
            let grant = TokenGrant(
                accessToken: "eyJ.\(text)", accessExpiresIn: 900, refreshToken: "r/\(text)", refreshExpiresIn: 2_592_000,
                sessionID: "s\(text)", user: user(email: text)
            )
            let response = TokenResponse(grant, includingTokens: includingTokens)
            #expect(written(response) == (try encoded(response)))
        }
    }
}
