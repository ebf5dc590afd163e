// Scaffolding while the SQLite and Redis stores gain credentials and statistics: this file is
// deleted as soon as they implement them, so that the compiler enforces conformance again.
extension TokenStore {
    public func putCredential(_ credential: SessionCredential, limit: Int) async throws -> CredentialWrite {
        throw StoreError(backend: backendName, message: "credentials are not implemented by this store yet")
    }
    public func credential(named name: String, sessionID: String, userID: String) async throws -> SessionCredential? {
        throw StoreError(backend: backendName, message: "credentials are not implemented by this store yet")
    }
    public func deleteCredential(named name: String, sessionID: String, userID: String) async throws -> Bool {
        throw StoreError(backend: backendName, message: "credentials are not implemented by this store yet")
    }
    public func statistics() async throws -> TokenStoreStatistics {
        throw StoreError(backend: backendName, message: "statistics are not implemented by this store yet")
    }
}
