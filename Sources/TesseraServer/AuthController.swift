import Foundation
import HTTPTypes
import Hummingbird
import Tessera

/// HTTP API v1. docs/API.md is the contract these routes implement.
struct AuthController: Sendable {
    let service: AuthService
    /// Whose forwarding headers name the client (`--trusted-proxies`).
    var trustedProxies = TrustedProxies.none

    struct Credentials: Decodable {
        var email: String
        var password: String
        var device: String?
    }

    struct RefreshBody: Decodable {
        var refreshToken: String
        enum CodingKeys: String, CodingKey { case refreshToken = "refresh_token" }
    }

    func addRoutes(to group: RouterGroup<TesseraRequestContext>) {
        group.post("register") { request, context in
            let body = try await JSONBody.decode(Credentials.self, from: request)
            let grant = try await service.register(
                email: body.email, password: body.password, client: clientInfo(request, context, device: body.device)
            )
            return try JSONBody.response(TokenResponse(grant), status: .created)
        }
        group.post("login") { request, context in
            let body = try await JSONBody.decode(Credentials.self, from: request)
            let result = try await service.login(
                email: body.email, password: body.password, client: clientInfo(request, context, device: body.device)
            )
            switch result {
            case .tokens(let grant):
                return try JSONBody.response(TokenResponse(grant))
            case .mfaRequired(let challenge):
                return try JSONBody.response(MFARequiredResponse(mfaToken: challenge.token, expiresIn: challenge.expiresIn))
            }
        }
        group.post("refresh") { request, context in
            let body = try await JSONBody.decode(RefreshBody.self, from: request)
            let grant = try await service.refresh(refreshToken: body.refreshToken, client: clientInfo(request, context))
            return try JSONBody.response(TokenResponse(grant))
        }
        group.post("logout") { request, _ in
            try await service.logout(try await authenticate(request))
            return Response(status: .noContent)
        }
        group.post("logout-all") { request, _ in
            try await service.logoutAll(try await authenticate(request))
            return Response(status: .noContent)
        }
        group.get("me") { request, _ in
            let user = try await service.currentUser(try await authenticate(request))
            return try JSONBody.response(UserResponse(user))
        }
        addAccountRoutes(to: group)
    }

    /// The Bearer token's claims, after signature, expiry and revocation checks.
    func authenticate(_ request: Request) async throws -> AccessClaims {
        guard let token = request.bearerToken else { throw AuthError.invalidToken }
        return try await service.authenticate(bearer: token)
    }

    func clientInfo(_ request: Request, _ context: TesseraRequestContext, device: String? = nil) -> ClientInfo {
        ClientInfo(
            // Bounded in UTF-8 bytes: one character can be thousands of bytes of combining marks.
            device: device.map { $0.truncatedToUTF8(200) },
            userAgent: request.headers[.userAgent].map { $0.truncatedToUTF8(512) },
            ipAddress: trustedProxies.clientAddress(peer: context.remoteAddress?.ipAddress, headers: request.headers)
        )
    }
}

extension Request {
    /// The credential of an `Authorization: Bearer <token>` header (scheme case-insensitive).
    var bearerToken: String? {
        guard let header = headers[.authorization] else { return nil }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        return parts[1].trimmingCharacters(in: .whitespaces)
    }
}

struct MFARequiredResponse: Encodable {
    var mfaRequired = true
    var mfaToken: String
    var expiresIn: Int

    enum CodingKeys: String, CodingKey {
        case mfaRequired = "mfa_required"
        case mfaToken = "mfa_token"
        case expiresIn = "expires_in"
    }
}

struct UserResponse: Encodable {
    var id: String
    var email: String
    var mfaEnabled: Bool
    var createdAt: String

    init(_ user: User) {
        id = user.id
        email = user.email
        mfaEnabled = user.mfaEnabled
        createdAt = Timestamp.string(user.createdAt)
    }

    enum CodingKeys: String, CodingKey {
        case id, email
        case mfaEnabled = "mfa_enabled"
        case createdAt = "created_at"
    }
}

struct TokenResponse: Encodable {
    var accessToken: String
    var tokenType = "Bearer"
    var expiresIn: Int
    var refreshToken: String
    var refreshExpiresIn: Int
    var sessionID: String
    var user: UserResponse

    init(_ grant: TokenGrant) {
        accessToken = grant.accessToken
        expiresIn = grant.accessExpiresIn
        refreshToken = grant.refreshToken
        refreshExpiresIn = grant.refreshExpiresIn
        sessionID = grant.sessionID
        user = UserResponse(grant.user)
    }

    enum CodingKeys: String, CodingKey {
        case accessToken = "access_token"
        case tokenType = "token_type"
        case expiresIn = "expires_in"
        case refreshToken = "refresh_token"
        case refreshExpiresIn = "refresh_expires_in"
        case sessionID = "session_id"
        case user
    }
}
