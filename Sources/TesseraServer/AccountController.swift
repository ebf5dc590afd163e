import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Tessera

// Sessions per device, passwords, MFA and upstream credentials. docs/API.md is the contract.
extension AuthController {
    struct PasswordChangeBody: Decodable {
        var currentPassword: String
        var newPassword: String
        enum CodingKeys: String, CodingKey {
            case currentPassword = "current_password"
            case newPassword = "new_password"
        }
    }

    struct ForgotBody: Decodable {
        var email: String
    }

    struct ResetBody: Decodable {
        var token: String
        var newPassword: String
        enum CodingKeys: String, CodingKey {
            case token
            case newPassword = "new_password"
        }
    }

    struct PasswordBody: Decodable {
        var password: String
    }

    /// MFA changes carry the current password (re-authentication) as well as the code.
    struct CodePasswordBody: Decodable {
        var code: String
        var password: String
    }

    struct MFAVerifyBody: Decodable {
        var mfaToken: String
        var code: String
        enum CodingKeys: String, CodingKey {
            case mfaToken = "mfa_token"
            case code
        }
    }

    func addAccountRoutes(to group: RouterGroup<TesseraRequestContext>) {
        group.get("sessions") { request, _ in
            let claims = try await authenticate(request)
            let sessions = try await service.sessions(claims)
            return try JSONBody.response(SessionListResponse(sessions: sessions.map { SessionResponse($0, current: $0.id == claims.sid) }))
        }
        group.delete("sessions/{id}") { request, context in
            let claims = try await authenticate(request)
            let id = try context.parameters.require("id")
            try await service.endSession(id: id, claims, client: clientInfo(request, context))
            // Ending another device's session leaves this browser signed in.
            return id == claims.sid ? Self.sessionEnded() : Response(status: .noContent)
        }

        group.post("password/change") { request, context in
            let claims = try await authenticate(request)
            let body = try await JSONBody.decode(PasswordChangeBody.self, from: request)
            try await service.changePassword(current: body.currentPassword, new: body.newPassword, claims, client: clientInfo(request, context))
            return Response(status: .noContent)
        }
        group.post("password/forgot") { request, context in
            let body = try await JSONBody.decode(ForgotBody.self, from: request)
            try await service.forgotPassword(email: body.email, client: clientInfo(request, context))
            return try JSONBody.response(Accepted(), status: .accepted)
        }
        group.post("password/reset") { request, context in
            let body = try await JSONBody.decode(ResetBody.self, from: request)
            try await service.resetPassword(token: body.token, new: body.newPassword, client: clientInfo(request, context))
            // Every session of the user has ended, this browser's included.
            return Self.sessionEnded()
        }

        group.post("mfa/enroll") { request, context in
            let claims = try await authenticate(request)
            let body = try await JSONBody.decode(PasswordBody.self, from: request)
            let enrollment = try await service.enrollMFA(password: body.password, claims, client: clientInfo(request, context))
            return try JSONBody.response(EnrollmentResponse(secret: enrollment.secret, otpauthURI: enrollment.otpauthURI))
        }
        group.post("mfa/confirm") { request, context in
            let claims = try await authenticate(request)
            let body = try await JSONBody.decode(CodePasswordBody.self, from: request)
            let codes = try await service.confirmMFA(code: body.code, password: body.password, claims, client: clientInfo(request, context))
            return try JSONBody.response(RecoveryCodesResponse(recoveryCodes: codes))
        }
        group.post("mfa/disable") { request, context in
            let claims = try await authenticate(request)
            let body = try await JSONBody.decode(CodePasswordBody.self, from: request)
            try await service.disableMFA(code: body.code, password: body.password, claims, client: clientInfo(request, context))
            return Response(status: .noContent)
        }
        group.post("mfa/recovery-codes") { request, context in
            let claims = try await authenticate(request)
            let body = try await JSONBody.decode(PasswordBody.self, from: request)
            let codes = try await service.regenerateRecoveryCodes(password: body.password, claims, client: clientInfo(request, context))
            return try JSONBody.response(RecoveryCodesResponse(recoveryCodes: codes))
        }
        group.post("mfa/verify") { request, context in
            let transport = try TokenTransport(request.headers)
            let body = try await JSONBody.decode(MFAVerifyBody.self, from: request)
            let grant = try await service.verifyMFA(token: body.mfaToken, code: body.code, client: clientInfo(request, context))
            return try tokenResponse(grant, transport)
        }

        group.get("session/credentials/{name}") { request, context in
            let claims = try await authenticate(request)
            let value = try await service.credential(named: try context.parameters.require("name"), claims)
            return Response(
                status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                body: .init(byteBuffer: ByteBuffer(bytes: value))
            )
        }
        group.put("session/credentials/{name}") { request, context in
            let claims = try await authenticate(request)
            try JSONBody.requireJSONContentType(request)
            // Any JSON value the application chooses (typically an object with the provider's tokens).
            let buffer = try await request.body.collect(upTo: AuthService.maxCredentialSize + 1)
            guard buffer.readableBytes <= AuthService.maxCredentialSize else {
                throw APIError(.contentTooLarge, code: "payload_too_large", detail: "A credential is at most \(AuthService.maxCredentialSize) bytes.")
            }
            let data = Data(buffer.readableBytesView)
            guard let value = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) else {
                throw APIError(.badRequest, code: "malformed_json", detail: "The credential must be a JSON value.")
            }
            let name = try context.parameters.require("name")
            if (value as? [String: Any])?["type"] as? String == "oauth2" {
                let body = try JSONBody.decodeValue(OAuth2CredentialBody.self, from: data)
                try await service.putOAuth2Credential(named: name, try body.credential(now: service.clock.now()), claims)
            } else {
                try await service.putCredential(named: name, value: data, claims)
            }
            return Response(status: .noContent)
        }
        group.delete("session/credentials/{name}") { request, context in
            let claims = try await authenticate(request)
            try await service.deleteCredential(named: try context.parameters.require("name"), claims)
            return Response(status: .noContent)
        }
    }
}

