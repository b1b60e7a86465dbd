-- wrk script: POST an allowed MCP tools/call with its bearer token, the same bytes for every run
-- (auth-server's /validate, the gateways, and the baselines without auth, which forward them).
-- TOKENS_FILE: one token per line. With one token the request is built once and wrk sends it
-- from C (no Lua per request); with several, one request per token is built at start and
-- requests cycle through them. Either way the load generator spends the same CPU per request
-- on every row, so rows compare fairly. The path is the URL's.
-- Prints requests/s, p50/p99/p99.9 latency and the error count at the end.
local tokens = {}
local file = assert(io.open(os.getenv("TOKENS_FILE"), "r"))
for line in file:lines() do
  if #line > 0 then tokens[#tokens + 1] = line end
end
file:close()
assert(#tokens > 0, "TOKENS_FILE has no token")

local body = '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get_stock_aggregates",'
  .. '"arguments":{"stock_ticker":"AAPL","from_date":"2026-01-01","to_date":"2026-01-31"}}}'
local function headers(token)
  return {
    ["X-Authorization"] = "Bearer " .. token,
    ["X-Original-URI"] = "/fininfo/mcp",
    ["X-Original-Method"] = "POST",
    ["Content-Type"] = "application/json",
    ["Accept"] = "application/json, text/event-stream",
  }
end

wrk.method = "POST"
wrk.body = body
if #tokens == 1 then
  wrk.headers = headers(tokens[1])
else
  local requests, counter = {}, 0
  function init()
    for i, token in ipairs(tokens) do
      requests[i] = wrk.format(nil, nil, headers(token))
    end
  end
  function request()
    counter = counter + 1
    return requests[(counter % #requests) + 1]
  end
end

function done(summary, latency, requests)
  io.write(string.format("RESULT requests=%d seconds=%.2f rps=%.0f p50_us=%d p99_us=%d p999_us=%d errors=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status
      + summary.errors.timeout))
end
