import Crypto
import Foundation
import Tessera
import Testing

@Suite("Access and refresh token codecs")
struct TokenCodecTests {
    let keys = KeyMaterial.generate()
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    func claims(exp: TimeInterval = 900) -> AccessClaims {
        let iat = Int64(now.timeIntervalSince1970)
        return AccessClaims(iss: "tessera", sub: "user", sid: "session", jti: "jti", iat: iat, exp: iat + Int64(exp))
    }

    @Test func signedTokensVerify() throws {
        let codec = AccessTokenCodec(keys: keys, issuer: "tessera")
        let token = try codec.sign(claims())
        #expect(try codec.verify(token, now: now) == claims())
        let header = try #require(Base64URL.decode(token.split(separator: ".")[0]))
        let json = try #require(try JSONSerialization.jsonObject(with: header) as? [String: String])
        #expect(json["alg"] == "EdDSA")
        #expect(json["kid"] == keys.signingKeys[0].id)
    }

    @Test func expiredTokensAreRejected() throws {
        let codec = AccessTokenCodec(keys: keys, issuer: "tessera")
        let token = try codec.sign(claims(exp: 10))
        #expect(throws: AccessTokenError.expired) { try codec.verify(token, now: now.addingTimeInterval(10)) }
    }

    @Test func tokensFromAnotherKeyOrIssuerAreRejected() throws {
        let codec = AccessTokenCodec(keys: keys, issuer: "tessera")
        let foreign = AccessTokenCodec(keys: .generate(), issuer: "tessera")
        #expect(throws: AccessTokenError.unknownKey) { try codec.verify(try foreign.sign(claims()), now: now) }
        var otherIssuer = claims()
        otherIssuer.iss = "someone-else"
        #expect(throws: AccessTokenError.wrongIssuer) { try codec.verify(try codec.sign(otherIssuer), now: now) }
    }

    @Test func aForeignKeyUnderOurKidIsABadSignature() throws {
        var forged = KeyMaterial.generate()
        forged.signingKeys[0].id = keys.signingKeys[0].id
        let codec = AccessTokenCodec(keys: keys, issuer: "tessera")
        let token = try AccessTokenCodec(keys: forged, issuer: "tessera").sign(claims())
        #expect(throws: AccessTokenError.badSignature) { try codec.verify(token, now: now) }
    }

    @Test func tamperedPayloadsAreRejected() throws {
        let codec = AccessTokenCodec(keys: keys, issuer: "tessera")
        let parts = try codec.sign(claims()).split(separator: ".").map(String.init)
        var changed = claims()
        changed.sub = "admin"
        let payload = Base64URL.encode(try JSONEncoder().encode(changed))
        #expect(throws: AccessTokenError.badSignature) { try codec.verify("\(parts[0]).\(payload).\(parts[2])", now: now) }
    }

    @Test func unsignedAndOtherAlgorithmsAreRejected() throws {
        let codec = AccessTokenCodec(keys: keys, issuer: "tessera")
        let payload = Base64URL.encode(try JSONEncoder().encode(claims()))
        for alg in ["none", "HS256", "RS256"] {
            let header = Base64URL.encode(Data("{\"alg\":\"\(alg)\",\"kid\":\"\(keys.signingKeys[0].id)\"}".utf8))
            #expect(throws: AccessTokenError.unsupportedAlgorithm) { try codec.verify("\(header).\(payload).", now: now) }
        }
        // No kid: no fallback to a default key.
        let noKid = Base64URL.encode(Data("{\"alg\":\"EdDSA\"}".utf8))
        let signature = try keys.signingKeys[0].privateKey.signature(for: Data("\(noKid).\(payload)".utf8))
        #expect(throws: AccessTokenError.unknownKey) { try codec.verify("\(noKid).\(payload).\(Base64URL.encode(signature))", now: now) }
    }

    @Test(arguments: ["", "garbage", "a.b", "a.b.c", "....", "é.é.é", String(repeating: "a", count: 5000)])
    func garbageIsMalformed(token: String) {
        let codec = AccessTokenCodec(keys: keys, issuer: "tessera")
        #expect(throws: AccessTokenError.self) { try codec.verify(token, now: now) }
    }

    @Test func jwksPublishesThePublicKey() throws {
        let codec = AccessTokenCodec(keys: keys, issuer: "tessera")
        let jwk = try #require(codec.jwks().keys.first)
        #expect(jwk.kty == "OKP" && jwk.crv == "Ed25519" && jwk.alg == "EdDSA" && jwk.kid == keys.signingKeys[0].id)
        #expect(Base64URL.decode(jwk.x) == keys.signingKeys[0].privateKey.publicKey.rawRepresentation)
    }

    @Test func refreshTokensRoundTripAndResistTampering() throws {
        let codec = RefreshTokenCodec(key: keys.refreshKey)
        let token = codec.encode(userID: "u1", sessionID: "abc", generation: 7)
        let decoded = try #require(codec.decode(token))
        #expect(decoded.userID == "u1" && decoded.sessionID == "abc" && decoded.generation == 7)
        let parts = token.split(separator: ".").map(String.init)
        let mac = parts[4]
        #expect(codec.decode("tsr1.u1.abc.8.\(mac)") == nil)
        #expect(codec.decode("tsr1.u1.abd.7.\(mac)") == nil)
        #expect(codec.decode("tsr1.u2.abc.7.\(mac)") == nil)
        #expect(codec.decode("tsr1.u1.abc.07.\(mac)") == nil)
        #expect(RefreshTokenCodec(key: SymmetricKey(size: .bits256)).decode(token) == nil)
        for garbage in ["", "tsr1", "tsr1.u1.a.1", "tsr1.u1.a.1.b.c", "tsr1.u1.a.-1.\(mac)", "x.u1.abc.7.\(mac)", "tsr1..abc.7.\(mac)"] {
            #expect(codec.decode(garbage) == nil)
        }
    }

    @Test func refreshTokensCarryAtLeast128BitsOfSecret() {
        let codec = RefreshTokenCodec(key: keys.refreshKey)
        let mac = codec.encode(userID: "u", sessionID: "abc", generation: 1).split(separator: ".")[4]
        #expect((Base64URL.decode(mac)?.count ?? 0) * 8 >= 128)
    }
}

@Suite("Key file")
struct KeyFileTests {
    @Test func createdWithMode0600AndReloadedIdentically() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-keys-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("tessera.key").path
        let (created, origin) = try KeyFile.loadOrCreate(path: path)
        #expect(origin == .created)
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        let (loaded, again) = try KeyFile.loadOrCreate(path: path)
        #expect(again == .loaded)
        #expect(loaded.signingKeys[0].id == created.signingKeys[0].id)
        #expect(loaded.signingKeys[0].privateKey.rawRepresentation == created.signingKeys[0].privateKey.rawRepresentation)
        let token = try AccessTokenCodec(keys: created, issuer: "t").sign(
            AccessClaims(iss: "t", sub: "u", sid: "s", jti: "j", iat: 0, exp: Int64.max / 2)
        )
        #expect(throws: Never.self) { try AccessTokenCodec(keys: loaded, issuer: "t").verify(token, now: Date()) }
    }

    @Test func garbageKeyFilesAreRefusedWithAClearError() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-bad-\(UUID().uuidString).key").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data("not json".utf8).write(to: URL(fileURLWithPath: path))
        #expect(throws: KeyFileError.self) { try KeyFile.load(path: path) }
    }
}
