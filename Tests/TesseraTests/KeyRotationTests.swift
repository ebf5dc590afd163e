import Crypto
import Foundation
import Logging
import Tessera
import Testing

/// Staged signing keys, refresh-key overlap, encryption-key prepending and the key file that
/// carries them between instances. No server, no store.
@Suite("Key rotation")
struct KeyRotationTests {
    let start = Date(timeIntervalSince1970: 1_800_000_000)

    func claims(at date: Date) -> AccessClaims {
        let iat = Int64(date.timeIntervalSince1970)
        return AccessClaims(iss: "tessera", sub: "u", sid: "s", jti: UUID().uuidString, iat: iat, exp: iat + 900)
    }

    func kid(of token: String) throws -> String {
        let header = try #require(Base64URL.decode(String(token.split(separator: ".")[0])))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(header)) as? [String: Any])
        return try #require(object["kid"] as? String)
    }

    @Test func aStagedKeyIsPublishedBeforeItSigns() throws {
        let old = KeyMaterial.generate(now: start)
        let (staged, key) = try old.stagingSigningKey(now: start, publishDelay: 300)
        let codec = AccessTokenCodec(keys: staged, issuer: "tessera")
        #expect(Set(codec.jwks().keys.map(\.kid)) == [old.signingKeys[0].id, key.id])
        // Before the activation time the old key signs; from it on, the new one.
        #expect(try kid(of: codec.sign(claims(at: start.addingTimeInterval(299)))) == old.signingKeys[0].id)
        #expect(try kid(of: codec.sign(claims(at: start.addingTimeInterval(300)))) == key.id)
        #expect(codec.signingKeyID(at: start) == old.signingKeys[0].id)
    }

    @Test func anOldKeysTokensVerifyUntilItIsRetired() throws {
        let old = KeyMaterial.generate(now: start)
        let token = try AccessTokenCodec(keys: old, issuer: "tessera").sign(claims(at: start))
        let (rotated, _) = try old.stagingSigningKey(now: start, publishDelay: 0)
        let later = start.addingTimeInterval(10)
        #expect(throws: Never.self) { try AccessTokenCodec(keys: rotated, issuer: "tessera").verify(token, now: later) }
        let retired = try rotated.retiring(keyID: old.signingKeys[0].id, now: later)
        #expect(throws: AccessTokenError.unknownKey) { try AccessTokenCodec(keys: retired, issuer: "tessera").verify(token, now: later) }
    }

    @Test func theSigningKeyAndTheOnlyKeyCannotBeRetired() throws {
        let keys = KeyMaterial.generate(now: start)
        let only = keys.signingKeys[0].id
        #expect(throws: KeyRotationError.keyInUse(only)) { try keys.retiring(keyID: only, now: start) }
        let (staged, key) = try keys.stagingSigningKey(now: start, publishDelay: 300)
        // While staged, the old key still signs: refused. The staged key may go (cancelled).
        #expect(throws: KeyRotationError.keyInUse(only)) { try staged.retiring(keyID: only, now: start) }
        #expect(try staged.retiring(keyID: key.id, now: start).signingKeys.map(\.id) == [only])
        // Once active, the new key is the one refused and the old one may go.
        let after = start.addingTimeInterval(300)
        #expect(throws: KeyRotationError.keyInUse(key.id)) { try staged.retiring(keyID: key.id, now: after) }
        #expect(try staged.retiring(keyID: only, now: after).signingKeys.map(\.id) == [key.id])
        #expect(throws: KeyRotationError.keyNotFound("nope")) { try staged.retiring(keyID: "nope", now: after) }
    }

    @Test func activationFallsOnAWholeSecond() throws {
        let (_, key) = try KeyMaterial.generate(now: start).stagingSigningKey(now: start.addingTimeInterval(0.25), publishDelay: 10)
        #expect(key.activatesAt == start.addingTimeInterval(11))
    }

