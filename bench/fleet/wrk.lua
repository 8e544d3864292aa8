-- wrk.lua — request generator of bench/fleet (wrk 4, LuaJIT).
--
-- Environment (read in every wrk thread):
--   BODIES_FILE  one JSON request body per line; each connection's requests
--                walk the lines in turn (so a server whose near cache holds
--                fewer entries than there are lines must read most of them
--                from its store)
--   AUTH         Authorization header value (default "Bearer bench-key")
-- At the end it prints one machine-readable line:
--   RESULT rps=… requests=… p50_us=… p90_us=… p99_us=… max_us=… errors=… non2xx=…

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = os.getenv("AUTH") or "Bearer bench-key"

local bodies = {}
local path = os.getenv("BODIES_FILE")
assert(path, "BODIES_FILE not set")
for line in io.lines(path) do
   if #line > 0 then table.insert(bodies, line) end
end
local threads = {}
local i = 0

function setup(thread)
   thread:set("tid", #threads)
   table.insert(threads, thread)
end

function init(args)
   -- threads start at different lines so they do not walk in step
   i = (tonumber(tid) or 0) * 7919
end

request = function()
   i = i + 1
   return wrk.format(nil, nil, nil, bodies[(i % #bodies) + 1])
end

function done(summary, latency, requests)
   local e = summary.errors
   local secs = summary.duration / 1e6
   io.write(string.format(
      "RESULT rps=%.0f requests=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d errors=%d non2xx=%d\n",
      summary.requests / secs, summary.requests,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
      e.connect + e.read + e.write + e.timeout, e.status))
end
