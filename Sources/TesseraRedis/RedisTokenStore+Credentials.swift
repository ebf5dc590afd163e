import Foundation
import Tessera
import TesseraRESP

/// Upstream credentials of a session: one hash per session, `P{u:U}:cred:<session id>`, field
/// = credential name, value = "<updated at> <sealed value>". It is a key of its own, not
/// fields of the session hash, so the refresh path (which returns the session hash) never
/// carries credential bytes. It expires at the session's absolute expiry, every read and write
/// checks the session first (so it is unreadable once the session has ended, however it ended),
/// and the revocation scripts delete it with the session.
extension RedisTokenStore {
    func credentialsKey(_ userID: String, _ sessionID: String) -> String { userPrefix(userID) + "cred:\(sessionID)" }

    public func putCredential(_ credential: SessionCredential, limit: Int) async throws -> CredentialWrite {
        let reply = try await run(
            RedisCredentialScripts.put,
            keys: [sessionKey(credential.userID, credential.sessionID), credentialsKey(credential.userID, credential.sessionID)],
            [
                .init(Self.text(clock.now())), .init(credential.userID), .init(credential.name),
                .init(Self.text(credential.updatedAt) + " " + credential.sealed), .init(limit),
            ]
        )
        switch reply.string {
        case "stored": return .stored
        case "missing": return .sessionNotFound
        case "limit": return .limitReached
        default: throw malformed("putCredential")
        }
    }

    public func credential(named name: String, sessionID: String, userID: String) async throws -> SessionCredential? {
        let reply = try await run(
            RedisCredentialScripts.get, keys: [sessionKey(userID, sessionID), credentialsKey(userID, sessionID)],
            [.init(Self.text(clock.now())), .init(userID), .init(name)]
        )
        guard !reply.isNull else { return nil }
        guard let value = reply.string, let space = value.firstIndex(of: " "),
            let updated = Double(value[..<space])
        else { throw malformed("credential") }
        return SessionCredential(
            name: name, sessionID: sessionID, userID: userID, sealed: String(value[value.index(after: space)...]),
            updatedAt: Date(timeIntervalSince1970: updated)
        )
    }

    public func deleteCredential(named name: String, sessionID: String, userID: String) async throws -> Bool {
        let reply = try await run(
            RedisCredentialScripts.delete, keys: [sessionKey(userID, sessionID), credentialsKey(userID, sessionID)],
            [.init(Self.text(clock.now())), .init(userID), .init(name)]
        )
        return reply.int == 1
    }
}

/// The credential scripts. KEYS: session, credentials of the session. ARGV: now, user id, name, …
enum RedisCredentialScripts {
    /// Whether KEYS[1] is a live session of the user ARGV[2] at ARGV[1] (seconds); returns its
    /// absolute expiry in milliseconds.
    static let liveSession = RedisScripts.sessionHelpers + """
        local function liveSession()
          local s = sessionOf(KEYS[1], ARGV[2])
          if not s or tonumber(ARGV[1]) * 1000 >= expiryOf(s.i, s.a) then return nil end
          return s.a
        end

        """

    /// ARGV: now, user id, name, value, limit. Returns 'stored', 'missing' or 'limit'.
    static let put = RedisScript(name: "credential.put", 
        liveSession + """
            local absolute = liveSession()
            if not absolute then return 'missing' end
            if redis.call('HEXISTS', KEYS[2], ARGV[3]) == 0 and redis.call('HLEN', KEYS[2]) >= tonumber(ARGV[5]) then
              return 'limit'
            end
            redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
            redis.call('PEXPIREAT', KEYS[2], absolute)
            return 'stored'
            """
    )

    /// ARGV: now, user id, name. Returns the value, or nil.
    static let get = RedisScript(name: "credential.get", 
        liveSession + """
            if not liveSession() then return false end
            return redis.call('HGET', KEYS[2], ARGV[3])
            """
    )

    /// ARGV: now, user id, name. Returns 1 when a credential was deleted.
    static let delete = RedisScript(name: "credential.delete", 
        liveSession + """
            if not liveSession() then return 0 end
            return redis.call('HDEL', KEYS[2], ARGV[3])
            """
    )
}
