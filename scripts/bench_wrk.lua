-- Shared by the scripts/bench_*.lua scenarios (loaded with dofile, wrk runs from the
-- project folder): arguments, a random stream per thread, and one JSON summary line.
-- Arguments after `--`: N (tasks per style; ids are 1..N) and the Authorization header.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  n = tonumber(args[1])
  auth = args[2]
  math.randomseed(os.time() + 7919 * tid)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"bytes":%d,"errors":{"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d},"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
