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

-- A random version 4 UUID, the shape of Shopify's X-Shopify-Event-Id: new events land all over the
-- store's dedupe index, as real ones do (a counter would only ever append to it).
local function event_id()
  local r = math.random
  return string.format("%04x%04x-%04x-4%03x-%04x-%04x%04x%04x", r(0, 0xffff), r(0, 0xffff), r(0, 0xffff),
    r(0, 0xfff), r(0x8000, 0xbfff), r(0, 0xffff), r(0, 0xffff), r(0, 0xffff))
end

function init(args)
  -- Seeded from the kernel: two runs started within the same second must not send the same ids.
  local urandom = assert(io.open("/dev/urandom", "rb"))
  local a, b, c, d = urandom:read(4):byte(1, 4)
  urandom:close()
  math.randomseed(((a * 256 + b) * 256 + c) * 256 + d + (tid or 0))
end

-- The request is formatted once, around a placeholder for the event id: each request is then two
-- concatenations, not wrk.format over 7 KB (~10 us of wrk's CPU a request, on the cores it shares
-- with the server it measures).
local head, tail

function request()
  if not head then
    local marker = "@@EVENT_ID@@"
    headers["X-Shopify-Event-Id"] = marker
    local whole = wrk.format("POST", "/webhooks/shopify", headers, body)
    local at = assert(whole:find(marker, 1, true))
    head, tail = whole:sub(1, at - 1), whole:sub(at + #marker)
  end
  return head .. event_id() .. tail
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
