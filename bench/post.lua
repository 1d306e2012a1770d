-- wrk script: POST signed Shopify webhooks, each a new event: a new order id in the body with its
-- signature (the bridge's dedupe key covers a hash of the body), and a new X-Shopify-Event-Id.
-- Environment: BENCH_BODY_FILE (the body, its order id the marker @@ORDER_ID@@####### as wide as an id), BENCH_HEADERS_FILE
-- ("Name: value" lines; the signature @@HMAC@@), BENCH_IDS_FILE ("<order id> <signature>" lines, one a
-- request: bench/common.py VariedOrders; used in turn, from the first again if wrk runs past the end).

local body_file = assert(io.open(os.getenv("BENCH_BODY_FILE"), "rb"))
local body = body_file:read("*a")
body_file:close()

local headers = {}
for line in io.lines(os.getenv("BENCH_HEADERS_FILE")) do
  local name, value = line:match("^([^:]+):%s*(.*)$")
  if name then headers[name] = value end
end

local ids, sigs = {}, {}
for line in io.lines(os.getenv("BENCH_IDS_FILE")) do
  local id, sig = line:match("^(%S+) (%S+)$")
  if id then ids[#ids + 1] = id; sigs[#sigs + 1] = sig end
end
local next_id = 0

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

-- The request is formatted once, around markers for the event id, the order id and the signature:
-- each request is then a few concatenations, not wrk.format over 7 KB (~10 us of wrk's CPU a request,
-- on the cores it shares with the server it measures).
local parts, slots

function request()
  if not parts then
    headers["X-Shopify-Event-Id"] = "@@EVENT_ID@@"
    local whole = wrk.format("POST", "/webhooks/shopify", headers, body)
    local found = {}
    for _, marker in ipairs({"@@EVENT_ID@@", "@@ORDER_ID@@#######", "@@HMAC@@"}) do
      local at = assert(whole:find(marker, 1, true), marker)
      found[#found + 1] = {at = at, marker = marker}
    end
    table.sort(found, function(a, b) return a.at < b.at end)
    parts, slots = {}, {}
    local from = 1
    for _, f in ipairs(found) do
      parts[#parts + 1] = whole:sub(from, f.at - 1)
      slots[#slots + 1] = f.marker
      from = f.at + #f.marker
    end
    parts[#parts + 1] = whole:sub(from)
  end
  next_id = next_id % #ids + 1
  local values = {["@@EVENT_ID@@"] = event_id(), ["@@ORDER_ID@@#######"] = ids[next_id], ["@@HMAC@@"] = sigs[next_id]}
  return parts[1] .. values[slots[1]] .. parts[2] .. values[slots[2]] .. parts[3] .. values[slots[3]] .. parts[4]
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
