-- wrk script: POST the same tools/call body with no credentials (baselines without auth).
local body = '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get_stock_aggregates",'
  .. '"arguments":{"stock_ticker":"AAPL","from_date":"2026-01-01","to_date":"2026-01-31"}}}'
wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
function done(summary, latency, requests)
  io.write(string.format("RESULT requests=%d seconds=%.2f rps=%.0f p50_us=%d p99_us=%d p999_us=%d errors=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status
      + summary.errors.timeout))
end
