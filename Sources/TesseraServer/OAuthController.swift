import Foundation
import HTTPTypes
import Hummingbird
import Tessera

/// RFC 7662 introspection and RFC 7009 revocation at `/v1/oauth/*`, for callers holding the
/// service key (`Authorization: Bearer <key>`, or HTTP Basic with the key as password).
struct OAuthController: Sendable {
    let service: AuthService
    let serviceKey: SharedKey
    var trustedProxies = TrustedProxies.none

    func addRoutes(to group: RouterGroup<TesseraRequestContext>) {
        group.post("introspect") { request, _ in
            try authorize(request)
            let (token, hint) = try await Self.tokenParameters(request)
            guard let facts = try await service.introspect(token: token, hint: hint) else {
                return try JSONBody.response(Inactive())
            }
            return try JSONBody.response(Active(facts))
        }
        group.post("revoke") { request, context in
            try authorize(request)
            let (token, _) = try await Self.tokenParameters(request)
            try await service.revoke(token: token, client: ClientInfo(request, context, trustedProxies: trustedProxies))
            return Response(status: .ok, headers: [.cacheControl: "no-store"])
        }
    }

    /// `token` (required) and `token_type_hint` (optional; unknown hints are ignored, RFC 7009 §2.1).
    static func tokenParameters(_ request: Request) async throws -> (String, TokenIntrospection.Kind?) {
        let form = try await FormBody.decode(from: request)
        guard let token = form["token"], !token.isEmpty else { throw FormBody.invalid("missing parameter 'token'") }
        return (token, form["token_type_hint"].flatMap(TokenIntrospection.Kind.init(rawValue:)))
    }

    /// Bearer, or HTTP Basic with the key as the password.
    private func authorize(_ request: Request) throws {
        guard serviceKey.authorizes(request) else {
            throw APIError(
                .unauthorized, code: "invalid_service_key",
                detail: "This endpoint needs the service key, as a Bearer token or as the HTTP Basic password.",
                headers: [.wwwAuthenticate: "Basic realm=\"tessera-service\", Bearer realm=\"tessera-service\""]
            )
        }
    }

    struct Inactive: Encodable {
        var active = false
    }

    struct Active: Encodable {
        var active = true
        var sub: String
        var sid: String
        var jti: String?
        var exp: Int64
        var iat: Int64
        var iss: String
        var tokenType: String
        var username: String

        init(_ facts: TokenIntrospection) {
            sub = facts.subject
            sid = facts.sessionID
            jti = facts.tokenID
            exp = facts.expiresAt
            iat = facts.issuedAt
            iss = facts.issuer
            // RFC 7662 §2.2 uses RFC 6749's token types; refresh tokens have none, so their hint name.
            tokenType = facts.kind == .accessToken ? "Bearer" : "refresh_token"
            username = facts.username
        }

        enum CodingKeys: String, CodingKey {
            case active, sub, sid, jti, exp, iat, iss, username
            case tokenType = "token_type"
        }
    }
}