    @Test func aSecondRotationWaitsForTheStagedKey() throws {
        let (staged, key) = try KeyMaterial.generate(now: start).stagingSigningKey(now: start, publishDelay: 300)
        #expect(throws: KeyRotationError.rotationPending(key.id, activatesAt: start.addingTimeInterval(300))) {
            try staged.stagingSigningKey(now: start.addingTimeInterval(10), publishDelay: 300)
        }
        #expect(throws: Never.self) { try staged.stagingSigningKey(now: start.addingTimeInterval(300), publishDelay: 300) }
    }

    @Test func refreshTokensUnderThePreviousKeyStillDecode() throws {
        let old = KeyMaterial.generate(now: start)
        let token = RefreshTokenCodec(keys: old.refreshKeys.map(\.key)).encode(userID: "u", sessionID: "s", generation: 3)
        let (rotated, key) = old.rotatingRefreshKey(now: start)
        let codec = RefreshTokenCodec(keys: rotated.refreshKeys.map(\.key))
        #expect(codec.decode(token)?.generation == 3)
        // New tokens are under the new key: a codec with the old key alone refuses them.
        let fresh = codec.encode(userID: "u", sessionID: "s", generation: 4)
        #expect(RefreshTokenCodec(key: old.refreshKey).decode(fresh) == nil)
        #expect(RefreshTokenCodec(key: key.key).decode(fresh) != nil)
        #expect(throws: KeyRotationError.keyInUse(key.id)) { try rotated.retiring(keyID: key.id, now: start) }
        let retired = try rotated.retiring(keyID: old.refreshKeys[0].id, now: start)
        #expect(RefreshTokenCodec(keys: retired.refreshKeys.map(\.key)).decode(token) == nil)
    }

    @Test func encryptionKeysAreRotatedByPrepending() throws {
        let box = SecretBox.generate()
        let sealed = try box.seal(Data("secret".utf8), context: "totp|u")
        let (rotated, key) = box.rotating()
        #expect(rotated.keys.map(\.id) == [key.id, box.keys[0].id])
        #expect(try rotated.open(sealed, context: "totp|u") == Data("secret".utf8))
        #expect(SecretBox.keyID(of: try rotated.seal(Data("x".utf8), context: "c")) == key.id)
        #expect(throws: KeyRotationError.keyInUse(key.id)) { try rotated.retiring(keyID: key.id) }
        #expect(try rotated.retiring(keyID: box.keys[0].id).keys.map(\.id) == [key.id])
    }

    @Test func theKeyFileKeepsStagedKeysAndOldRefreshKeys() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-key-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let original = KeyMaterial.generate(now: start)
        try KeyFile.write(original, to: path)
        // Nothing new in it yet: still a version 1 file, which an older Tessera reads.
        #expect(try String(contentsOfFile: path, encoding: .utf8).contains("\"version\" : 1"))
        let (staged, key) = try original.stagingSigningKey(now: start, publishDelay: 60)
        let (both, _) = staged.rotatingRefreshKey(now: start)
        try KeyFile.replace(both, at: path)
        let loaded = try KeyFile.load(path: path)
        #expect(loaded.signingKeys.map(\.id) == [key.id, original.signingKeys[0].id])
        #expect(loaded.signingKeys[0].activatesAt == start.addingTimeInterval(60))
        #expect(loaded.refreshKeys.map(\.id) == both.refreshKeys.map(\.id))
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
    }

    @Test func theWatcherInstallsAChangedKeyFile() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-watch-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let keyPath = directory.appendingPathComponent("tessera.key").path
        let secretsPath = directory.appendingPathComponent("tessera-encryption.key").path
        let (material, _) = try KeyFile.loadOrCreate(path: keyPath, now: start)
        let (box, _) = try EncryptionKeyFile.loadOrCreate(path: secretsPath)
        let ring = KeyRing(material: material, secrets: box, issuer: "tessera", audience: nil)
        let watcher = KeyFileWatcher(
            keyRing: ring, keyFile: keyPath, encryptionKeyFile: secretsPath, interval: .seconds(3600), logger: Logger(label: "test")
        )
        #expect(!watcher.checkNow())
        let files = KeyFiles(keyFile: keyPath, encryptionKeyFile: secretsPath)
        let signing = try await files.rotate(.signing, now: start, publishDelay: 30).key
        let encryption = try await files.rotate(.encryption, now: start, publishDelay: 0).key
        #expect(watcher.checkNow())
        #expect(ring.accessTokens.jwks().keys.contains { $0.kid == signing.id })
        #expect(ring.secrets.keys.first?.id == encryption.id)
        // A damaged file is not installed: the keys in force stay.
        try Data("{}".utf8).write(to: URL(fileURLWithPath: keyPath))
        #expect(!watcher.checkNow())
        #expect(ring.accessTokens.jwks().keys.contains { $0.kid == signing.id })
    }

    @Test func keyStatusesNameTheStateOfEachKey() throws {
        let (staged, key) = try KeyMaterial.generate(now: start).stagingSigningKey(now: start, publishDelay: 60)
        let statuses = KeyFiles.status(material: staged, secrets: .generate(), now: start)
        #expect(statuses.map(\.kind) == [.signing, .signing, .refresh, .encryption])
        #expect(statuses[0].id == key.id && statuses[0].state == .staged)
        #expect(statuses[1].state == .active)
        let later = KeyFiles.status(material: staged, secrets: .generate(), now: start.addingTimeInterval(60))
        #expect(later[0].state == .active && later[1].state == .previous)
    }
}
