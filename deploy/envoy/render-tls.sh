#!/usr/bin/env bash
# Renders the TLS variant of a shipped Envoy config (envoy.yaml or envoy-grpc.yaml): the same
# file, with its listener on TLS_LISTEN and terminating TLS (tls.yaml.template put into the
# listener's filter chain). Routes, filters, limits and clusters stay exactly as shipped, so
# the plain and the TLS variant cannot drift apart.
#
#   TLS_CERT=/etc/mcp-gateway/tls/tls.crt TLS_KEY=/etc/mcp-gateway/tls/tls.key \
#       deploy/envoy/render-tls.sh deploy/envoy/envoy.yaml /tmp/envoy-tls.yaml
#   envoy --mode validate -c /tmp/envoy-tls.yaml && envoy -c /tmp/envoy-tls.yaml
#
# Environment:
#   TLS_CERT    PEM certificate chain (absolute path)                       [required]
#   TLS_KEY     PEM private key of TLS_CERT (absolute path)                 [required]
#   TLS_LISTEN  host:port of the HTTPS listener (HTTP/2 + HTTP/1.1)         [127.0.0.1:8443]
#
# Values are checked before they are substituted (plain string replacement in bash): nothing
# in a value is interpreted, and a value cannot add configuration.
set -euo pipefail

die() { echo "render-tls.sh: $*" >&2; exit 1; }

[[ $# -eq 2 ]] || die "usage: render-tls.sh SHIPPED_CONFIG OUTPUT"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
shipped=$1
output=$2

TLS_CERT=${TLS_CERT:-}
TLS_KEY=${TLS_KEY:-}
TLS_LISTEN=${TLS_LISTEN:-127.0.0.1:8443}
path_re='^/[A-Za-z0-9._/+@-]*$'
[[ $TLS_CERT =~ $path_re ]] || die "TLS_CERT must be an absolute path of [A-Za-z0-9._/+@-]: '$TLS_CERT'"
[[ $TLS_KEY =~ $path_re ]] || die "TLS_KEY must be an absolute path of [A-Za-z0-9._/+@-]: '$TLS_KEY'"
[[ $TLS_LISTEN =~ ^(\[([0-9A-Fa-f:.]+)\]|([0-9.]+)):([0-9]{1,5})$ ]] \
    || die "TLS_LISTEN must be IP:port or [IPv6]:port: '$TLS_LISTEN'"
listen_host=${BASH_REMATCH[2]}${BASH_REMATCH[3]}
listen_port=${BASH_REMATCH[4]}
for file in "$TLS_CERT" "$TLS_KEY"; do
    # Mounted secrets may appear only when the container starts: Envoy itself refuses to
    # start without them, naming the file.
    [[ -f $file ]] || echo "render-tls.sh: warning: $file does not exist (yet); Envoy will not start without it" >&2
done

mapfile -t lines <"$shipped"
block=$(<"$here/tls.yaml.template")
block=${block//'${TLS_CERT}'/$TLS_CERT}
block=${block//'${TLS_KEY}'/$TLS_KEY}

# The shape the insertion relies on, as shipped: one listener whose address is the first
# socket_address of the file, one filter chain that is a mapping starting with `filters:` (its
# keys at six spaces), and `clusters:` right after the listeners. A line at six spaces just
# before `clusters:` is then a key of that filter chain.
count() { local pattern=$1 n=0 line; for line in "${lines[@]}"; do [[ $line =~ $pattern ]] && n=$((n + 1)); done; echo "$n"; }
[[ $(count '^  listeners:$') == 1 && $(count '^    filter_chains:$') == 1 \
   && $(count '^    - filters:$') == 1 && $(count '^  clusters:$') == 1 ]] \
    || die "$shipped: not shaped like deploy/envoy's configs (one listener, one filter chain, then clusters)"

out=()
address_done=0
for line in "${lines[@]}"; do
    if [[ $address_done == 0 && $line =~ ^(\ +socket_address:\ ) ]]; then
        [[ $line == '      socket_address: {'* ]] || die "$shipped: the listener address is not the first socket_address"
        out+=("      socket_address: { address: \"$listen_host\", port_value: $listen_port }")
        address_done=1
        continue
    fi
    if [[ $line == '  clusters:' ]]; then
        out+=("$block" "")
    fi
    out+=("$line")
done
[[ $address_done == 1 ]] || die "$shipped: no listener address"

{
    echo "# TLS variant of $(basename "$shipped"), rendered by deploy/envoy/render-tls.sh"
    echo "# (listener: $TLS_LISTEN, HTTPS with HTTP/2 and HTTP/1.1; certificate $TLS_CERT)."
    printf '%s\n' "${out[@]}"
} >"$output"
echo "rendered $output (https $TLS_LISTEN, from $shipped)"
