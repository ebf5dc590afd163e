import Foundation
import HTTPTypes
import Hummingbird
import Tessera

/// HTTP API v1. docs/API.md is the contract these routes implement.
struct AuthController: Sendable {
    let service: AuthService
    let browser: BrowserPolicy
    /// Whose forwarding headers name the client (`--trusted-proxies`).
    var trustedProxies = TrustedProxies.none

    struct Credentials: Decodable {
        var email: String
        var password: String
        var device: String?
    }

    struct RefreshBody: Decodable {
        var refreshToken: String?
        enum CodingKeys: String, CodingKey { case refreshToken = "refresh_token" }
    }

    func addRoutes(to group: RouterGroup<TesseraRequestContext>) {
        group.post("register") { request, context in
            let transport = try TokenTransport(request.headers)
            let body = try await JSONBody.decode(Credentials.self, from: request)
            let grant = try await service.register(
                email: body.email, password: body.password, client: clientInfo(request, context, device: body.device)
            )
            return try tokenResponse(grant, transport, status: .created)
        }
        group.post("login") { request, context in
            let transport = try TokenTransport(request.headers)
            let body = try await JSONBody.decode(Credentials.self, from: request)
            let result = try await service.login(
                email: body.email, password: body.password, client: clientInfo(request, context, device: body.device)
            )
            switch result {
            case .tokens(let grant):
                return try tokenResponse(grant, transport)
            case .mfaRequired(let challenge):
                return try JSONBody.response(MFARequiredResponse(mfaToken: challenge.token, expiresIn: challenge.expiresIn))
            }
        }
        group.post("refresh") { request, context in
            var transport = try TokenTransport(request.headers)
            let body = try await JSONBody.decodeIfPresent(RefreshBody.self, from: request)
            var token = body?.refreshToken
            if token == nil, let cookie = SessionCookies.value(of: SessionCookies.refreshName, in: request.headers) {
                // A refresh authenticated by the cookie is a cookie request: the CSRF rule
                // applies, and its tokens never go into the body.
                try browser.verifyRequestOrigin(request)
                token = cookie
                transport = .cookie
            }
            do {
                guard let token else {
                    // No body and no cookie presents no refresh token at all: 401, like a
                    // cookie-mode request without its cookie. A JSON body without the field is
                    // malformed: 422.
                    let presentedNothing = body == nil || transport == .cookie
                    throw presentedNothing ? AuthError.invalidRefreshToken : APIError.invalidRequest("missing field 'refresh_token'")
                }
                let grant = try await service.refresh(refreshToken: token, client: clientInfo(request, context))
                return try tokenResponse(grant, transport)
            } catch let error as AuthError where error == .invalidRefreshToken || error == .refreshTokenReused {
                // The session is over (or never was): the browser must drop its cookies.
                var problem = APIError(error)
                problem.headers.append(contentsOf: SessionCookies.clearing)
                throw problem
            }
        }
        group.post("logout") { request, context in
            try await service.logout(try await authenticate(request), client: clientInfo(request, context))
            return Self.sessionEnded()
        }
        group.post("logout-all") { request, context in
            try await service.logoutAll(try await authenticate(request), client: clientInfo(request, context))
            return Self.sessionEnded()
        }
        group.get("me") { request, _ in
            let user = try await service.currentUser(try await authenticate(request))
            return try JSONBody.response(UserResponse(user))
        }
        addAccountRoutes(to: group)
    }

    /// The access token's claims (Bearer header or access cookie), after signature, expiry and
    /// revocation checks; a cookie-authenticated unsafe request must also pass the CSRF check.
    func authenticate(_ request: Request) async throws -> AccessClaims {
        guard let credential = AccessCredential(request.headers) else { throw AuthError.invalidToken }
        if credential.isCookie { try browser.verifyRequestOrigin(request) }
        return try await service.authenticate(bearer: credential.token)
    }

    /// A token response: tokens in the body (bearer), or in cookies and out of the body.
    func tokenResponse(_ grant: TokenGrant, _ transport: TokenTransport, status: HTTPResponse.Status = .ok) throws -> Response {
        switch transport {
        case .bearer:
            return try JSONBody.response(TokenResponse(grant), status: status)
        case .cookie:
            var response = try JSONBody.response(TokenResponse(grant, includingTokens: false), status: status)
            response.headers.append(contentsOf: SessionCookies.setting(grant))
            return response
        }
    }

    /// 204 for an answer that ends the caller's session, with both cookies cleared (a no-op for
    /// Bearer clients, which have none).
    static func sessionEnded() -> Response {
        var headers = HTTPFields()
        headers.append(contentsOf: SessionCookies.clearing)
        return Response(status: .noContent, headers: headers)
    }

    func clientInfo(_ request: Request, _ context: TesseraRequestContext, device: String? = nil) -> ClientInfo {
        ClientInfo(request, context, trustedProxies: trustedProxies, device: device)
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
    /// nil in cookie mode: the tokens are in cookies, out of reach of page scripts.
    var accessToken: String?
    var tokenType = "Bearer"
    var expiresIn: Int
    var refreshToken: String?
    var refreshExpiresIn: Int
    var sessionID: String
    var user: UserResponse

    init(_ grant: TokenGrant, includingTokens: Bool = true) {
        accessToken = includingTokens ? grant.accessToken : nil
        expiresIn = grant.accessExpiresIn
        refreshToken = includingTokens ? grant.refreshToken : nil
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
