import TesseraRESP

/// The Lua side of `RedisTokenStore`. Each compound operation is one script, so it is one
/// round trip and atomic. Every key a script touches carries the user's hash tag `{u:<id>}`,
/// so all of them live in one Redis Cluster slot.
///
/// Every script that writes a denylist entry also publishes `"<until> <deny key>"` on the
/// revocation channel it is given (`<prefix>revocations`; '' publishes nothing), in the same
/// atomic step, for the instances' `RevocationView`s.
///
/// Times travel as decimal seconds since 1970 in strings written by Swift and stored as-is
/// (Lua only compares them), so no precision is lost; Redis expiries are whole milliseconds.
enum RedisScripts {
    /// Shared helpers, prepended to the scripts that need them.
    private static let helpers = """
        local function deny(key, untilText, channel)
          local untilMs = math.ceil(tonumber(untilText) * 1000)
          local current = redis.call('PEXPIRETIME', key)
          if current < untilMs then
            redis.call('SET', key, untilText, 'PXAT', untilMs)
            if channel ~= '' then redis.call('PUBLISH', channel, untilText .. ' ' .. key) end
          end
        end
        local function expiryOf(idle, absolute)
          return math.min(tonumber(idle), tonumber(absolute))
        end
        local function index(indexKey, sid, expiry, now)
          redis.call('ZADD', indexKey, expiry, sid)
          redis.call('ZREMRANGEBYSCORE', indexKey, '-inf', now)
          local last = redis.call('ZRANGE', indexKey, -1, -1, 'WITHSCORES')
          if last[2] then
            redis.call('PEXPIREAT', indexKey, math.ceil(tonumber(last[2]) * 1000))
          end
        end

        """

    /// KEYS: session, index. ARGV: now, sid, idle, absolute, then field/value pairs.
    static let createSession = RedisScript(name: "createSession", 
        helpers + """
            local expiry = expiryOf(ARGV[3], ARGV[4])
            redis.call('DEL', KEYS[1])
            redis.call('HSET', KEYS[1], unpack(ARGV, 5))
            redis.call('PEXPIREAT', KEYS[1], math.ceil(expiry * 1000))
            index(KEYS[2], ARGV[2], expiry, tonumber(ARGV[1]))
            return 1
            """
    )

    /// KEYS: session, index, session denylist entry, session credentials.
    /// ARGV: now, user id, presented generation, grace seconds, now + idle TTL, revoked until,
    ///       user agent ('' to keep), ip ('' to keep), session id, revocation channel,
    ///       idle TTL, revoked access TTL, '1' to date the rotation by the server's clock.
    /// Returns {'rotated' | 'reissued', fields...}, {'reused'} or {'invalid'}.
    ///
    /// With the server's clock, "now" is when the script runs, not when the request was sent:
    /// a rotation that sat behind a stalled server is dated when it took effect, so the
    /// client's retry of the same token falls inside the grace window (issue 10, finding 5).
    static let rotate = RedisScript(name: "rotate", 
        helpers + """
            if ARGV[13] == '1' then
              local t = redis.call('TIME')
              ARGV[1] = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
              ARGV[5] = string.format('%.6f', tonumber(ARGV[1]) + tonumber(ARGV[11]))
              ARGV[6] = string.format('%.6f', tonumber(ARGV[1]) + tonumber(ARGV[12]))
            end
            local now = tonumber(ARGV[1])
            local s = redis.call('HMGET', KEYS[1], 'uid', 'gen', 'rot', 'idle', 'abs')
            if not s[1] or s[1] ~= ARGV[2] or now >= expiryOf(s[4], s[5]) then
              return {'invalid'}
            end
            local generation = tonumber(s[2])
            local presented = tonumber(ARGV[3])
            if presented == generation then
              local idle = ARGV[5]
              if tonumber(idle) > tonumber(s[5]) then idle = s[5] end
              redis.call('HSET', KEYS[1], 'gen', tostring(generation + 1), 'rot', ARGV[1], 'last', ARGV[1], 'idle', idle)
              if ARGV[7] ~= '' then redis.call('HSET', KEYS[1], 'ua', ARGV[7]) end
              if ARGV[8] ~= '' then redis.call('HSET', KEYS[1], 'ip', ARGV[8]) end
              local expiry = expiryOf(idle, s[5])
              redis.call('PEXPIREAT', KEYS[1], math.ceil(expiry * 1000))
              index(KEYS[2], ARGV[9], expiry, now)
              return {'rotated', redis.call('HGETALL', KEYS[1])}
            elseif presented == generation - 1 and now - tonumber(s[3]) <= tonumber(ARGV[4]) then
              return {'reissued', redis.call('HGETALL', KEYS[1])}
            elseif presented < generation then
              redis.call('DEL', KEYS[1])
              redis.call('DEL', KEYS[4])
              redis.call('ZREM', KEYS[2], ARGV[9])
              deny(KEYS[3], ARGV[6], ARGV[10])
              return {'reused'}
            end
            return {'invalid'}
            """
    )

