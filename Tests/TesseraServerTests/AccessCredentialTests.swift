import HTTPTypes
import Testing

@testable import TesseraServer

/// How a request's access token is read: the Bearer header's exact rules, on bytes.
@Suite struct AccessCredentialTests {
    @Test(arguments: [
        ("Bearer abc.def", "abc.def"), ("bearer abc", "abc"), ("BEARER abc", "abc"), ("Bearer \t abc \t", "abc"),
        ("Bearer\tabc", "abc"), ("Bearer a b", "a b"),
    ])
    func bearerHeadersGiveTheirToken(_ header: String, _ token: String) {
        #expect(AccessCredential.bearerToken(header) == token)
    }

    @Test(arguments: ["Bearer", "Bearer ", "Bearer   ", "Bearerabc", "Basic abc", "Bearer\u{A0}abc", "Bear abc", "", "Bearér abc"])
    func otherHeadersGiveNone(_ header: String) {
        #expect(AccessCredential.bearerToken(header) == nil)
    }

    @Test func theHeaderWinsOverTheCookieAndTwoHeadersAreOneJoinedValue() {
        var headers: HTTPFields = [.authorization: "Bearer header-token", .cookie: "__Host-tessera_at=cookie-token"]
        #expect(AccessCredential(headers) == .bearer("header-token"))
        headers[.authorization] = nil
        #expect(AccessCredential(headers) == .cookie("cookie-token"))
        // Two Authorization fields read as HTTP joins them, never as the first alone.
        var twice = HTTPFields()
        twice.append(HTTPField(name: .authorization, value: "Bearer one"))
        twice.append(HTTPField(name: .authorization, value: "Bearer two"))
        #expect(twice.value(of: .authorization) == twice[.authorization])
        #expect(AccessCredential(twice) == .bearer("one, Bearer two"))
        #expect(HTTPFields().value(of: .authorization) == nil)
    }
}
