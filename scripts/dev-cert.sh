#!/usr/bin/env bash
# A throwaway CA and a gateway certificate signed by it, for trying the TLS variants locally
# (docker-compose.tls.yml, deploy/nginx with TLS_CERT/TLS_KEY, deploy/envoy/render-tls.sh, a
# Kubernetes TLS secret in a test cluster). Never for production: use your CA or ACME there.
#
#   scripts/dev-cert.sh DIR [NAME...]      names for the certificate [localhost 127.0.0.1]
#
# Writes DIR/ca.crt (what clients trust: curl --cacert, mcp_check.py --ca-file, an MCP client's
# CA setting), DIR/gateway.crt and DIR/gateway.key (what the gateway serves). ECDSA P-256, valid
# 30 days. The key is readable by its group and others (0644): the gateway containers run as
# another user (nginx: uid 33) than the one who made it; keep DIR private.
set -euo pipefail
[[ $# -ge 1 ]] || { echo "usage: dev-cert.sh DIR [NAME...]" >&2; exit 1; }
dir=$1; shift
names=("$@")
[[ ${#names[@]} -gt 0 ]] || names=(localhost 127.0.0.1)
san=""
for name in "${names[@]}"; do
  if [[ $name =~ ^[0-9.]+$ || $name == *:* ]]; then san+="IP:$name,"; else san+="DNS:$name,"; fi
done
mkdir -p "$dir"
cd "$dir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
  -subj "/CN=mcp-gateway development CA (throwaway)" \
  -addext "basicConstraints=critical,CA:TRUE,pathlen:0" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -keyout "$work/ca.key" -out ca.crt 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=${names[0]}" \
  -keyout gateway.key -out "$work/gateway.csr" 2>/dev/null
printf 'subjectAltName=%s\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' \
  "${san%,}" >"$work/ext"
openssl x509 -req -in "$work/gateway.csr" -CA ca.crt -CAkey "$work/ca.key" -CAcreateserial \
  -CAserial "$work/ca.srl" -days 30 -extfile "$work/ext" -out gateway.crt 2>/dev/null
chmod 0644 gateway.key
# The CA key is gone with $work: nothing else can ever be signed by this CA.
echo "wrote $PWD/ca.crt, gateway.crt, gateway.key (${san%,})"
