-- wrk script for scripts/tools-list-load.sh: POST one JSON-RPC call with a bearer token, the
-- same bytes for every request of a run. METHOD: `tools/list` (the gateway filters the
-- answer) or `ping` (the same answer bytes from the bench upstream, streamed unfiltered).
-- TOKENS_FILE: the token on its first line. Prints requests/s, p50/p99/p99.9 latency, the
-- error count and the mean answer size at the end.
local file = assert(io.open(os.getenv("TOKENS_FILE"), "r"))
local token = file:read("*l")
file:close()
assert(token and #token > 0, "TOKENS_FILE has no token")
local method = assert(os.getenv("METHOD"), "METHOD is not set")

wrk.method = "POST"
wrk.body = '{"jsonrpc":"2.0","id":7,"method":"' .. method .. '"}'
wrk.headers = {
  ["X-Authorization"] = "Bearer " .. token,
  ["Content-Type"] = "application/json",
  ["Accept"] = "application/json, text/event-stream",
}

function done(summary, latency, requests)
  io.write(string.format("RESULT requests=%d seconds=%.2f rps=%.0f p50_us=%d p99_us=%d p999_us=%d errors=%d bytes=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status
      + summary.errors.timeout,
    summary.requests > 0 and math.floor(summary.bytes / summary.requests) or 0))
end
