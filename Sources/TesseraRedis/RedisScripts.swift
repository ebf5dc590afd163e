import TesseraRESP

/// The Lua side of `RedisTokenStore`. Each compound operation is one script, so it is one
/// round trip and atomic. Every key a script touches carries the user's hash tag `{u:<id>}`,
/// so all of them live in one Redis Cluster slot.
///
/// Every script that writes a denylist entry also publishes `"<until> <deny key>"` on the
/// revocation channel it is given (`<prefix>revocations`; '' publishes nothing), in the same
/// atomic step, for the instances' `RevocationView`s.
///
/// Session hashes use layout 2 (docs/REDIS.md, "Key layout"): one-letter fields, times as
/// integer milliseconds since 1970, no ids (both are in the key), strings longer than 64 bytes
/// split over several fields, so that Redis keeps the hash in its compact listpack encoding.
/// Scripts read layout 1 too (decimal seconds, `uid`/`sid` repeated) and rotation rewrites such
/// a session in layout 2. Denylist values stay decimal seconds: the revocation view and
/// `isRevoked` read them.
enum RedisScripts {
    /// Session helpers, shared with the credential, lease and re-seal scripts.
    static let sessionHelpers = """
        local function ms(seconds) return math.floor(tonumber(seconds) * 1000 + 0.5) end
        local function int(n) return string.format('%d', n) end
        local function expiryOf(idle, absolute) return math.min(idle, absolute) end
        -- Generation and times (ms) of the session at key, in either layout; nil when there is
        -- none or (layout 1, which repeated the ids) it names another user.
        local function sessionOf(key, uid)
          local s = redis.call('HMGET', key, 'g', 'r', 'l', 'i', 'a')
          if s[1] then
            return {g = tonumber(s[1]), r = tonumber(s[2] or s[3]), i = tonumber(s[4]), a = tonumber(s[5])}
          end
          local o = redis.call('HMGET', key, 'uid', 'gen', 'rot', 'idle', 'abs')
          if not o[1] or o[1] ~= uid then return nil end
          return {g = tonumber(o[2]), r = ms(o[3]), i = ms(o[4]), a = ms(o[5]), legacy = true}
        end
        -- Appends name, value as 64-byte fields (name, name1, name2, ...) to fields.
        local function chunked(fields, name, value)
          if not value then return end
          local n = 0
          repeat
            table.insert(fields, n == 0 and name or (name .. n))
            table.insert(fields, string.sub(value, n * 64 + 1, n * 64 + 64))
            n = n + 1
          until n * 64 >= #value
        end
        -- Rewrites a layout-1 session in layout 2, keeping its expiry.
        local function upgrade(key)
          local raw = redis.call('HGETALL', key)
          local o = {}
          for n = 1, #raw, 2 do o[raw[n]] = raw[n + 1] end
          local fields = {'g', o.gen, 'c', int(ms(o.cre)), 'l', int(ms(o.last)), 'i', int(ms(o.idle)), 'a', int(ms(o.abs))}
          if ms(o.rot) ~= ms(o.last) then
            table.insert(fields, 'r')
            table.insert(fields, int(ms(o.rot)))
          end
          chunked(fields, 'd', o.dev)
          chunked(fields, 'u', o.ua)
          chunked(fields, 'p', o.ip)
          local expiry = redis.call('PEXPIRETIME', key)
          redis.call('DEL', key)
          redis.call('HSET', key, unpack(fields))
          if expiry > 0 then redis.call('PEXPIREAT', key, expiry) end
        end

        """

