import Crypto
import Foundation

/// The claims of a Tessera access token.
public struct AccessClaims: Sendable, Codable, Equatable {
    public var iss: String
    /// User id.
    public var sub: String
    /// Session id.
    public var sid: String
    public var jti: String
    public var iat: Int64
    public var exp: Int64
    /// The audience (`--audience`); absent unless configured.
    public var aud: String?

    public init(iss: String, sub: String, sid: String, jti: String, iat: Int64, exp: Int64, aud: String? = nil) {
        self.iss = iss
        self.sub = sub
        self.sid = sid
        self.jti = jti
        self.iat = iat
        self.exp = exp
        self.aud = aud
    }

    public var expiresAt: Date { Date(timeIntervalSince1970: TimeInterval(exp)) }

    /// The claims as JSON with sorted keys, written byte by byte: the same bytes `JSONEncoder`
    /// with `.sortedKeys` produces (pinned by a test), without its cost on every refresh.
    func canonicalJSON() -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(160)
        out += Array("{".utf8)
        if let aud {
            out += Array("\"aud\":".utf8)
            Self.appendString(aud, to: &out)
            out.append(UInt8(ascii: ","))
        }
        out += Array("\"exp\":\(exp),\"iat\":\(iat),\"iss\":".utf8)
        Self.appendString(iss, to: &out)
        out += Array(",\"jti\":".utf8)
        Self.appendString(jti, to: &out)
        out += Array(",\"sid\":".utf8)
        Self.appendString(sid, to: &out)
        out += Array(",\"sub\":".utf8)
        Self.appendString(sub, to: &out)
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// A JSON string as Foundation's encoder escapes it: quote, backslash and slash escaped,
    /// the usual short escapes, other control characters as `\u00XX`.
    static func appendString(_ string: String, to out: inout [UInt8]) {
        let hex = Array("0123456789abcdef".utf8)
        out.append(UInt8(ascii: "\""))
        for byte in string.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case UInt8(ascii: "/"): out += [UInt8(ascii: "\\"), UInt8(ascii: "/")]
            case 0x08: out += [UInt8(ascii: "\\"), UInt8(ascii: "b")]
            case 0x0C: out += [UInt8(ascii: "\\"), UInt8(ascii: "f")]
            case 0x0A: out += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case 0x0D: out += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case 0x09: out += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case 0..<0x20: out += Array("\\u00".utf8) + [hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]]
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

/// Why an access token was refused. Each maps to a stable API error code.
public enum AccessTokenError: Error, Equatable, Sendable {
    case malformed
    case badSignature
    case unknownKey
    case unsupportedAlgorithm
    case wrongIssuer
    /// The codec expects an audience and the token names another one, or none.
    case wrongAudience
    case expired
    case notYetValid
}

/// Signs and verifies EdDSA (Ed25519) compact JWS access tokens.
///
/// Written directly on swift-crypto rather than through a general JWT library so that the
/// rules are exactly ours: only `EdDSA`, a `kid` is required and must be one of our keys
/// (no fallback to a default key), and verification is a plain value-type call that never
/// serialises concurrent requests through an actor.
public struct AccessTokenCodec: Sendable {
    private struct Header: Codable {
        var alg: String
        var typ: String?
        var kid: String?
    }

    /// A key that may sign, with its header (the same for every token of the key: built once).
    private struct Signer: Sendable {
        var key: KeyMaterial.SigningKey
        var headerSegment: String
    }

    /// In key-file order; empty for a codec that only verifies (an app checking a remote
    /// Tessera's tokens).
    private let signers: [Signer]
    private let verifyingKeys: [String: Curve25519.Signing.PublicKey]
    public let issuer: String
    /// When set, every token must carry exactly this `aud`.
    public let audience: String?
    /// Tolerated clock difference for `iat` in the future.
    public var leeway: TimeInterval = 60
    /// Tokens this codec verified already (see `verifyCached`); shared by copies of the codec.
    public let verifiedTokens = VerifiedTokenCache()

