#!/usr/bin/env bash
# The local stack on loopback, without Docker: the identity provider (oidc-provider), auth-server,
# the demo MCP servers (currenttime, fininfo) and nginx in front. Prints the gateway URL, how to
# get a token for each demo client, a ready MCP client config, and the demo person who signs in
# to the page at /ui/ in a browser. Ctrl-C stops everything.
#
# Ports (override with the environment): GATEWAY_PORT=8480 AUTH_PORT=8488 IDP_PORT=8489
# CURRENTTIME_PORT=8481 FININFO_PORT=8482.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. scripts/env.sh

GATEWAY_PORT=${GATEWAY_PORT:-8480}
AUTH_PORT=${AUTH_PORT:-8488}
IDP_PORT=${IDP_PORT:-8489}
CURRENTTIME_PORT=${CURRENTTIME_PORT:-8481}
FININFO_PORT=${FININFO_PORT:-8482}

./scripts/setup.sh
state="$root/.local-stack"
mkdir -p "$state"
pids=()

stopping=""
stop_all() {
  stopping=1
  trap - INT TERM EXIT
  echo
  echo "[stack] stopping"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "[stack] stopped"
}
trap stop_all INT TERM EXIT

wait_port() { # name port
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "[stack] $1 did not start on port $2; see $state/$1.log" >&2
  exit 1
}

for port in "$GATEWAY_PORT" "$AUTH_PORT" "$IDP_PORT" "$CURRENTTIME_PORT" "$FININFO_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "[stack] port $port is already in use; set the *_PORT variables to free ports" >&2
    exit 1
  fi
done

issuer="http://127.0.0.1:$IDP_PORT"
gateway="http://127.0.0.1:$GATEWAY_PORT"
node integration-tests/idp/idp.mjs --port "$IDP_PORT" --keys "$state/idp-keys.json" \
  --ui-origin "$gateway,http://localhost:$GATEWAY_PORT" >"$state/idp.log" 2>&1 &
pids+=($!)
wait_port idp "$IDP_PORT"

# People's browser sign-in: the IdP's auth-server-ui client, and a session key made once.
if [ ! -s "$state/session.key" ]; then
  (umask 077 && head -c 32 /dev/urandom | base64 >"$state/session.key")
fi
AUTH_LISTEN="127.0.0.1:$AUTH_PORT" AUTH_PROVIDER=oidc AUTH_ISSUER="$issuer" \
AUTH_AUDIENCES=mcp-gateway AUTH_SCOPES_FILE="$root/scopes.yml" \
AUTH_SESSION_CLIENT_ID=auth-server-ui AUTH_SESSION_CLIENT_SECRET=auth-server-ui-secret \
AUTH_SESSION_ISSUER="$issuer" AUTH_SESSION_PUBLIC_URL="$gateway" \
AUTH_SESSION_KEY_FILE="$state/session.key" \
AUTH_SESSION_SCOPES="openid profile email groups" \
  "$CARGO_TARGET_DIR/debug/auth-server" >"$state/auth-server.log" 2>&1 &
pids+=($!)
wait_port auth-server "$AUTH_PORT"

"$CARGO_TARGET_DIR/debug/demo-mcp-servers" --currenttime "127.0.0.1:$CURRENTTIME_PORT" \
  --fininfo "127.0.0.1:$FININFO_PORT" >"$state/mcp-servers.log" 2>&1 &
pids+=($!)
wait_port currenttime "$CURRENTTIME_PORT"
wait_port fininfo "$FININFO_PORT"

GATEWAY_LISTEN="127.0.0.1:$GATEWAY_PORT" AUTH_SERVER="127.0.0.1:$AUTH_PORT" \
MCP_SERVERS="currenttime=127.0.0.1:$CURRENTTIME_PORT,fininfo=127.0.0.1:$FININFO_PORT" \
  deploy/nginx/render.sh "$state/nginx" >/dev/null
/usr/sbin/nginx -p "$state/nginx" -c "$state/nginx/nginx.conf" -e stderr -g 'daemon off;' \
  >"$state/nginx.log" 2>&1 &
pids+=($!)
wait_port nginx "$GATEWAY_PORT"

for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$AUTH_PORT/readyz" >/dev/null && break
  sleep 0.1
done

token_cmd() { # client
  echo "curl -s -d grant_type=client_credentials -d client_id=$1 -d client_secret=$1-secret $issuer/token | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])'"
}
admin_token=$(curl -s -d grant_type=client_credentials -d client_id=admin-agent \
  -d client_secret=admin-agent-secret "$issuer/token" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')

cat >"$state/vscode-mcp.json" <<JSON
{
  "servers": {
    "currenttime": {
      "type": "http",
      "url": "http://127.0.0.1:$GATEWAY_PORT/currenttime/mcp",
      "headers": { "X-Authorization": "Bearer $admin_token" }
    },
    "fininfo": {
      "type": "http",
      "url": "http://127.0.0.1:$GATEWAY_PORT/fininfo/mcp",
      "headers": { "X-Authorization": "Bearer $admin_token" }
    }
  }
}
JSON
chmod 600 "$state/vscode-mcp.json"

cat <<TEXT

  MCP gateway:   http://127.0.0.1:$GATEWAY_PORT/<server>/mcp   (servers: currenttime, fininfo)
  auth-server:   http://127.0.0.1:$AUTH_PORT  (/healthz, /readyz)    identity provider: $issuer

  Tokens (client credentials) for the demo clients:
    admin     $(token_cmd admin-agent)
    read-only $(token_cmd readonly-agent)
    operator  $(token_cmd operator-agent)
    no group  $(token_cmd nogroup-agent)

  People in a browser: $gateway/ui/
    sign in as  alice / alice-demo-password   (group mcp-registry-operator)

  A VS Code mcp.json with a fresh admin token (valid one hour): $state/vscode-mcp.json
  Logs: $state/*.log        Ctrl-C stops everything.

TEXT
wait -n "${pids[@]}" || true
[ -n "$stopping" ] || echo "[stack] a component exited; see the logs in $state" >&2
