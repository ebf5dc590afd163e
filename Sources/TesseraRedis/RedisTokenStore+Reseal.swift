import Foundation
import Tessera
import TesseraRESP

/// Re-sealing credentials under a new encryption key: `sealedCredentials()` walks the
/// credentials keys of this prefix with SCAN (MATCH `P{u:*}:cred:*`) and reads each one whose
/// session is live; `replaceSealedCredential` is one script (session checked, value compared,
/// value written). O(keys in the database): for `tessera keys reseal`, never a request path.
extension RedisTokenStore {
    public func sealedCredentials() async throws -> [SessionCredential] {
        var found: [SessionCredential] = []
        try await scan(matching: globEscaped(keyPrefix) + "{u:*}:cred:*") { batch in
            for key in batch {
                guard let (userID, sessionID) = credentialsOwner(key), try await session(id: sessionID, userID: userID) != nil else { continue }
                let fields = try await send(["HGETALL", .init(key)])
                for (name, value) in fields.stringMap ?? [:] {
                    guard let text = value.string, let space = text.firstIndex(of: " "), let updated = Double(text[..<space]) else {
                        throw malformed("credential")
                    }
                    found.append(
                        SessionCredential(
                            name: name, sessionID: sessionID, userID: userID, sealed: String(text[text.index(after: space)...]),
                            updatedAt: Date(timeIntervalSince1970: updated)
                        )
                    )
                }
            }
        }
        return found
    }

    public func replaceSealedCredential(_ credential: SessionCredential, expected: String) async throws -> Bool {
        let reply = try await run(
            RedisResealScripts.replace,
            keys: [sessionKey(credential.userID, credential.sessionID), credentialsKey(credential.userID, credential.sessionID)],
            [
                .init(Self.text(clock.now())), .init(credential.userID), .init(credential.name),
                .init(Self.text(credential.updatedAt) + " " + credential.sealed), .init(expected),
            ]
        )
        return reply.int == 1
    }

    /// (user id, session id) of a `P{u:U}:cred:<sid>` key.
    private func credentialsOwner(_ key: String) -> (String, String)? {
        guard key.hasPrefix(keyPrefix + "{u:") else { return nil }
        let rest = key.dropFirst(keyPrefix.count + 3)
        guard let close = rest.range(of: "}:cred:") else { return nil }
        let userID = String(rest[..<close.lowerBound])
        let sessionID = String(rest[close.upperBound...])
        guard !userID.isEmpty, !sessionID.isEmpty else { return nil }
        return (userID, sessionID)
    }
}

enum RedisResealScripts {
    /// KEYS: session, credentials of the session. ARGV: now, user id, name, new value, expected
    /// sealed value. Returns 1 when the value was replaced.
    static let replace = RedisScript(name: "reseal.replace", 
        RedisCredentialScripts.liveSession + """
            if not liveSession() then return 0 end
            local current = redis.call('HGET', KEYS[2], ARGV[3])
            if not current then return 0 end
            local space = string.find(current, ' ', 1, true)
            if not space or string.sub(current, space + 1) ~= ARGV[5] then return 0 end
            redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
            return 1
            """
    )
}