    /// Shared helpers, prepended to the scripts that need them.
    private static let helpers = sessionHelpers + """
        -- denials: the slot's DenialIndex set, pruned by the server's clock (as Redis expires keys).
        local function deny(key, untilText, channel, denials)
          local untilMs = math.ceil(tonumber(untilText) * 1000)
          local current = redis.call('PEXPIRETIME', key)
          if current < untilMs then
            redis.call('SET', key, untilText, 'PXAT', untilMs)
            if channel ~= '' then redis.call('PUBLISH', channel, untilText .. ' ' .. key) end
            local t = redis.call('TIME')
            redis.call('ZREMRANGEBYSCORE', denials, '-inf', tonumber(t[1]) * 1000)
            redis.call('ZADD', denials, 'GT', untilMs, key)
            local last = redis.call('ZRANGE', denials, -1, -1, 'WITHSCORES')
            redis.call('PEXPIREAT', denials, last[2])
          end
        end
        -- The index scores are whole seconds, rounded up, so that they stay small integers; a
        -- member is pruned once its second has fully passed.
        local function index(indexKey, sid, expiryMs, nowMs)
          redis.call('ZADD', indexKey, math.ceil(expiryMs / 1000), sid)
          redis.call('ZREMRANGEBYSCORE', indexKey, '-inf', math.floor(nowMs / 1000))
          local last = redis.call('ZRANGE', indexKey, -1, -1, 'WITHSCORES')
          if last[2] then
            redis.call('PEXPIREAT', indexKey, math.ceil(tonumber(last[2]) * 1000))
          end
        end
        -- Replaces the 64-byte fields of name with count values of ARGV from first on.
        local function replaceChunked(key, name, first, count)
          local n = 1
          while redis.call('HDEL', key, name .. n) == 1 do n = n + 1 end
          for c = 0, count - 1 do redis.call('HSET', key, c == 0 and name or (name .. c), ARGV[first + c]) end
        end

        """

    /// KEYS: session, index. ARGV: now, sid, idle, absolute (ms), then field/value pairs.
    static let createSession = RedisScript(name: "createSession",
        helpers + """
            local expiry = expiryOf(tonumber(ARGV[3]), tonumber(ARGV[4]))
            redis.call('DEL', KEYS[1])
            redis.call('HSET', KEYS[1], unpack(ARGV, 5))
            redis.call('PEXPIREAT', KEYS[1], expiry)
            index(KEYS[2], ARGV[2], expiry, tonumber(ARGV[1]))
            return 1
            """
    )

    /// KEYS: session, index, session denylist entry, session credentials, denial index.
    /// ARGV: now (ms), user id, presented generation, grace (ms), now + idle TTL (ms), revoked
    ///       until (seconds), user-agent fields, ip fields (how many; 0 keeps what is there),
    ///       session id, revocation channel, idle TTL (ms), revoked access TTL (seconds),
    ///       '1' to date the rotation by the server's clock, then the user-agent and ip fields.
    /// Returns {'rotated' | 'reissued', fields...}, {'reused'} or {'invalid'}.
    ///
    /// With the server's clock, "now" is when the script runs, not when the request was sent:
    /// a rotation that sat behind a stalled server is dated when it took effect, so the
    /// client's retry of the same token falls inside the grace window (issue 10, finding 5).
    static let rotate = RedisScript(name: "rotate",
        helpers + """
            if ARGV[13] == '1' then
              local t = redis.call('TIME')
              local serverMs = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
              ARGV[1] = int(serverMs)
              ARGV[5] = int(serverMs + tonumber(ARGV[11]))
              ARGV[6] = string.format('%.3f', serverMs / 1000 + tonumber(ARGV[12]))
            end
            local now = tonumber(ARGV[1])
            local s = sessionOf(KEYS[1], ARGV[2])
            if not s or now >= expiryOf(s.i, s.a) then
              return {'invalid'}
            end
            local presented = tonumber(ARGV[3])
            if presented == s.g then
              if s.legacy then upgrade(KEYS[1]) end
              local idle = math.min(tonumber(ARGV[5]), s.a)
              redis.call('HDEL', KEYS[1], 'r')
              redis.call('HSET', KEYS[1], 'g', int(s.g + 1), 'l', ARGV[1], 'i', int(idle))
              local agents, addresses = tonumber(ARGV[7]), tonumber(ARGV[8])
              if agents > 0 then replaceChunked(KEYS[1], 'u', 14, agents) end
              if addresses > 0 then replaceChunked(KEYS[1], 'p', 14 + agents, addresses) end
              local expiry = expiryOf(idle, s.a)
              redis.call('PEXPIREAT', KEYS[1], expiry)
              index(KEYS[2], ARGV[9], expiry, now)
              return {'rotated', redis.call('HGETALL', KEYS[1])}
            elseif presented == s.g - 1 and now - s.r <= tonumber(ARGV[4]) then
              return {'reissued', redis.call('HGETALL', KEYS[1])}
            elseif presented < s.g then
              redis.call('DEL', KEYS[1])
              redis.call('DEL', KEYS[4])
              redis.call('ZREM', KEYS[2], ARGV[9])
              deny(KEYS[3], ARGV[6], ARGV[10], KEYS[5])
              return {'reused'}
            end
            return {'invalid'}
            """
    )

