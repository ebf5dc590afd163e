import Foundation
import HTTPTypes
import HummingbirdTesting
import Tessera
import TesseraServer
import Testing

@Suite("Accounts: password length")
struct PasswordLengthTests {
    /// Characters are code points: "e" + U+0301 is two, as a client's `length`, JSON Schema's
    /// `minLength` and NIST SP 800-63B count them; as one grapheme each the server used to
    /// refuse this 8-character password as 4 characters long.
    @Test func aPasswordIsCountedInCodePoints() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let combining = String(repeating: "e\u{0301}", count: 4)
            let reply = try await client.post("/v1/auth/register", ["email": "marks@example.com", "password": combining])
            #expect(reply.status == .created, "\(reply.code ?? "")")
            let crlf = String(repeating: "\r\n", count: 4)
            #expect(try await client.post("/v1/auth/register", ["email": "crlf@example.com", "password": crlf]).status == .created)
            let short = String(repeating: "e\u{0301}", count: 3) + "x"
            let refused = try await client.post("/v1/auth/register", ["email": "short@example.com", "password": short])
            #expect(refused.status == .unprocessableContent)
            // 256 code points of 4 bytes each are 1,024 bytes: both limits allow it.
            let long = String(repeating: "\u{1F600}", count: 256)
            #expect(try await client.post("/v1/auth/register", ["email": "long@example.com", "password": long]).status == .created)
            #expect(try await client.post("/v1/auth/register", ["email": "longer@example.com", "password": long + "x"]).status == .unprocessableContent)
        }
    }
}