/// `{"type": "oauth2", "access_token", "refresh_token", "expires_in", "token_endpoint",
/// "client_id", "client_secret"?, "scope"?}`.
struct OAuth2CredentialBody: Decodable {
    var accessToken: String
    var refreshToken: String
    var expiresIn: Int
    var tokenEndpoint: String
    var clientID: String
    var clientSecret: String?
    var scope: String?
    var tokenType: String?

    enum CodingKeys: String, CodingKey {
        case accessToken = "access_token", refreshToken = "refresh_token", expiresIn = "expires_in", tokenEndpoint = "token_endpoint"
        case clientID = "client_id", clientSecret = "client_secret", scope, tokenType = "token_type"
    }

    func credential(now: Date) throws -> OAuth2Credential {
        for (field, value) in [("access_token", accessToken), ("refresh_token", refreshToken), ("client_id", clientID)] where value.isEmpty {
            throw APIError.invalidRequest("field '\(field)' must not be empty")
        }
        guard expiresIn >= 0 else { throw APIError.invalidRequest("field 'expires_in' must not be negative") }
        return OAuth2Credential(
            accessToken: accessToken, tokenType: tokenType ?? "Bearer", expiresAt: now.addingTimeInterval(TimeInterval(expiresIn)),
            refreshToken: refreshToken, tokenEndpoint: tokenEndpoint, clientID: clientID, clientSecret: clientSecret, scope: scope
        )
    }
}

struct Accepted: Encodable {
    var status = "accepted"
}

/// Shown once: only hashes are stored.
struct RecoveryCodesResponse: Encodable {
    var recoveryCodes: [String]
    enum CodingKeys: String, CodingKey { case recoveryCodes = "recovery_codes" }
}

struct EnrollmentResponse: Encodable {
    var secret: String
    var otpauthURI: String
    enum CodingKeys: String, CodingKey {
        case secret
        case otpauthURI = "otpauth_uri"
    }
}

struct SessionListResponse: Encodable {
    var sessions: [SessionResponse]
}

struct SessionResponse: Encodable {
    var id: String
    var device: String?
    var userAgent: String?
    var ipAddress: String?
    var createdAt: String
    var lastUsedAt: String
    var expiresAt: String
    /// nil (left out) where there is no current session: the admin API.
    var current: Bool?

    init(_ session: SessionRecord, current: Bool?) {
        id = session.id
        device = session.device
        userAgent = session.userAgent
        ipAddress = session.ipAddress
        createdAt = Timestamp.string(session.createdAt)
        lastUsedAt = Timestamp.string(session.lastUsedAt)
        expiresAt = Timestamp.string(session.expiresAt)
        self.current = current
    }

    enum CodingKeys: String, CodingKey {
        case id, device, current
        case userAgent = "user_agent"
        case ipAddress = "ip_address"
        case createdAt = "created_at"
        case lastUsedAt = "last_used_at"
        case expiresAt = "expires_at"
    }

    // Absent values are written as null: every session has the same shape.
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(device, forKey: .device)
        try container.encode(userAgent, forKey: .userAgent)
        try container.encode(ipAddress, forKey: .ipAddress)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(lastUsedAt, forKey: .lastUsedAt)
        try container.encode(expiresAt, forKey: .expiresAt)
        try container.encodeIfPresent(current, forKey: .current)
    }
}

