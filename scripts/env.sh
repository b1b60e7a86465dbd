# Sourced by the scripts: one build directory outside the clone, so that every clone on this
# machine (CI's fresh one included) reuses the same compiled dependencies. Override with
# CARGO_TARGET_DIR.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mcp-auth-server/target}"
