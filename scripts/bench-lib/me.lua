-- GET /v1/auth/me, round-robin over a pool of valid access tokens (TOKENS file).
dofile(os.getenv("BENCH_LIB") .. "/common.lua")
local tokens = read_lines(os.getenv("TOKENS"))
local next = 0

function request()
  next = next % #tokens + 1
  return wrk.format("GET", os.getenv("BENCH_PATH") or "/v1/auth/me", { ["Authorization"] = "Bearer " .. tokens[next] })
end

function response(status, headers, body) count(status, body) end
