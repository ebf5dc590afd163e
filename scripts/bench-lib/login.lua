-- POST /v1/auth/login as EMAIL / PASSWORD. With COLLECT set, every access and refresh token
-- is appended to COLLECT.<thread>.access / .refresh (token pools for the other runs).
dofile(os.getenv("BENCH_LIB") .. "/common.lua")
local body = '{"email":"' .. os.getenv("EMAIL") .. '","password":"' .. os.getenv("PASSWORD") .. '"}'
local collect = os.getenv("COLLECT")
local access_file, refresh_file

function init(args)
  if collect and collect ~= "" then
    access_file = io.open(collect .. "." .. id .. ".access", "a")
    refresh_file = io.open(collect .. "." .. id .. ".refresh", "a")
  end
end

function request()
  return wrk.format("POST", "/v1/auth/login", { ["Content-Type"] = "application/json" }, body)
end

function response(status, headers, b)
  count(status, b)
  if access_file and status == 200 then
    access_file:write(b:match('"access_token"%s*:%s*"([^"]+)"') .. "\n")
    refresh_file:write(b:match('"refresh_token"%s*:%s*"([^"]+)"') .. "\n")
    access_file:flush()
    refresh_file:flush()
  end
end
