-- wrk script: POST one GraphQL body per request, counting errors that arrive as HTTP 200.
--
-- wrk -s bench/load.lua URL -- BODY_FILE IDS_FILE TOKEN MODE THREADS
--   BODY_FILE  the JSON body, with __ID__ where each request's id goes
--   IDS_FILE   one id per line ("-" for none); each wrk thread takes every n-th line
--   TOKEN      the API key, sent as "Authorization: Bearer TOKEN"
--   MODE       "cycle" (reads: go round the ids) or "once" (writes: every id used once; a
--              thread stops when its ids are used up, so no request repeats a write)
--   THREADS    wrk's -t, so that the threads split the ids between them
-- A response counts as an error when its status is not 200 or its body has a non-empty
-- "errors" list (top-level GraphQL errors or a mutation payload's typed errors).
-- done() prints one line "BENCH_JSON {...}" for bench/run.py.

local threads = {}
local counter = 0

function setup(thread)
   thread:set("tid", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

local function read_file(path)
   local file = assert(io.open(path, "rb"))
   local text = file:read("*a")
   file:close()
   return text
end

function init(args)
   local body_file, ids_file, token = args[1], args[2], args[3]
   mode = args[4] or "cycle"
   local nthreads = tonumber(args[5] or "1")
   template = read_file(body_file)
   ids = {}
   if ids_file ~= "-" then
      local index = 0
      for line in io.lines(ids_file) do
         if index % nthreads == tid then
            table.insert(ids, line)
         end
         index = index + 1
      end
   end
   position = 0
   errors = 0
   graphql_errors = 0
   http_errors = 0
   exhausted = 0
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
   wrk.headers["Accept"] = "application/json"
   wrk.headers["Authorization"] = "Bearer " .. token
   fallback = wrk.format("POST", wrk.path, nil, '{"query":"{ __typename }"}')
end

function request()
   if #ids == 0 then
      return wrk.format(nil, nil, nil, template)
   end
   position = position + 1
   if position > #ids then
      if mode == "once" then
         exhausted = 1
         wrk.thread:stop()
         return fallback
      end
      position = 1
   end
   local body = string.gsub(template, "__ID__", ids[position], 1)
   return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
   if status ~= 200 then
      http_errors = http_errors + 1
      errors = errors + 1
   elseif string.find(body, '"errors":[{', 1, true) then
      graphql_errors = graphql_errors + 1
      errors = errors + 1
   end
end

function done(summary, latency, requests)
   local errors_total, graphql_total, http_total, exhausted_threads = 0, 0, 0, 0
   for _, thread in ipairs(threads) do
      errors_total = errors_total + thread:get("errors")
      graphql_total = graphql_total + thread:get("graphql_errors")
      http_total = http_total + thread:get("http_errors")
      exhausted_threads = exhausted_threads + thread:get("exhausted")
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"errors":%d,' ..
      '"graphql_errors":%d,"http_errors":%d,"socket_errors":%d,"exhausted_threads":%d,' ..
      '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
      summary.requests, summary.duration, summary.bytes, errors_total, graphql_total,
      http_total, e.connect + e.read + e.write + e.timeout, exhausted_threads,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
      latency.mean))
end