    /// KEYS: session, index, session denylist entry, session credentials. ARGV: now, user id,
    /// denied until, session id, revocation channel. Returns 1 when a live session of the user was ended.
    static let revokeSession = RedisScript(name: "revokeSession", 
        helpers + """
            local s = redis.call('HMGET', KEYS[1], 'uid', 'idle', 'abs')
            if not s[1] or s[1] ~= ARGV[2] or tonumber(ARGV[1]) >= expiryOf(s[2], s[3]) then
              return 0
            end
            redis.call('DEL', KEYS[1])
            redis.call('DEL', KEYS[4])
            redis.call('ZREM', KEYS[2], ARGV[4])
            deny(KEYS[3], ARGV[3], ARGV[5])
            return 1
            """
    )

    /// KEYS: index. ARGV: now, session id to keep ('' for none), denied until, user key prefix,
    /// revocation channel. The per-session keys are derived from the prefix, which carries the
    /// user's hash tag, so they share the index's slot. Returns {how many live sessions were
    /// ended, then every session id denied}.
    static let revokeAllSessions = RedisScript(name: "revokeAllSessions", 
        helpers + """
            local now = tonumber(ARGV[1])
            local ended = 0
            local result = {0}
            local members = redis.call('ZRANGE', KEYS[1], 0, -1)
            for _, sid in ipairs(members) do
              if sid ~= ARGV[2] then
                local sessionKey = ARGV[4] .. 's:' .. sid
                local s = redis.call('HMGET', sessionKey, 'idle', 'abs')
                if s[1] and now < expiryOf(s[1], s[2]) then ended = ended + 1 end
                redis.call('DEL', sessionKey)
                redis.call('DEL', ARGV[4] .. 'cred:' .. sid)
                redis.call('ZREM', KEYS[1], sid)
                deny(ARGV[4] .. 'deny:sid:' .. sid, ARGV[3], ARGV[5])
                table.insert(result, sid)
              end
            end
            result[1] = ended
            return result
            """
    )

    /// KEYS: index. ARGV: now, user key prefix. Prunes expired members, then returns the
    /// fields of every live session.
    static let listSessions = RedisScript(name: "listSessions", 
        """
        local now = tonumber(ARGV[1])
        redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
        local result = {}
        for _, sid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
          local fields = redis.call('HGETALL', ARGV[2] .. 's:' .. sid)
          if #fields > 0 then table.insert(result, fields) end
        end
        return result
        """
    )

    /// KEYS: denylist entry. ARGV: until, revocation channel.
    static let deny = RedisScript(name: "deny", helpers + "deny(KEYS[1], ARGV[1], ARGV[2])\nreturn 1")

    /// KEYS: the user's token of this kind. ARGV: hash, payload, expires at.
    static let putOneTimeToken = RedisScript(name: "putOneTimeToken", 
        """
        redis.call('DEL', KEYS[1])
        redis.call('HSET', KEYS[1], 'hash', ARGV[1], 'payload', ARGV[2], 'exp', ARGV[3])
        redis.call('PEXPIREAT', KEYS[1], math.ceil(tonumber(ARGV[3]) * 1000))
        return 1
        """
    )

    /// KEYS: the user's token of this kind. ARGV: hash, payload, expires at, now. Stores only when
    /// the user has no live token of this kind (a newer token wins); 1 when stored.
    static let restoreOneTimeToken = RedisScript(name: "restoreOneTimeToken", 
        """
        local exp = redis.call('HGET', KEYS[1], 'exp')
        if exp and tonumber(exp) > tonumber(ARGV[4]) then return 0 end
        redis.call('DEL', KEYS[1])
        redis.call('HSET', KEYS[1], 'hash', ARGV[1], 'payload', ARGV[2], 'exp', ARGV[3])
        redis.call('PEXPIREAT', KEYS[1], math.ceil(tonumber(ARGV[3]) * 1000))
        return 1
        """
    )

    /// KEYS: the user's token of this kind. ARGV: hash. Deletes and returns {payload, exp} on a match.
    static let consumeOneTimeToken = RedisScript(name: "consumeOneTimeToken", 
        """
        local t = redis.call('HMGET', KEYS[1], 'hash', 'payload', 'exp')
        if not t[1] or t[1] ~= ARGV[1] then return false end
        redis.call('DEL', KEYS[1])
        return {t[2], t[3]}
        """
    )
}
