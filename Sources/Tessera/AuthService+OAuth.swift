import Foundation
import Logging

// RFC 7662 introspection and RFC 7009 revocation, for resource servers and gateways that speak
// OAuth rather than Tessera's own API.
extension AuthService {
    /// The token's facts when it is active; nil for anything else (garbage, forged, expired,
    /// revoked, a rotated-out refresh token, a deleted user). `hint` only orders the checks.
    /// Throws only when the store cannot answer.
    public func introspect(token: String, hint: TokenIntrospection.Kind? = nil) async throws -> TokenIntrospection? {
        if hint == .refreshToken, let refresh = try await introspectRefresh(token) { return refresh }
        if let access = try await introspectAccess(token) { return access }
        return hint == .refreshToken ? nil : try await introspectRefresh(token)
    }

    /// An access token: the same checks as `authenticate(bearer:)`, so no store round trip in
    /// steady state.
    private func introspectAccess(_ token: String) async throws -> TokenIntrospection? {
        let claims: AccessClaims
        do {
            claims = try await authenticate(bearer: token)
        } catch is AuthError {
            return nil
        }
        guard let user = try await cachedUser(id: claims.sub) else { return nil }
        return TokenIntrospection(
            kind: .accessToken, subject: claims.sub, sessionID: claims.sid, tokenID: claims.jti, issuedAt: claims.iat,
            expiresAt: claims.exp, issuer: claims.iss, username: user.email
        )
    }

    /// A refresh token is active while it is its live session's current generation.
    private func introspectRefresh(_ token: String) async throws -> TokenIntrospection? {
        guard let decoded = refreshTokens.decode(token),
            let session = try await tokens.session(id: decoded.sessionID, userID: decoded.userID),
            session.generation == decoded.generation, session.isLive(at: clock.now()),
            let user = try await cachedUser(id: session.userID)
        else { return nil }
        return TokenIntrospection(
            kind: .refreshToken, subject: session.userID, sessionID: session.id, tokenID: nil,
            issuedAt: Int64(session.rotatedAt.timeIntervalSince1970.rounded(.down)),
            expiresAt: Int64(session.expiresAt.timeIntervalSince1970.rounded(.down)), issuer: policy.issuer, username: user.email
        )
    }

    /// RFC 7009: a refresh token ends its session (and denies the session's access tokens); an
    /// access token is denied until its `exp`. Unknown, forged or expired tokens are ignored,
    /// as the RFC asks. No hint is needed: the two formats cannot be mistaken for each other.
    /// Throws only when the store cannot answer.
    public func revoke(token: String, client: ClientInfo = .init()) async throws {
        if let decoded = refreshTokens.decode(token) {
            if try await tokens.revokeSession(id: decoded.sessionID, userID: decoded.userID, accessTTL: policy.accessTTL) {
                security.events(.sessionEnded)
                logger.info("session ended by token revocation", metadata: ["session_id": "\(decoded.sessionID)", "user_id": "\(decoded.userID)"])
                audit.record(
                    AuditEvent(.sessionRevoked, userID: decoded.userID, sessionID: decoded.sessionID, details: ["by": "token_revocation"]),
                    client: client
                )
            }
            return
        }
        // Signature and issuer checked; an expired token needs no entry.
        guard let claims = try? accessTokens.verifyCached(token, now: clock.now()) else { return }
        try await tokens.deny(.tokenID(claims.jti), userID: claims.sub, until: claims.expiresAt)
        logger.info("access token revoked", metadata: ["session_id": "\(claims.sid)", "user_id": "\(claims.sub)"])
    }
}
