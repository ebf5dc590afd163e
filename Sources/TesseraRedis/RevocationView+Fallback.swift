import Foundation
import Tessera

extension RevocationView: KnownRevocations {
    /// Answers from the entries held, trusted or not: while Redis is unreachable they are the
    /// last known denylist, and an entry never turns false before its time (no message can
    /// un-revoke a token), so a stale view can only miss revocations, not invent them.
    public func knownRevoked(tokenID: String, sessionID: String, userID: String) -> Bool {
        let prefix = "\(keyPrefix){u:\(userID)}:deny:"
        return holds(prefix + RevocationKey.tokenID(tokenID).storageKey, prefix + RevocationKey.session(sessionID).storageKey)
    }

    /// The entries in force, trusted or not, with their users: parsed back from the deny keys
    /// (`<prefix>{u:<user>}:deny:<sid|jti>:<id>`, the tail by `Revocation`'s own parser); a key
    /// of another shape is skipped.
    public func knownDenials() -> [KnownDenial] {
        entries(inForceAt: clock.now()).compactMap { key, until in
            guard key.hasPrefix(keyPrefix + "{u:"), let close = key.range(of: "}:deny:"),
                let revocation = Revocation(storageKey: key, until: until)
            else { return nil }
            let userID = String(key[key.index(key.startIndex, offsetBy: keyPrefix.count + 3)..<close.lowerBound])
            guard !userID.isEmpty else { return nil }
            let denial: RevocationKey = revocation.kind == .sid ? .session(revocation.id) : .tokenID(revocation.id)
            return KnownDenial(key: denial, userID: userID, until: Date(timeIntervalSince1970: until))
        }
    }
}
