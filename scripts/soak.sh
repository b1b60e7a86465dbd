#!/usr/bin/env bash
# Memory soak, bounded in time: auth-server's /validate under constant load for DURATION seconds
# (default 600), with more distinct tokens than the verified-token cache holds, so the cache
# fills, then evicts on every new token for the whole run. RSS and the cache's entry count are
# sampled every SAMPLE seconds. After the warm-up (the first WARMUP seconds, while the cache
# fills) RSS must stay flat: it fails if it grows by more than MAX_GROWTH_KIB.
#
#   scripts/soak.sh      # DURATION=600 SAMPLE=30 WARMUP=60 TOKENS=10000 CACHE=2000 CONNECTIONS=16
set -euo pipefail
# Decision logs at ~350 bytes per check would fill the disk: written to /dev/null, which
# still pays for formatting and writing each line.
LOG_TO_FILE=${LOG_TO_FILE:-0}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. scripts/env.sh
DURATION=${DURATION:-600}
SAMPLE=${SAMPLE:-30}
WARMUP=${WARMUP:-60}
TOKENS=${TOKENS:-10000}
CACHE=${CACHE:-2000}
CONNECTIONS=${CONNECTIONS:-16}
MAX_GROWTH_KIB=${MAX_GROWTH_KIB:-2048}
(( DURATION <= 3600 )) || { echo "soak.sh: DURATION is at most 3600 s" >&2; exit 2; }
(( WARMUP < DURATION )) || { echo "soak.sh: WARMUP must be below DURATION" >&2; exit 2; }

{ command -v wrk && [ -d integration-tests/idp/node_modules/oidc-provider ]; } >/dev/null || ./scripts/setup.sh >/dev/null
cargo build --release --quiet -p auth-server --bin auth-server
. scripts/load/common.sh

start_idp
issue_tokens "$TOKENS"
metrics_port=$(free_port)
start_auth auth AUTH_TOKEN_CACHE_SIZE="$CACHE" AUTH_METRICS_LISTEN="127.0.0.1:$metrics_port"
cache_entries() { curl -fs "http://127.0.0.1:$metrics_port/metrics" | awk '/^auth_token_cache_entries / {print $2}'; }

echo "[soak] $DURATION s, $CONNECTIONS connections, $TOKENS distinct tokens, cache of $CACHE" >&2
TOKENS_FILE="$work/many-tokens.txt" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" -s scripts/load/tools_call.lua \
  "http://127.0.0.1:$auth_port/validate" >"$work/wrk.out" &
wrk_pid=$!
pids+=($wrk_pid)

echo "| seconds | RSS (KiB) | cached tokens |"
echo "|---|---|---|"
baseline="" peak=0 last=0
for ((elapsed = 0; elapsed <= DURATION; elapsed += SAMPLE)); do
  rss=$(rss_kib "$auth_pid")
  echo "| $elapsed | $rss | $(cache_entries) |"
  if (( elapsed >= WARMUP )); then
    [[ -n $baseline ]] || baseline=$rss
    (( rss > peak )) && peak=$rss
    last=$rss
  fi
  (( elapsed + SAMPLE <= DURATION )) && sleep "$SAMPLE"
done
wait "$wrk_pid" || true
grep '^RESULT' "$work/wrk.out" || { echo "soak.sh: no load result" >&2; cat "$work/wrk.out" >&2; exit 1; }
growth=$((peak - baseline))
echo "- RSS after warm-up: first $baseline KiB, peak $peak KiB, last $last KiB: growth $growth KiB (limit $MAX_GROWTH_KIB)"
if (( growth > MAX_GROWTH_KIB )); then
  echo "soak.sh: RSS grew by $growth KiB after the warm-up" >&2
  exit 1
fi
