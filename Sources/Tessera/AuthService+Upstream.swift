import Foundation
import Logging

// OAuth2 session credentials: Tessera keeps the upstream access token fresh, with exactly one
// refresh at the provider however many requests and instances ask at once (a lease in the
// token store), so that a rotating provider never sees its refresh token used twice.
extension AuthService {
    /// Stores an OAuth2 credential after the SSRF guard: its token endpoint must be under one
    /// of the allowed prefixes.
    public func putOAuth2Credential(named name: String, _ credential: OAuth2Credential, _ claims: AccessClaims) async throws {
        guard let upstream = security.upstream, !upstream.allowedEndpoints.isEmpty else {
            throw AuthError.invalidRequest("OAuth2 credentials are turned off: no --upstream-token-endpoints configured")
        }
        guard upstream.allows(credential.tokenEndpoint) else {
            throw AuthError.invalidRequest("token_endpoint is not under an allowed --upstream-token-endpoints prefix")
        }
        try await putCredential(named: name, value: try credential.sealedPlaintext(), claims)
    }

    /// The JSON answer for GET: `{"access_token", "expires_in", "token_type"}`, valid for at
    /// least the minimum validity, refreshing first when needed.
    func upstreamAccessToken(_ stored: OAuth2Credential, named name: String, _ claims: AccessClaims) async throws -> Data {
        guard let upstream = security.upstream else { throw AuthError.upstreamUnavailable }
        var credential = stored
        if credential.dead { throw AuthError.upstreamRefreshFailed }
        if !isFresh(credential, upstream) {
            credential = try await refreshCoordinated(named: name, claims, upstream)
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return try encoder.encode(UpstreamAccessToken(
            accessToken: credential.accessToken, expiresIn: Self.wholeSecondsLeft(until: credential.expiresAt, now: clock.now()),
            tokenType: credential.tokenType
        ))
    }

    /// Whole seconds, with a millisecond's slack: a `Date` does not survive its round trip
    /// through seconds since 1970 exactly, and 3600 s must not come out as 3599. At most
    /// `Int32.max` (68 years): an `expires_in` sent as Int64.max, by a client or a provider,
    /// would otherwise not fit back into an `Int` and trap.
    static func wholeSecondsLeft(until end: Date, now: Date) -> Int {
        let seconds = (end.timeIntervalSince(now) + 0.001).rounded(.down)
        return Int(min(max(0, seconds), Double(Int32.max)))
    }

    private func isFresh(_ credential: OAuth2Credential, _ upstream: UpstreamCredentials) -> Bool {
        credential.expiresAt.timeIntervalSince(clock.now()) >= upstream.minValidity
    }

    /// Takes the lease and refreshes, or waits for the holder's result (polling the store),
    /// for at most the lease's TTL plus a margin.
    private func refreshCoordinated(named name: String, _ claims: AccessClaims, _ upstream: UpstreamCredentials) async throws -> OAuth2Credential {
        let started = clock.now()
        let deadline = ContinuousClock.now + .milliseconds(Int64((upstream.leaseTTL + 2) * 1000))
        while true {
            let fence = SecureRandom.identifier(byteCount: 16)
            if try await tokens.acquireCredentialLease(named: name, sessionID: claims.sid, userID: claims.sub, fence: fence, ttl: upstream.leaseTTL) {
                return try await refreshHoldingLease(named: name, fence: fence, claims, upstream)
            }
            try await Task.sleep(for: .milliseconds(50))
            let current = try await storedOAuth2(named: name, claims)
            if current.dead { throw AuthError.upstreamRefreshFailed }
            if isFresh(current, upstream) { return current }
            // The attempt this caller was waiting for failed: its answer, not another attempt.
            if let failedAt = current.failedAt, failedAt >= started { throw AuthError.upstreamUnavailable }
            if ContinuousClock.now > deadline { throw AuthError.upstreamUnavailable }
        }
    }

    private func refreshHoldingLease(named name: String, fence: String, _ claims: AccessClaims, _ upstream: UpstreamCredentials) async throws
        -> OAuth2Credential
    {
        var credential: OAuth2Credential
        do {
            // Read again under the lease: the previous holder may have just finished.
            credential = try await storedOAuth2(named: name, claims)
        } catch {
            try? await tokens.releaseCredentialLease(named: name, sessionID: claims.sid, userID: claims.sub, fence: fence)
            throw error
        }
        if credential.dead || isFresh(credential, upstream) {
            try await tokens.releaseCredentialLease(named: name, sessionID: claims.sid, userID: claims.sub, fence: fence)
            if credential.dead { throw AuthError.upstreamRefreshFailed }
            return credential
        }
        let request = UpstreamRefreshRequest(
            endpoint: credential.tokenEndpoint, refreshToken: credential.refreshToken, clientID: credential.clientID,
            clientSecret: credential.clientSecret, scope: credential.scope
        )
        // The endpoint was checked when stored; the allowed list may have shrunk since.
        guard upstream.allows(credential.tokenEndpoint) else {
            try await tokens.releaseCredentialLease(named: name, sessionID: claims.sid, userID: claims.sub, fence: fence)
            throw AuthError.upstreamUnavailable
        }
        let outcome: Result<UpstreamTokens, UpstreamFailure>
        do {
            outcome = .success(try await upstream.client.refresh(request))
        } catch let failure as UpstreamFailure {
            outcome = .failure(failure)
        } catch {
            outcome = .failure(.unavailable("\(type(of: error))"))
        }
        let now = clock.now()
        switch outcome {
        case .success(let fresh):
            credential.accessToken = fresh.accessToken
            credential.tokenType = fresh.tokenType
            credential.expiresAt = now.addingTimeInterval(fresh.expiresIn.map(TimeInterval.init) ?? upstream.assumedLifetime)
            if let rotated = fresh.refreshToken { credential.refreshToken = rotated }
            credential.failedAt = nil
            if try await !complete(credential, named: name, fence: fence, claims) {
                // The lease ran out first (a very slow provider): this caller still gets the
                // token it paid for, but a rotated refresh token may be lost.
                logger.warning("upstream refresh finished after its lease", metadata: ["session_id": "\(claims.sid)", "credential": "\(name)"])
            }
            return credential
        case .failure(.invalidGrant):
            credential.dead = true
            _ = try await complete(credential, named: name, fence: fence, claims)
            logger.info("upstream refused the refresh token", metadata: ["session_id": "\(claims.sid)", "credential": "\(name)"])
            throw AuthError.upstreamRefreshFailed
        case .failure(.unavailable(let reason)):
            credential.failedAt = now
            _ = try await complete(credential, named: name, fence: fence, claims)
            logger.warning("upstream refresh failed", metadata: ["session_id": "\(claims.sid)", "credential": "\(name)", "reason": "\(reason)"])
            throw AuthError.upstreamUnavailable
        }
    }

    private func complete(_ credential: OAuth2Credential, named name: String, fence: String, _ claims: AccessClaims) async throws -> Bool {
        let sealed = try secrets.seal(try credential.sealedPlaintext(), context: Self.credentialContext(name, claims))
        return try await tokens.completeCredentialLease(
            SessionCredential(name: name, sessionID: claims.sid, userID: claims.sub, sealed: sealed, updatedAt: clock.now()), fence: fence
        )
    }

    private func storedOAuth2(named name: String, _ claims: AccessClaims) async throws -> OAuth2Credential {
        guard let stored = try await tokens.credential(named: name, sessionID: claims.sid, userID: claims.sub) else {
            throw AuthError.credentialNotFound
        }
        let plaintext = try secrets.open(stored.sealed, context: Self.credentialContext(name, claims))
        // Replaced by an opaque value meanwhile: nothing left to refresh.
        guard let credential = OAuth2Credential.fromPlaintext(plaintext) else { throw AuthError.credentialNotFound }
        return credential
    }
}

private struct UpstreamAccessToken: Encodable {
    var accessToken: String
    var expiresIn: Int
    var tokenType: String

    enum CodingKeys: String, CodingKey {
        case accessToken = "access_token"
        case expiresIn = "expires_in"
        case tokenType = "token_type"
    }
}
