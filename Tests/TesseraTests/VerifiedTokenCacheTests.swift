import Foundation
import Tessera
import Testing

@Suite("Verified access-token cache")
struct VerifiedTokenCacheTests {
    let keys = KeyMaterial.generate()
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    func claims(jti: String = "jti", exp: TimeInterval = 900) -> AccessClaims {
        let iat = Int64(now.timeIntervalSince1970)
        return AccessClaims(iss: "tessera", sub: "user", sid: "session", jti: jti, iat: iat, exp: iat + Int64(exp))
    }

    @Test func aVerifiedTokenIsAnsweredFromTheCacheUntilItExpires() throws {
        let codec = AccessTokenCodec(keys: keys, issuer: "tessera")
        let token = try codec.sign(claims(exp: 10))
        #expect(codec.verifiedTokens.claims(for: token, now: now) == nil)
        #expect(try codec.verifyCached(token, now: now) == claims(exp: 10))
        #expect(codec.verifiedTokens.claims(for: token, now: now) == claims(exp: 10))
        #expect(try codec.verifyCached(token, now: now.addingTimeInterval(9)) == claims(exp: 10))
        // Expiry is checked on every hit, with the same error as a fresh verification.
        #expect(throws: AccessTokenError.expired) { try codec.verifyCached(token, now: now.addingTimeInterval(10)) }
    }

    @Test func onlyTheExactVerifiedStringHits() throws {
        let codec = AccessTokenCodec(keys: keys, issuer: "tessera")
        let token = try codec.sign(claims())
        _ = try codec.verifyCached(token, now: now)
        // Same header and payload, another signature: verified afresh, and refused.
        let parts = token.split(separator: ".")
        var signature = Array(Base64URL.decode(parts[2])!)
        signature[0] ^= 1
        let forged = "\(parts[0]).\(parts[1]).\(Base64URL.encode(signature))"
        #expect(throws: AccessTokenError.badSignature) { try codec.verifyCached(forged, now: now) }
        #expect(codec.verifiedTokens.claims(for: forged, now: now) == nil)
        // Refused tokens are not remembered.
        #expect(throws: AccessTokenError.malformed) { try codec.verifyCached("a.b.c", now: now) }
        #expect(codec.verifiedTokens.count == 1)
    }

    @Test func theCacheIsBounded() throws {
        let cache = VerifiedTokenCache(capacity: 64, shardCount: 4)
        for index in 0..<1000 {
            cache.insert("token-\(index)", claims: claims(jti: "\(index)"), now: now)
        }
        #expect(cache.count <= 64)
        #expect(cache.claims(for: "token-999", now: now)?.jti == "999")
        // Expired entries go first when a shard is full.
        let small = VerifiedTokenCache(capacity: 4, shardCount: 1)
        for index in 0..<4 { small.insert("old-\(index)", claims: claims(jti: "old", exp: 1), now: now) }
        small.insert("new", claims: claims(jti: "new"), now: now.addingTimeInterval(5))
        #expect(small.count == 1)
        #expect(VerifiedTokenCache(capacity: 0).claims(for: "x", now: now) == nil)
    }

    @Test func concurrentVerificationsShareTheCache() async throws {
        let codec = AccessTokenCodec(keys: keys, issuer: "tessera")
        let tokens = try (0..<32).map { try codec.sign(claims(jti: "j\($0)")) }
        let now = self.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for round in 0..<4 {
                for (index, token) in tokens.enumerated() {
                    group.addTask { () async throws -> Void in
                        let claims = try codec.verifyCached(token, now: now)
                        #expect(claims.jti == "j\(index)", "round \(round)")
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(codec.verifiedTokens.count == 32)
    }
}
