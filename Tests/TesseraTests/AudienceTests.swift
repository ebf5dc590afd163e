import Foundation
import Testing

@testable import Tessera

/// `--audience`: tokens carry `aud`, and a verifier that expects one accepts nothing else.
@Suite struct AudienceTests {
    let keys = KeyMaterial.generate(now: Date())
    let now = Date()

    func claims(aud: String?) -> AccessClaims {
        let iat = Int64(now.timeIntervalSince1970)
        return AccessClaims(iss: "tessera", sub: "u", sid: "s", jti: "j", iat: iat, exp: iat + 60, aud: aud)
    }

    @Test func aVerifierWithAnAudienceAcceptsOnlyThatAudience() throws {
        let codec = AccessTokenCodec(keys: keys, issuer: "tessera", audience: "api.example.com")
        #expect(try codec.verify(try codec.sign(claims(aud: "api.example.com")), now: now).aud == "api.example.com")
        #expect(throws: AccessTokenError.wrongAudience) { try codec.verify(try codec.sign(claims(aud: "other.example.com")), now: now) }
        #expect(throws: AccessTokenError.wrongAudience) { try codec.verify(try codec.sign(claims(aud: nil)), now: now) }
    }

    @Test func withoutAnAudienceTheClaimIsAbsent() throws {
        let codec = AccessTokenCodec(keys: keys, issuer: "tessera")
        let token = try codec.sign(claims(aud: nil))
        let payload = try #require(Base64URL.decode(token.split(separator: ".")[1]))
        #expect(!String(decoding: payload, as: UTF8.self).contains("aud"))
        #expect(try codec.verify(token, now: now).aud == nil)
    }

    @Test func theServiceMintsAndChecksItsAudience() async throws {
        var policy = TokenPolicy()
        policy.bcryptCost = 4
        policy.audience = "api.example.com"
        let clock = ManualClock(Date())
        let service = try await AuthService(
            policy: policy, users: MemoryUserStore(), tokens: MemoryTokenStore(clock: clock), keys: keys,
            security: AccountSecurity.local(secrets: .generate(), outbox: NSTemporaryDirectory() + "tessera-aud-\(UUID().uuidString)", rateLimits: .unlimited, clock: clock),
            clock: clock
        )
        let grant = try await service.register(email: "aud@example.com", password: "correct horse")
        #expect(try await service.authenticate(bearer: grant.accessToken).aud == "api.example.com")
        // A token from a deployment without the audience is refused.
        let plain = AccessTokenCodec(keys: keys, issuer: "tessera")
        let iat = Int64(clock.now().timeIntervalSince1970)
        let foreign = try plain.sign(AccessClaims(iss: "tessera", sub: grant.user.id, sid: grant.sessionID, jti: "x", iat: iat, exp: iat + 60))
        await #expect(throws: AuthError.invalidToken) { _ = try await service.authenticate(bearer: foreign) }
    }
}

/// The byte-level claims writer must produce exactly what `JSONEncoder` with sorted keys does.
@Suite struct CanonicalClaimsTests {
    static let strings = ["tessera", "", "a/b", "quote\"back\\slash", "tab\tnew\nline\r", "\u{01}\u{1F}\u{7F}", "é ü 漢字 🎉", "<script>&"]

    @Test(arguments: strings)
    func sameBytesAsJSONEncoder(text: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        for aud in [nil, text] {
            let claims = AccessClaims(iss: text, sub: text + "s", sid: "sid-" + text, jti: text, iat: 1_700_000_000, exp: -5, aud: aud)
            #expect(claims.canonicalJSON() == Array(try encoder.encode(claims)), "\(text)")
        }
    }

    @Test func signedTokensStillVerify() throws {
        let codec = AccessTokenCodec(keys: .generate(now: Date()), issuer: "tessera")
        let now = Int64(Date().timeIntervalSince1970)
        let claims = AccessClaims(iss: "tessera", sub: "u/1", sid: "s\"1", jti: "j", iat: now, exp: now + 60)
        #expect(try codec.verify(try codec.sign(claims), now: Date()) == claims)
    }
}