    /// KEYS: session, index, session denylist entry, session credentials, denial index. ARGV: now (ms), user
    /// id, denied until (seconds), session id, revocation channel. Returns 1 when a live session
    /// of the user was ended.
    static let revokeSession = RedisScript(name: "revokeSession",
        helpers + """
            local s = sessionOf(KEYS[1], ARGV[2])
            if not s or tonumber(ARGV[1]) >= expiryOf(s.i, s.a) then
              return 0
            end
            redis.call('DEL', KEYS[1])
            redis.call('DEL', KEYS[4])
            redis.call('ZREM', KEYS[2], ARGV[4])
            deny(KEYS[3], ARGV[3], ARGV[5], KEYS[5])
            return 1
            """
    )

    /// A logout: revokeSession, then the access token's own denial whether or not the session
    /// was still there. KEYS: as revokeSession, then the token's denylist entry. ARGV: as
    /// revokeSession, then the token denied until (seconds; '' for not at all). Returns 1 when a
    /// live session of the user was ended.
    static let endSession = RedisScript(name: "endSession",
        helpers + """
            local ended = 0
            local s = sessionOf(KEYS[1], ARGV[2])
            if s and tonumber(ARGV[1]) < expiryOf(s.i, s.a) then
              redis.call('DEL', KEYS[1])
              redis.call('DEL', KEYS[4])
              redis.call('ZREM', KEYS[2], ARGV[4])
              deny(KEYS[3], ARGV[3], ARGV[5], KEYS[5])
              ended = 1
            end
            if ARGV[6] ~= '' then deny(KEYS[6], ARGV[6], ARGV[5], KEYS[5]) end
            return ended
            """
    )

    /// KEYS: index, denial index. ARGV: now (ms), session id to keep ('' for none), denied until (seconds),
    /// user key prefix, revocation channel, user id. The per-session keys are derived from the
    /// prefix, which carries the user's hash tag, so they share the index's slot. Returns {how
    /// many live sessions were ended, then every session id denied}.
    static let revokeAllSessions = RedisScript(name: "revokeAllSessions",
        helpers + """
            local now = tonumber(ARGV[1])
            local ended = 0
            local result = {0}
            local members = redis.call('ZRANGE', KEYS[1], 0, -1)
            for _, sid in ipairs(members) do
              if sid ~= ARGV[2] then
                local sessionKey = ARGV[4] .. 's:' .. sid
                local s = sessionOf(sessionKey, ARGV[6])
                if s and now < expiryOf(s.i, s.a) then ended = ended + 1 end
                redis.call('DEL', sessionKey)
                redis.call('DEL', ARGV[4] .. 'cred:' .. sid)
                redis.call('ZREM', KEYS[1], sid)
                deny(ARGV[4] .. 'deny:sid:' .. sid, ARGV[3], ARGV[5], KEYS[2])
                table.insert(result, sid)
              end
            end
            result[1] = ended
            return result
            """
    )

    /// KEYS: index. ARGV: now (ms), user key prefix. Prunes members whose second has passed,
    /// then returns {session id, fields} of every session still in the index.
    static let listSessions = RedisScript(name: "listSessions",
        """
        redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', math.floor(tonumber(ARGV[1]) / 1000))
        local result = {}
        for _, sid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
          local fields = redis.call('HGETALL', ARGV[2] .. 's:' .. sid)
          if #fields > 0 then table.insert(result, {sid, fields}) end
        end
        return result
        """
    )

    /// KEYS: denylist entry, denial index. ARGV: until, revocation channel.
    static let deny = RedisScript(name: "deny", helpers + "deny(KEYS[1], ARGV[1], ARGV[2], KEYS[2])\nreturn 1")

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
