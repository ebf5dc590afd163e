import Foundation
import Tessera
import Tracing

/// Times every call to the token store for `tessera_store_duration_seconds` and counts failures,
/// and with a tracer makes each call a child span (`store.<operation>`) of the request's span.
/// It wraps the real store, inside any fallback, so the figures are the store's own round trips.
struct MeasuredTokenStore: TokenStore {
    let base: any TokenStore
    let metrics: TesseraMetrics
    var tracer: (any Tracer)?

    var backendName: String { base.backendName }

    private func measure<T>(_ operation: String, _ body: () async throws -> T) async throws -> T {
        guard let tracer else { return try await timed(operation, body) }
        return try await traced(tracer, operation, body)
    }

    /// No arguments are recorded: they are ids and token hashes. A failure is marked by its
    /// type only, never its description.
    private func traced<Traced: Tracer, T>(_ tracer: Traced, _ operation: String, _ body: () async throws -> T) async throws -> T {
        let span = tracer.startSpan("store.\(operation)", context: ServiceContext.current ?? .topLevel, ofKind: .client)
        span.attributes["db.system.name"] = base.backendName
        defer { span.end() }
        do {
            return try await ServiceContext.$current.withValue(span.context) { try await timed(operation, body) }
        } catch {
            span.attributes["error.type"] = String(describing: type(of: error))
            span.setStatus(SpanStatus(code: .error))
            throw error
        }
    }

    private func timed<T>(_ operation: String, _ body: () async throws -> T) async throws -> T {
        let start = ContinuousClock.now
        do {
            let result = try await body()
            metrics.storeRoundTrip(operation, duration: ContinuousClock.now - start, failed: false)
            return result
        } catch {
            metrics.storeRoundTrip(operation, duration: ContinuousClock.now - start, failed: true)
            throw error
        }
    }

    func createSession(_ session: SessionRecord) async throws {
        try await measure("create_session") { try await base.createSession(session) }
    }
    func session(id: String, userID: String) async throws -> SessionRecord? {
        try await measure("session") { try await base.session(id: id, userID: userID) }
    }
    func sessions(userID: String) async throws -> [SessionRecord] {
        try await measure("sessions") { try await base.sessions(userID: userID) }
    }
    func rotate(_ request: RotationRequest) async throws -> RotationOutcome {
        try await measure("rotate") { try await base.rotate(request) }
    }
    func revokeSession(id: String, userID: String, accessTTL: TimeInterval) async throws -> Bool {
        try await measure("revoke_session") { try await base.revokeSession(id: id, userID: userID, accessTTL: accessTTL) }
    }
    func endSession(id: String, userID: String, accessTTL: TimeInterval, tokenID: String, tokenExpiresAt: Date) async throws -> Bool {
        try await measure("end_session") {
            try await base.endSession(id: id, userID: userID, accessTTL: accessTTL, tokenID: tokenID, tokenExpiresAt: tokenExpiresAt)
        }
    }
    func revokeAllSessions(userID: String, keeping: String?, accessTTL: TimeInterval) async throws -> Int {
        try await measure("revoke_all_sessions") { try await base.revokeAllSessions(userID: userID, keeping: keeping, accessTTL: accessTTL) }
    }
    func deny(_ key: RevocationKey, userID: String, until: Date) async throws {
        try await measure("deny") { try await base.deny(key, userID: userID, until: until) }
    }
    func isRevoked(tokenID: String, sessionID: String, userID: String) async throws -> Bool {
        try await measure("is_revoked") { try await base.isRevoked(tokenID: tokenID, sessionID: sessionID, userID: userID) }
    }
    func putOneTimeToken(_ token: OneTimeToken) async throws {
        try await measure("put_one_time_token") { try await base.putOneTimeToken(token) }
    }
    func restoreOneTimeToken(_ token: OneTimeToken) async throws -> Bool {
        try await measure("restore_one_time_token") { try await base.restoreOneTimeToken(token) }
    }
    func consumeOneTimeToken(kind: String, userID: String, hash: String) async throws -> OneTimeToken? {
        try await measure("consume_one_time_token") { try await base.consumeOneTimeToken(kind: kind, userID: userID, hash: hash) }
    }
    func putCredential(_ credential: SessionCredential, limit: Int) async throws -> CredentialWrite {
        try await measure("put_credential") { try await base.putCredential(credential, limit: limit) }
    }
    func credential(named name: String, sessionID: String, userID: String) async throws -> SessionCredential? {
        try await measure("credential") { try await base.credential(named: name, sessionID: sessionID, userID: userID) }
    }
    func deleteCredential(named name: String, sessionID: String, userID: String) async throws -> Bool {
        try await measure("delete_credential") { try await base.deleteCredential(named: name, sessionID: sessionID, userID: userID) }
    }
    func sealedCredentials() async throws -> [SessionCredential] {
        try await measure("sealed_credentials") { try await base.sealedCredentials() }
    }
    func replaceSealedCredential(_ credential: SessionCredential, expected: String) async throws -> Bool {
        try await measure("replace_sealed_credential") { try await base.replaceSealedCredential(credential, expected: expected) }
    }
    func acquireCredentialLease(named name: String, sessionID: String, userID: String, fence: String, ttl: TimeInterval) async throws -> Bool {
        try await measure("acquire_credential_lease") {
            try await base.acquireCredentialLease(named: name, sessionID: sessionID, userID: userID, fence: fence, ttl: ttl)
        }
    }
    func completeCredentialLease(_ credential: SessionCredential, fence: String) async throws -> Bool {
        try await measure("complete_credential_lease") { try await base.completeCredentialLease(credential, fence: fence) }
    }
    func releaseCredentialLease(named name: String, sessionID: String, userID: String, fence: String) async throws {
        try await measure("release_credential_lease") {
            try await base.releaseCredentialLease(named: name, sessionID: sessionID, userID: userID, fence: fence)
        }
    }
    func statistics() async throws -> TokenStoreStatistics {
        try await measure("statistics") { try await base.statistics() }
    }
    func ping() async throws {
        try await measure("ping") { try await base.ping() }
    }
    func purgeExpired() async throws -> Int {
        try await measure("purge_expired") { try await base.purgeExpired() }
    }
    var revocationFeed: RevocationFeed? { base.revocationFeed }
    func liveRevocations() async throws -> [Revocation] {
        try await measure("live_revocations") { try await base.liveRevocations() }
    }
}

extension TesseraMetrics {
    /// `store` with every call timed and counted, and traced with `tracer`; wrap the real store,
    /// inside any fallback.
    public func measuring(_ store: any TokenStore, tracer: (any Tracer)? = nil) -> any TokenStore {
        MeasuredTokenStore(base: store, metrics: self, tracer: tracer)
    }
}