    public init(keys: KeyMaterial, issuer: String, audience: String? = nil) {
        self.audience = audience
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        self.signers = keys.signingKeys.map { key in
            let header = (try? encoder.encode(Header(alg: "EdDSA", typ: "JWT", kid: key.id))) ?? Data()
            return Signer(key: key, headerSegment: Base64URL.encode(header))
        }
        self.verifyingKeys = Dictionary(keys.signingKeys.map { ($0.id, $0.privateKey.publicKey) }, uniquingKeysWith: { a, _ in a })
        self.issuer = issuer
    }

    /// A codec that verifies with these public keys and cannot sign.
    public init(verifyingKeys: [String: Curve25519.Signing.PublicKey], issuer: String, audience: String? = nil) {
        self.signers = []
        self.verifyingKeys = verifyingKeys
        self.issuer = issuer
        self.audience = audience
    }

    /// The Ed25519 keys of a JWKS document, by `kid`; keys of other types or curves are skipped.
    public static func verifyingKeys(of jwks: JWKS) -> [String: Curve25519.Signing.PublicKey] {
        var keys: [String: Curve25519.Signing.PublicKey] = [:]
        for key in jwks.keys where key.kty == "OKP" && key.crv == "Ed25519" && key.alg == "EdDSA" {
            if let raw = Base64URL.decode(key.x), let publicKey = try? Curve25519.Signing.PublicKey(rawRepresentation: raw) {
                keys[key.kid] = publicKey
            }
        }
        return keys
    }

    /// Signs with the key active at the token's `iat` (a staged key only from its activation).
    public func sign(_ claims: AccessClaims) throws -> String {
        let issuedAt = Date(timeIntervalSince1970: TimeInterval(claims.iat))
        guard let signer = signers.first(where: { $0.key.isActive(at: issuedAt) }) ?? signers.first else {
            throw AccessTokenError.unknownKey
        }
        let signingInput = signer.headerSegment + "." + Base64URL.encode(claims.canonicalJSON())
        let signature = try signer.key.privateKey.signature(for: Data(signingInput.utf8))
        return signingInput + "." + Base64URL.encode(signature)
    }

    public func verify(_ token: String, now: Date) throws(AccessTokenError) -> AccessClaims {
        // Bounded before any parsing: our tokens are well under 1 KiB.
        guard token.utf8.count <= 4096 else { throw .malformed }
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3,
            let headerData = Base64URL.decode(parts[0]),
            let payloadData = Base64URL.decode(parts[1]),
            let signature = Base64URL.decode(parts[2]),
            let header = try? JSONDecoder().decode(Header.self, from: headerData)
        else { throw .malformed }
        guard header.alg == "EdDSA" else { throw .unsupportedAlgorithm }
        guard let kid = header.kid, let key = verifyingKeys[kid] else { throw .unknownKey }
        let signingInput = Data(token.utf8.prefix(parts[0].utf8.count + 1 + parts[1].utf8.count))
        guard key.isValidSignature(signature, for: signingInput) else { throw .badSignature }
        guard let claims = try? JSONDecoder().decode(AccessClaims.self, from: payloadData) else { throw .malformed }
        guard claims.iss == issuer else { throw .wrongIssuer }
        if let audience, claims.aud != audience { throw .wrongAudience }
        let nowSeconds = now.timeIntervalSince1970
        guard TimeInterval(claims.exp) > nowSeconds else { throw .expired }
        guard TimeInterval(claims.iat) <= nowSeconds + leeway else { throw .notYetValid }
        return claims
    }

    /// The id of the key that signs tokens issued at `date`; nil for a verify-only codec.
    public func signingKeyID(at date: Date) -> String? {
        (signers.first { $0.key.isActive(at: date) } ?? signers.first)?.key.id
    }

    /// The public keys as a JWKS document (RFC 7517, OKP keys per RFC 8037).
    public func jwks() -> JWKS {
        JWKS(keys: verifyingKeys.sorted { $0.key < $1.key }.map { kid, key in
            JWKS.Key(kty: "OKP", crv: "Ed25519", x: Base64URL.encode(key.rawRepresentation), kid: kid, alg: "EdDSA", use: "sig")
        })
    }
}

public struct JWKS: Sendable, Codable, Equatable {
    public struct Key: Sendable, Codable, Equatable {
        public var kty: String
        public var crv: String
        public var x: String
        public var kid: String
        public var alg: String
        public var use: String
    }

    public var keys: [Key]
}
