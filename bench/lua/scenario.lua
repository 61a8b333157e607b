-- One wrk script for every scenario (bench/scenarios.py passes the arguments after "--").
--
--   wrk ... -s scenario.lua URL -- MODE FILE [ARGS...]
--
-- MODE  get        ARGS: path                 GET path, each request with the next identity's cookie
--       anon       ARGS: path                 GET path without cookies (a first visit)
--       create     ARGS: path title           POST a task form with the identity's CSRF token
--       login      ARGS: users password       POST the sign-in form as a guest (FILE: guest line)
--       mix        ARGS: read1 read2 every    reads alternate read1/read2; every N-th request
--                                             POSTs a task (N = every, e.g. 10 for 90/10)
-- FILE  lines "cookie<TAB>csrf token" (identities.py writes it); "-" for none.
--
-- Requests are formatted once per thread; the response() hook counts status codes so the
-- harness can refuse a run whose answers were not the expected ones (a redirect to /login
-- instead of a dashboard is not a 4xx/5xx and would pass wrk's own error count).
-- done() prints one JSON line beginning with "BENCH_JSON ".

local threads = {}
local counter = 0

function setup(thread)
  thread:set("offset", #threads * 7)
  table.insert(threads, thread)
end

local function read_identities(file)
  local list = {}
  if file == "-" then return list end
  for line in io.lines(file) do
    local cookie, token = line:match("^([^\t]*)\t(.*)$")
    if cookie then table.insert(list, { cookie = cookie, csrf = token }) end
  end
  return list
end

local function urlencode(text)
  return (text:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

local FORM = "application/x-www-form-urlencoded"
local reads, writes, every = {}, {}, 0

function init(args)
  statuses = {}
  counter = offset or 0
  local mode, file = args[1], args[2]
  local ids = read_identities(file)
  if mode == "anon" then
    table.insert(reads, wrk.format("GET", args[3], {}))
  elseif mode == "get" then
    for _, id in ipairs(ids) do
      table.insert(reads, wrk.format("GET", args[3], { Cookie = id.cookie }))
    end
  elseif mode == "create" then
    for _, id in ipairs(ids) do
      local body = "title=" .. urlencode(args[4]) .. "&_csrf_token=" .. id.csrf
      table.insert(writes, wrk.format("POST", args[3], { Cookie = id.cookie, ["Content-Type"] = FORM }, body))
    end
    every = 1
  elseif mode == "login" then
    local guest = ids[1]
    local users, password = tonumber(args[3]), args[4]
    for i = 0, users - 1 do
      local email = string.format("bench%03d@example.com", i)
      local body = "email=" .. urlencode(email) .. "&password=" .. urlencode(password) ..
        "&_csrf_token=" .. guest.csrf
      table.insert(writes, wrk.format("POST", "/login", { Cookie = guest.cookie, ["Content-Type"] = FORM }, body))
    end
    every = 1
  elseif mode == "mix" then
    every = tonumber(args[5])
    for _, id in ipairs(ids) do
      table.insert(reads, wrk.format("GET", args[3], { Cookie = id.cookie }))
      table.insert(reads, wrk.format("GET", args[4], { Cookie = id.cookie }))
      local body = "title=" .. urlencode("Mixed task") .. "&_csrf_token=" .. id.csrf
      table.insert(writes, wrk.format("POST", "/tasks", { Cookie = id.cookie, ["Content-Type"] = FORM }, body))
    end
  else
    error("unknown mode " .. tostring(mode))
  end
end

function request()
  counter = counter + 1
  if every > 0 and counter % every == 0 then
    return writes[math.floor(counter / every) % #writes + 1]
  end
  return reads[counter % #reads + 1]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local codes = {}
  for _, thread in ipairs(threads) do
    local counts = thread:get("statuses")
    for code, n in pairs(counts) do
      codes[code] = (codes[code] or 0) + n
    end
  end
  local parts = {}
  for code, n in pairs(codes) do table.insert(parts, string.format('"%d": %d', code, n)) end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d, "mean": %.1f}, "statuses": {%s}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    table.concat(parts, ", ")))
end
