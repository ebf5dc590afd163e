import Foundation
import Tessera
import TesseraRESP

/// Upstream-refresh leases: `P{u:U}:lease:<session id>:<name>` = "<fence> <until>", with a
/// Redis TTL of the lease's length as a backstop; expiry is checked against the injected clock in
/// each script, like every other expiry of this store. Completing a lease checks the fence and
/// writes the credential in the same script, so a holder whose lease ran out cannot overwrite
/// the result of the one that took it over.
extension RedisTokenStore {
    func leaseKey(_ userID: String, _ sessionID: String, _ name: String) -> String { userPrefix(userID) + "lease:\(sessionID):\(name)" }

    public func acquireCredentialLease(named name: String, sessionID: String, userID: String, fence: String, ttl: TimeInterval) async throws
        -> Bool
    {
        let now = clock.now()
        let reply = try await run(
            RedisLeaseScripts.acquire, keys: [sessionKey(userID, sessionID), leaseKey(userID, sessionID, name)],
            [.init(Self.text(now)), .init(userID), .init(fence), .init(Self.text(now.addingTimeInterval(ttl))), .init(max(1, Int((ttl * 1000).rounded(.up))))]
        )
        return reply.int == 1
    }

    public func completeCredentialLease(_ credential: SessionCredential, fence: String) async throws -> Bool {
        let reply = try await run(
            RedisLeaseScripts.complete,
            keys: [
                sessionKey(credential.userID, credential.sessionID), credentialsKey(credential.userID, credential.sessionID),
                leaseKey(credential.userID, credential.sessionID, credential.name),
            ],
            [
                .init(Self.text(clock.now())), .init(credential.userID), .init(credential.name),
                .init(Self.text(credential.updatedAt) + " " + credential.sealed), .init(fence),
            ]
        )
        return reply.int == 1
    }

    public func releaseCredentialLease(named name: String, sessionID: String, userID: String, fence: String) async throws {
        try await run(RedisLeaseScripts.release, keys: [leaseKey(userID, sessionID, name)], [.init(fence)])
    }
}

enum RedisLeaseScripts {
    /// KEYS: session, lease. ARGV: now, user id, fence, until, ttl in ms. Returns 1 when taken.
    static let acquire = RedisScript(name: "lease.acquire", 
        RedisCredentialScripts.liveSession + """
            if not liveSession() then return 0 end
            local held = redis.call('GET', KEYS[2])
            if held then
              local _, untilTime = string.match(held, '^(%S+) (%S+)$')
              if untilTime and tonumber(ARGV[1]) < tonumber(untilTime) then return 0 end
            end
            redis.call('SET', KEYS[2], ARGV[3] .. ' ' .. ARGV[4], 'PX', ARGV[5])
            return 1
            """
    )

    /// KEYS: session, credentials, lease. ARGV: now, user id, name, value, fence. Returns 1 when
    /// the value was written (the fence held an unexpired lease, the session and credential live).
    static let complete = RedisScript(name: "lease.complete", 
        RedisCredentialScripts.liveSession + """
        if not liveSession() then return 0 end
        local held = redis.call('GET', KEYS[3])
        if not held then return 0 end
        local fence, untilTime = string.match(held, '^(%S+) (%S+)$')
        if fence ~= ARGV[5] or tonumber(ARGV[1]) >= tonumber(untilTime) then return 0 end
        redis.call('DEL', KEYS[3])
        if redis.call('HEXISTS', KEYS[2], ARGV[3]) == 0 then return 0 end
        redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
        return 1
        """
    )

    /// KEYS: lease. ARGV: fence. Deletes the lease only if that fence holds it.
    static let release = RedisScript(name: "lease.release", 
        """
        local held = redis.call('GET', KEYS[1])
        if held and string.match(held, '^(%S+) ') == ARGV[1] then redis.call('DEL', KEYS[1]) end
        return 0
        """
    )
}
