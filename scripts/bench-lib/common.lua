-- Shared by the wrk scripts of scripts/bench: per-thread status counts, reported by done().
local threads = {}
statuses = {}

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
  if prepare_thread then prepare_thread(thread, #threads) end
end

-- Counts a response by status, and by problem code for errors (e.g. 401:token_revoked).
function count(status, body)
  local key = tostring(status)
  if status >= 400 and body then
    local code = body:match('"code"%s*:%s*"([^"]+)"')
    if code then key = key .. ":" .. code end
  end
  statuses[key] = (statuses[key] or 0) + 1
end

function done(summary, latency, requests)
  local totals = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do totals[status] = (totals[status] or 0) + n end
  end
  local parts = {}
  for status, n in pairs(totals) do table.insert(parts, status .. "=" .. n) end
  table.sort(parts)
  io.write("STATUS " .. table.concat(parts, " ") .. "\n")
end

-- Reads a file of one token per line.
function read_lines(path)
  local lines = {}
  for line in io.lines(path) do if line ~= "" then table.insert(lines, line) end end
  return lines
end
