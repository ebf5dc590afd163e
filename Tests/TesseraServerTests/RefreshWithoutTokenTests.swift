import Foundation
import HTTPTypes
import HummingbirdTesting
import Tessera
import TesseraServer
import Testing

@Suite("Auth: refresh without a refresh token")
struct RefreshWithoutTokenTests {
    /// A request with no body and no refresh cookie presents no credential at all: 401
    /// `invalid_refresh_token` (docs/API.md; the schema allows the empty body, for cookie mode).
    /// It used to answer 422 in bearer mode.
    @Test func noBodyAndNoCookieIs401() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let bare = try await client.raw(.post, "/v1/auth/refresh")
            #expect(bare.status == .unauthorized)
            #expect(bare.code == "invalid_refresh_token")
            #expect(bare.headers[values: .setCookie].count == 2, "the refusal clears both cookies")
            // A JSON body without the field is malformed, not unauthenticated.
            let empty = try await client.raw(.post, "/v1/auth/refresh", headers: [.contentType: "application/json"], body: "{}")
            #expect(empty.status == .unprocessableContent)
            #expect(empty.code == "invalid_request")
        }
    }
}
