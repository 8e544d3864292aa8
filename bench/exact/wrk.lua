-- wrk.lua — request generator and reporter of bench/exact (wrk 4, LuaJIT).
--
-- Environment (read in every wrk thread):
--   BODY_FILE  file whose bytes are the POST body of every request
--   UNIQUE=1   instead, make every request's prompt unique (a guaranteed
--              cache miss): "... run NONCE thread T request N"
--   NONCE      run-unique string mixed into UNIQUE prompts
--   DELAY_MS   pause each connection this long between its requests
--              (an open, moderate load instead of a closed saturating loop)
--   AUTH       Authorization header value (default "Bearer bench-key")
--   BODIES_FILE  instead, one JSON body per line: each connection walks the
--              lines in turn (bench/fleet: a near cache smaller than the set
--              must read most of them from its store)
-- At the end it prints one machine-readable line:
--   RESULT rps=… requests=… p50_us=… p90_us=… p99_us=… max_us=… errors=… non2xx=…

local auth = os.getenv("AUTH") or "Bearer bench-key"
local unique = os.getenv("UNIQUE") == "1"
local nonce = os.getenv("NONCE") or "0"
local delay_ms = tonumber(os.getenv("DELAY_MS") or "0")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = auth

local bodies_file = os.getenv("BODIES_FILE")
local bodies = {}
if bodies_file then
   for line in io.lines(bodies_file) do
      if #line > 0 then table.insert(bodies, line) end
   end
elseif not unique then
   local f = assert(io.open(assert(os.getenv("BODY_FILE"), "BODY_FILE not set"), "rb"))
   wrk.body = f:read("*a")
   f:close()
end

local threads = {}
local counter = 0

function setup(thread)
   thread:set("tid", #threads)
   table.insert(threads, thread)
end

if bodies_file then
   local i = 0
   init = function(args)
      i = (tonumber(tid) or 0) * 7919 -- threads start apart, not in step
   end
   request = function()
      i = i + 1
      return wrk.format(nil, nil, nil, bodies[(i % #bodies) + 1])
   end
elseif unique then
   request = function()
      counter = counter + 1
      local body = '{"model":"bench-model","messages":[{"role":"user","content":"Name a fact about the number '
         .. counter .. ' (run ' .. nonce .. ' thread ' .. tostring(tid) .. ')."}]}'
      return wrk.format(nil, nil, nil, body)
   end
end

if delay_ms > 0 then
   delay = function()
      return delay_ms
   end
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
