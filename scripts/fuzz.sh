#!/usr/bin/env bash
# Fuzzes auth-server's readers of untrusted input with cargo-fuzz (libFuzzer + AddressSanitizer):
# each target in fuzz/fuzz_targets for a bounded time, starting from the seed corpus in
# fuzz/corpus/<target>/.
#
#   scripts/fuzz.sh                      # 20 s per target (the step in scripts/test.sh)
#   scripts/fuzz.sh 3600                 # a longer run: one hour per target
#   scripts/fuzz.sh 600 jsonrpc_parse    # ten minutes, one target
#   FUZZ_JOBS=2 scripts/fuzz.sh 3600     # libFuzzer workers per target (default 1)
#
# cargo-fuzz needs the compiler's unstable flags (-Zsanitizer=address, coverage); on the stable
# toolchain RUSTC_BOOTSTRAP=1 allows them, for this build only (its own target dir, FUZZ_TARGET_DIR).
# New inputs go to a temporary corpus; the committed seeds are only read. An input that panics,
# overflows, or runs longer than 10 s fails the run and is kept in fuzz/artifacts/<target>/:
# replay it with `RUSTC_BOOTSTRAP=1 cargo fuzz run <target> fuzz/artifacts/<target>/<file>`, then
# add it to fuzz/corpus/<target>/ once fixed.
set -euo pipefail
shopt -s nullglob
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. scripts/env.sh

seconds=${1:-20}
[[ $seconds =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: seconds per target must be a positive whole number, not '$seconds'" >&2; exit 2; }
shift $(( $# > 0 ? 1 : 0 ))
jobs=${FUZZ_JOBS:-1}
[[ $jobs =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: FUZZ_JOBS must be a positive whole number, not '$jobs'" >&2; exit 2; }
command -v cargo-fuzz >/dev/null \
  || { echo "fuzz.sh: cargo-fuzz is missing: cargo install cargo-fuzz --locked (scripts/setup.sh installs it)" >&2; exit 1; }
export RUSTC_BOOTSTRAP=1
# Sanitizer builds apart from the normal ones, also outside the clone (see scripts/env.sh).
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/mcp-auth-server/fuzz-target}"

targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "[fuzz] building ${targets[*]}"
cargo fuzz build >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; exit 1; }
parallel=()
[ "$jobs" -gt 1 ] && parallel=(-jobs="$jobs" -workers="$jobs")
for target in "${targets[@]}"; do
  mkdir -p "$work/$target/new"
  # The body reader gets inputs up to 64 KiB: superlinear work (the per-KiB budget in its
  # target) only shows on large inputs. The others keep libFuzzer's default.
  max_len=()
  [ "$target" = jsonrpc_parse ] && max_len=(-max_len=65536)
  log="$work/$target/run.log"
  # Run from the work directory: with -jobs, libFuzzer writes fuzz-<n>.log where it runs.
  if (cd "$work/$target" && cargo fuzz run --fuzz-dir "$root/fuzz" "$target" \
        "$work/$target/new" "$root/fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1 "${max_len[@]}" "${parallel[@]}") \
      >"$log" 2>&1; then
    runs=$(awk -F': *' '/^stat::number_of_executed_units/ { sum += $NF } END { print sum + 0 }' \
      "$log" "$work/$target"/fuzz-*.log)
    echo "[fuzz] $target: ${seconds}s, ${runs:-?} runs, no crash"
  else
    tail -n 60 "$log" >&2
    for job_log in "$work/$target"/fuzz-*.log; do tail -n 60 "$job_log" >&2; done
    echo "[fuzz] $target: FAILED (log above; a crashing input is kept in fuzz/artifacts/$target/)" >&2
    exit 1
  fi
done
