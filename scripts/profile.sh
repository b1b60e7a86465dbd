#!/usr/bin/env bash
# Instructions per check, counted by callgrind: repeatable for the same binary and inputs
# whatever else the machine does, so before/after comparisons of a change are exact (wall-clock
# load runs on two shared cores vary by 10-20%). Counts auth-server's user-space instructions
# only (no kernel time) for REQUESTS allowed `tools/call` checks with a cached token over one
# kept-alive /validate connection, then for the gRPC Check path over one HTTP/2 connection, then
# for REQUESTS allowed `tools/list` checks (marked for the answer filter) over /validate.
#
#   scripts/profile.sh                 # REQUESTS=2000 GRPC_SECONDS=5
#   callgrind_annotate "$OUT/validate.callgrind" | head -40    # where the instructions go
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. scripts/env.sh
REQUESTS=${REQUESTS:-2000}
GRPC_SECONDS=${GRPC_SECONDS:-5}
OUT=${OUT:-$CARGO_TARGET_DIR/profile}
command -v valgrind >/dev/null || { echo "profile.sh: valgrind is missing (apt-get install valgrind)" >&2; exit 1; }
[ -d integration-tests/idp/node_modules/oidc-provider ] || ./scripts/setup.sh >/dev/null
cargo build --release --quiet -p auth-server --bin auth-server --example grpc_load
mkdir -p "$OUT"
. scripts/load/common.sh
start_idp
issue_tokens 0

# under_callgrind NAME: auth-server (HTTP and gRPC listeners) under callgrind, instrumentation
# off until instrument_on; sets http_port, grpc_port, valgrind_pid.
under_callgrind() {
  http_port=$(free_port) grpc_port=$(free_port)
  AUTH_LISTEN="127.0.0.1:$http_port" AUTH_GRPC_LISTEN="127.0.0.1:$grpc_port" AUTH_PROVIDER=oidc \
  AUTH_ISSUER="$issuer" AUTH_AUDIENCES=mcp-gateway AUTH_SCOPES_FILE="$root/scopes.yml" RUST_LOG="${RUST_LOG:-warn}" AUTH_LOG_FORMAT="${AUTH_LOG_FORMAT:-text}" \
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT/$1.callgrind" \
    "$CARGO_TARGET_DIR/release/auth-server" >"$work/$1.log" 2>&1 &
  valgrind_pid=$!
  pids+=($valgrind_pid)
  for _ in $(seq 1 600); do curl -fs "http://127.0.0.1:$http_port/readyz" >/dev/null && return 0; sleep 0.1; done
  echo "profile.sh: auth-server under callgrind never became ready" >&2; exit 1
}
# finish NAME: stops auth-server and sets `total` to the instruction count callgrind reports.
finish() {
  kill -TERM "$valgrind_pid"
  wait "$valgrind_pid" 2>/dev/null || true
  total=$(awk '/Collected :/ {gsub(",", "", $4); print $4}' "$work/$1.log")
  [[ -n $total ]] || { echo "profile.sh: no count from callgrind ($work/$1.log)" >&2; exit 1; }
}
# validate_requests COUNT [METHOD]: allowed tools/call (or tools/list) checks on one kept-alive
# connection.
validate_requests() {
  python3 - "$http_port" "$1" "$(cat "$work/one-token.txt")" "${2:-tools/call}" <<'PY'
import http.client, sys
port, count, token, method = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
body = (b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get_stock_aggregates",'
        b'"arguments":{"stock_ticker":"AAPL","from_date":"2026-01-01","to_date":"2026-01-31"}}}')
if method == "tools/list":
    body = b'{"jsonrpc":"2.0","id":7,"method":"tools/list"}'
headers = {"X-Authorization": "Bearer " + token, "X-Original-URI": "/fininfo/mcp",
           "X-Original-Method": "POST", "Content-Type": "application/json",
           "Accept": "application/json, text/event-stream",
           "X-Request-Id": "0123456789abcdef0123456789abcdef"}
connection = http.client.HTTPConnection("127.0.0.1", port)
for _ in range(count):
    connection.request("POST", "/validate", body, headers)
    response = connection.getresponse()
    response.read()
    if response.status != 200:
        sys.exit(f"profile.sh: check answered {response.status}")
PY
}

under_callgrind validate
validate_requests 50    # the token's first sight (signature verification) stays out of the count
callgrind_control -i on "$valgrind_pid" >/dev/null
validate_requests "$REQUESTS"
callgrind_control -i off "$valgrind_pid" >/dev/null
finish validate
validate_total=$total

under_callgrind grpc
grpc_load() { "$CARGO_TARGET_DIR/release/examples/grpc_load" --addr "127.0.0.1:$grpc_port" \
  --tokens-file "$work/one-token.txt" --connections 1 --duration "$1"; }
grpc_load 2 >/dev/null
callgrind_control -i on "$valgrind_pid" >/dev/null
grpc_result=$(grpc_load "$GRPC_SECONDS")
callgrind_control -i off "$valgrind_pid" >/dev/null
finish grpc
grpc_total=$total
grpc_requests=$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' <<<"$grpc_result")
grep -q 'errors=0' <<<"$grpc_result" || { echo "profile.sh: gRPC checks failed: $grpc_result" >&2; exit 1; }

under_callgrind list
validate_requests 50 tools/list
callgrind_control -i on "$valgrind_pid" >/dev/null
validate_requests "$REQUESTS" tools/list
callgrind_control -i off "$valgrind_pid" >/dev/null
finish list
list_total=$total

echo "| path | checks | instructions per check |"
echo "|---|---|---|"
echo "| /validate (HTTP/1.1), cached token, tools/call | $REQUESTS | $((validate_total / REQUESTS)) |"
echo "| gRPC Check (HTTP/2), cached token, tools/call | $grpc_requests | $((grpc_total / grpc_requests)) |"
echo "| /validate (HTTP/1.1), cached token, tools/list (marked for the filter) | $REQUESTS | $((list_total / REQUESTS)) |"
echo "callgrind files: $OUT/validate.callgrind $OUT/grpc.callgrind $OUT/list.callgrind" >&2
