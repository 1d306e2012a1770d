-- wrk script: POST one pre-signed Shopify webhook, a new X-Shopify-Event-Id on every request.
-- The body and its signature never change (the signature covers only the body); the event id is
-- outside the signature and is the dedupe key, so every request is a new event.
-- Environment: BENCH_BODY_FILE (raw body), BENCH_HEADERS_FILE ("Name: value" lines).

local body_file = assert(io.open(os.getenv("BENCH_BODY_FILE"), "rb"))
local body = body_file:read("*a")
body_file:close()

local headers = {}
for line in io.lines(os.getenv("BENCH_HEADERS_FILE")) do
  local name, value = line:match("^([^:]+):%s*(.*)$")
  if name then headers[name] = value end
end

local thread_id = 0
local threads = {}

function setup(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
  table.insert(threads, thread)
end

local counter = 0
local prefix

function init(args)
  math.randomseed(os.time() + (tid or 0) * 7919)
  prefix = string.format("bench-%d-%08x-", tid or 0, math.random(0, 0x7fffffff))
end

-- The request is formatted once, around a placeholder for the event id: each request is then two
-- concatenations, not wrk.format over 7 KB (~10 us of wrk's CPU a request, on the cores it shares
-- with the server it measures).
local head, tail

function request()
  counter = counter + 1
  if not head then
    local marker = "@@EVENT_ID@@"
    headers["X-Shopify-Event-Id"] = marker
    local whole = wrk.format("POST", "/webhooks/shopify", headers, body)
    local at = assert(whole:find(marker, 1, true))
    head, tail = whole:sub(1, at - 1), whole:sub(at + #marker)
  end
  return head .. prefix .. counter .. tail
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "non_2xx": %d, "connect_errors": %d, ' ..
    '"read_errors": %d, "write_errors": %d, "timeouts": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
