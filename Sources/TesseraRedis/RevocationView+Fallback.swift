import Tessera

extension RevocationView: KnownRevocations {
    /// Answers from the entries held, trusted or not: while Redis is unreachable they are the
    /// last known denylist, and an entry never turns false before its time (no message can
    /// un-revoke a token), so a stale view can only miss revocations, not invent them.
    public func knownRevoked(tokenID: String, sessionID: String, userID: String) -> Bool {
        let prefix = "\(keyPrefix){u:\(userID)}:deny:"
        return holds(prefix + RevocationKey.tokenID(tokenID).storageKey, prefix + RevocationKey.session(sessionID).storageKey)
    }
}
