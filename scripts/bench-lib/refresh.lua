-- POST /v1/auth/refresh: independent token chains, each strictly sequential. Every thread owns
-- its share of the chains in REFRESH_TOKENS; a response hands the rotated token back to the
-- pool, and the connection's next request takes a token from it. With one request in flight
-- per connection and at least as many chains as connections, no chain is ever used twice at
-- once. (wrk calls request() once per thread before any connection sends, and that request is
-- never sent: scripts/bench gives each thread one spare chain for it.)
dofile(os.getenv("BENCH_LIB") .. "/common.lua")
local all = read_lines(os.getenv("REFRESH_TOKENS"))
local ready = {}

function prepare_thread(thread, index)
  thread:set("first", index)
end

function init(args)
  local threads = tonumber(os.getenv("BENCH_THREADS"))
  for i = first, #all, threads do table.insert(ready, all[i]) end
end

function request()
  local token = table.remove(ready, 1)
  if token == nil then token = "exhausted" end
  return wrk.format("POST", "/v1/auth/refresh", { ["Content-Type"] = "application/json" }, '{"refresh_token":"' .. token .. '"}')
end

function response(status, headers, body)
  count(status, body)
  local token = body:match('"refresh_token"%s*:%s*"([^"]+)"')
  if token then table.insert(ready, token) end
end
