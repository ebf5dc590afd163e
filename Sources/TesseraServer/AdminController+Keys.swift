import Foundation
import Hummingbird
import Tessera

/// Signing, refresh and encryption keys: the same operations as `tessera keys`.
extension AdminController {
    func addKeyRoutes(to group: RouterGroup<TesseraRequestContext>) {
        group.get("keys") { request, _ in
            try authorize(request)
            let keys = service.keyRing.current
            // What this instance uses now (the file may be newer by up to one reload interval).
            let statuses = KeyFiles.status(material: keys.material, secrets: keys.secrets, now: service.clock.now())
            return try JSONBody.response(KeyListResponse(keys: statuses.map(KeyResponse.init)))
        }
        group.post("keys/rotate") { request, context in
            try authorize(request)
            let body = try await JSONBody.decode(RotateRequest.self, from: request)
            guard let kind = KeyKind(rawValue: body.kind) else {
                throw APIError.invalidRequest("kind must be signing, refresh or encryption")
            }
            if let delay = body.publishDelay, delay < 0 { throw APIError.invalidRequest("publish_delay must not be negative") }
            let rotated = try await files().rotate(kind, now: service.clock.now(), publishDelay: body.publishDelay ?? keyPublishDelay)
            service.keyRing.replace(material: rotated.material, secrets: rotated.secrets)
            service.audit.record(.keyRotated(kind: kind.rawValue, keyID: rotated.key.id), client: ClientInfo(request, context, trustedProxies: trustedProxies))
            return try JSONBody.response(KeyResponse(rotated.key), status: .created)
        }
        group.delete("keys/{kid}") { request, context in
            try authorize(request)
            let id = try context.parameters.require("kid")
            let retired = try await files().retire(id, now: service.clock.now()) { try await service.sealedSecretCount(keyID: $0) }
            service.keyRing.replace(material: retired.material, secrets: retired.secrets)
            service.audit.record(.adminAction("key.retired", details: ["key_kind": retired.kind.rawValue, "key_id": id]), client: ClientInfo(request, context, trustedProxies: trustedProxies))
            return try JSONBody.response(RetiredResponse(kind: retired.kind.rawValue, id: id))
        }
        group.post("keys/reseal") { request, context in
            try authorize(request)
            return try JSONBody.response(ResealResponse(try await service.resealSecrets(client: ClientInfo(request, context, trustedProxies: trustedProxies))))
        }
    }

    private func files() throws -> KeyFiles {
        guard let keyFiles else { throw KeyFiles.Unavailable(description: "this instance has no key files (ephemeral keys)") }
        return keyFiles
    }
}

struct RotateRequest: Decodable {
    var kind: String
    var publishDelay: Double?

    enum CodingKeys: String, CodingKey {
        case kind
        case publishDelay = "publish_delay"
    }
}

struct KeyListResponse: Encodable {
    var keys: [KeyResponse]
}

struct KeyResponse: Encodable {
    var kind: String
    var id: String
    var state: String
    var createdAt: String?
    var activatesAt: String?

    init(_ status: KeyStatus) {
        kind = status.kind.rawValue
        id = status.id
        state = status.state.rawValue
        createdAt = status.createdAt.map(Timestamp.string)
        activatesAt = status.activatesAt.map(Timestamp.string)
    }

    enum CodingKeys: String, CodingKey {
        case kind, id, state
        case createdAt = "created_at"
        case activatesAt = "activates_at"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(kind, forKey: .kind)
        try container.encode(id, forKey: .id)
        try container.encode(state, forKey: .state)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(activatesAt, forKey: .activatesAt)
    }
}

struct RetiredResponse: Encodable {
    var status = "retired"
    var kind: String
    var id: String
}

struct ResealResponse: Encodable {
    struct Counts: Encodable {
        var resealed: Int
        var current: Int
        var changedMeanwhile: Int
        var unreadable: Int

        init(_ counts: ResealCounts) {
            resealed = counts.resealed
            current = counts.current
            changedMeanwhile = counts.changedMeanwhile
            unreadable = counts.unreadable
        }

        enum CodingKeys: String, CodingKey {
            case resealed, current, unreadable
            case changedMeanwhile = "changed_meanwhile"
        }
    }

    var mfaSecrets: Counts
    var credentials: Counts

    init(_ report: ResealReport) {
        mfaSecrets = Counts(report.mfaSecrets)
        credentials = Counts(report.credentials)
    }

    enum CodingKeys: String, CodingKey {
        case credentials
        case mfaSecrets = "mfa_secrets"
    }
}
