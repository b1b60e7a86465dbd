-- wrk script: POST the same large body (BODY_FILE) with a bearer token (TOKENS_FILE, first
-- line) to /validate as fast as the connections allow: the worst-case bodies an attacker with a
-- token can send, while scripts/load.sh measures ordinary checks beside them. Counts answers by
-- status: 200/403 decided, 400 refused while reading, 503 busy (too many large bodies at once).
local file = assert(io.open(os.getenv("TOKENS_FILE"), "r"))
local token = file:read("*l")
file:close()
local body_file = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.body = body_file:read("*a")
body_file:close()
wrk.method = "POST"
wrk.headers = {
  ["X-Authorization"] = "Bearer " .. token,
  ["X-Original-URI"] = "/fininfo/mcp",
  ["X-Original-Method"] = "POST",
  ["Content-Type"] = "application/json",
}

counts = {}  -- a global: done() reads each thread's copy with thread:get
local threads = {}
function setup(thread)
  table.insert(threads, thread)
end
function init()
  counts = {}
end
function response(status)
  counts[status] = (counts[status] or 0) + 1
end
function done(summary, latency)
  local total = {}
  for _, thread in ipairs(threads) do
    for _, status in ipairs({ 200, 400, 403, 413, 503 }) do
      total[status] = (total[status] or 0) + (thread:get("counts")[status] or 0)
    end
  end
  io.write(string.format(
    "FLOOD requests=%d rps=%.0f p50_us=%d p99_us=%d s200=%d s400=%d s403=%d s413=%d s503=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6), latency:percentile(50),
    latency:percentile(99), total[200], total[400], total[403], total[413], total[503]))
end
