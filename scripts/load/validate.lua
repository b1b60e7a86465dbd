-- wrk script: POST /validate with an allowed tools/call, as nginx's subrequest sends it.
-- TOKENS_FILE: one token per line; requests cycle through them (1 line = always cached).
-- Prints p50/p99/p99.9 latency and the status mix at the end.
local tokens = {}
local file = assert(io.open(os.getenv("TOKENS_FILE"), "r"))
for line in file:lines() do
  if #line > 0 then tokens[#tokens + 1] = line end
end
file:close()
local body = '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get_stock_aggregates",'
  .. '"arguments":{"stock_ticker":"AAPL","from_date":"2026-01-01","to_date":"2026-01-31"}}}'
local path = os.getenv("TARGET_PATH") or "/validate"
local counter = 0
local statuses = {}

function request()
  counter = counter + 1
  local token = tokens[(counter % #tokens) + 1]
  return wrk.format("POST", path, {
    ["X-Authorization"] = "Bearer " .. token,
    ["X-Original-URI"] = "/fininfo/mcp",
    ["X-Original-Method"] = "POST",
    ["Content-Type"] = "application/json",
    ["Accept"] = "application/json, text/event-stream",
  }, body)
end

function response(status)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  io.write(string.format("RESULT requests=%d seconds=%.2f rps=%.0f p50_us=%d p99_us=%d p999_us=%d errors=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status
      + summary.errors.timeout))
end
