# Shared by scripts/load.sh, soak.sh and profile.sh (sourced, from the repository root): a temp
# dir (`work`) and the processes started (`pids`), both cleaned up on exit; loopback ports, the
# IdP, tokens, auth-server and nginx.

work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

# start_idp: the oidc-provider IdP on a free port; sets `issuer`.
start_idp() {
  local port
  port=$(free_port)
  node integration-tests/idp/idp.mjs --port "$port" --keys "$work/keys.json" >"$work/idp.out" 2>"$work/idp.log" &
  pids+=($!)
  wait_port "$port"
  issuer="http://127.0.0.1:$port"
}

# issue_tokens COUNT: writes $work/one-token.txt (1 token) and $work/many-tokens.txt (COUNT
# distinct tokens), all for the operator client (allowed to call fininfo's tools).
issue_tokens() {
  echo "[load] issuing 1 + $1 tokens from the IdP" >&2
  python3 - "$issuer" "$1" "$work" <<'PY'
import json, sys, urllib.request, concurrent.futures
issuer, count, work = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def token(_):
    data = b"grant_type=client_credentials&client_id=operator-agent&client_secret=operator-agent-secret"
    with urllib.request.urlopen(issuer + "/token", data) as response:
        return json.load(response)["access_token"]
with concurrent.futures.ThreadPoolExecutor(16) as pool:
    tokens = list(pool.map(token, range(count + 1)))
open(f"{work}/one-token.txt", "w").write(tokens[0] + "\n")
open(f"{work}/many-tokens.txt", "w").write("\n".join(tokens[1:]) + "\n")
PY
}

# start_auth NAME [VAR=value ...]: a release auth-server on a free port (extra settings as
# arguments); sets `${NAME}_port` and `${NAME}_pid`, and waits until it is ready. It logs as
# in production (RUST_LOG=info, one JSON line per decision; AUTH_RUST_LOG overrides) to
# $work/NAME.log, or to /dev/null with LOG_TO_FILE=0 (long runs: ~350 bytes per check).
start_auth() {
  local name=$1 port pid log="$work/$1.log"
  shift
  [[ ${LOG_TO_FILE:-1} == 1 ]] || log=/dev/null
  port=$(free_port)
  env AUTH_LISTEN="127.0.0.1:$port" AUTH_PROVIDER=oidc AUTH_ISSUER="$issuer" AUTH_AUDIENCES=mcp-gateway \
    AUTH_SCOPES_FILE="$root/scopes.yml" RUST_LOG="${AUTH_RUST_LOG:-info}" AUTH_LOG_FORMAT=json "$@" \
    "$CARGO_TARGET_DIR/release/auth-server" >"$log" 2>&1 &
  pid=$!
  pids+=($pid)
  wait_port "$port"
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
  printf -v "${name}_port" '%s' "$port"
  printf -v "${name}_pid" '%s' "$pid"
}

# start_nginx NAME PORT: nginx with the config at $work/NAME/nginx.conf (prefix $work/NAME),
# in the foreground of a background job; waits for PORT.
start_nginx() {
  /usr/sbin/nginx -p "$work/$1" -c "$work/$1/nginx.conf" -e stderr -g 'daemon off;' 2>"$work/$1.log" &
  pids+=($!)
  wait_port "$2"
}

# start_gateway NAME AUTH_PORT MCP_PORT: the deploy/nginx gateway (render.sh) in front of the
# check service on AUTH_PORT, routing /fininfo/ to MCP_PORT; sets `${NAME}_port`.
start_gateway() {
  local name=$1 port
  port=$(free_port)
  GATEWAY_LISTEN="127.0.0.1:$port" AUTH_SERVER="127.0.0.1:$2" MCP_SERVERS="fininfo=127.0.0.1:$3" \
    deploy/nginx/render.sh "$work/$name" >/dev/null
  start_nginx "$name" "$port"
  printf -v "${name}_port" '%s' "$port"
}
