-- POST /v1/auth/logout, each access token of TOKENS used once (a thread takes every n-th).
-- Once a thread's share is used up it sends an empty bearer (401), counted apart.
dofile(os.getenv("BENCH_LIB") .. "/common.lua")
local all = read_lines(os.getenv("TOKENS"))
local mine = {}
local used = 0

function prepare_thread(thread, index) thread:set("first", index) end

function init(args)
  local threads = tonumber(os.getenv("BENCH_THREADS"))
  for i = first, #all, threads do table.insert(mine, all[i]) end
end

function request()
  -- In file order, so that the first tokens of the file are surely logged out.
  used = used + 1
  local token = mine[used] or "used-up"
  return wrk.format("POST", "/v1/auth/logout", { ["Authorization"] = "Bearer " .. token })
end

function response(status, headers, body) count(status, body) end
