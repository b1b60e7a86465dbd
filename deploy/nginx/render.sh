#!/usr/bin/env bash
# Render the MCP gateway's nginx config into OUTDIR (the nginx prefix).
#
#   deploy/nginx/render.sh OUTDIR
#   nginx -p OUTDIR -c OUTDIR/nginx.conf -e stderr -g 'daemon off;'
#
# Environment (defaults in brackets):
#   GATEWAY_LISTEN    address nginx listens on                     [127.0.0.1:8080]
#   AUTH_SERVER       auth-server host:port                        [127.0.0.1:8888]
#   MAX_BODY          largest request body, nginx size syntax      [1m]
#                     (keep equal to auth-server's AUTH_MAX_BODY_BYTES)
#   BODY_BUFFER       client_body_buffer_size                      [MAX_BODY + 1/16]
#   MAX_LIST_ANSWER   largest tools/list answer the filter reads   [16m]
#                     (keep equal to auth-server's AUTH_MAX_LIST_ANSWER_BYTES)
#   PREFIX            prefix the config refers to                  [OUTDIR, absolute]
#   LUA_DIR           directory holding the Lua modules            [PREFIX; the files are copied]
#                     (mcp_auth.lua, mcp_tools_list.lua)
#   MCP_SERVERS       "name=host:port,name=host:port": generates mcp-servers.conf
#   MCP_SERVERS_CONF  a hand-written mcp-servers.conf to copy      [mcp-servers.conf.example]
#                     (MCP_SERVERS wins when both are set)
#   TLS_CERT          PEM certificate chain: turns on the HTTPS front server (mcp-tls.conf)
#   TLS_KEY           PEM private key of TLS_CERT (both or neither)
#   TLS_LISTEN        address of the HTTPS listener (HTTP/2 + HTTP/1.1) [127.0.0.1:8443]
#
# Placeholders are replaced by plain string substitution (pure bash: values are not
# interpreted), and every value is checked first: nothing can inject nginx directives.
set -euo pipefail

die() { echo "render.sh: $*" >&2; exit 1; }

[[ $# -eq 1 ]] || die "usage: render.sh OUTDIR"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$1"
outdir=$(cd "$1" && pwd)

GATEWAY_LISTEN=${GATEWAY_LISTEN:-127.0.0.1:8080}
AUTH_SERVER=${AUTH_SERVER:-127.0.0.1:8888}
MAX_BODY=${MAX_BODY:-1m}
MAX_LIST_ANSWER=${MAX_LIST_ANSWER:-16m}
PREFIX=${PREFIX:-$outdir}
LUA_DIR=${LUA_DIR:-$PREFIX}
TLS_CERT=${TLS_CERT:-}
TLS_KEY=${TLS_KEY:-}
TLS_LISTEN=${TLS_LISTEN:-127.0.0.1:8443}

# nginx size -> bytes
size_bytes() {
    local v=$1 n unit
    [[ $v =~ ^([0-9]+)([kKmMgG]?)$ ]] || die "$2 is not an nginx size (1m, 1024k, 1048576): '$v'"
    n=${BASH_REMATCH[1]}; unit=${BASH_REMATCH[2],,}
    case $unit in
        k) echo $((n * 1024)) ;;
        m) echo $((n * 1048576)) ;;
        g) echo $((n * 1073741824)) ;;
        *) echo "$n" ;;
    esac
}

max_bytes=$(size_bytes "$MAX_BODY" MAX_BODY)
(( max_bytes > 0 )) || die "MAX_BODY must be above 0"
list_bytes=$(size_bytes "$MAX_LIST_ANSWER" MAX_LIST_ANSWER)
(( list_bytes >= 1024 )) || die "MAX_LIST_ANSWER must be at least 1k"
# Slightly above the limit, so bodies up to the limit stay in memory (deploy/nginx/README.md,
# "Measured facts": with both equal, chunked bodies near the limit spilled to a temp file).
BODY_BUFFER=${BODY_BUFFER:-$((max_bytes + max_bytes / 16))}
buffer_bytes=$(size_bytes "$BODY_BUFFER" BODY_BUFFER)
(( buffer_bytes >= max_bytes )) || die "BODY_BUFFER ($BODY_BUFFER) is below MAX_BODY ($MAX_BODY)"

socket_name=mcp-gateway.sock
addr_re='^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$'
[[ $GATEWAY_LISTEN =~ $addr_re || $GATEWAY_LISTEN =~ ^[0-9]{1,5}$ ]] \
    || die "GATEWAY_LISTEN must be host:port or port: '$GATEWAY_LISTEN'"
[[ $AUTH_SERVER =~ $addr_re ]] || die "AUTH_SERVER must be host:port: '$AUTH_SERVER'"
path_re='^/[A-Za-z0-9._/+@-]*$'
[[ $PREFIX =~ $path_re ]] || die "PREFIX must be an absolute path of [A-Za-z0-9._/+@-]: '$PREFIX'"
[[ $LUA_DIR =~ $path_re ]] || die "LUA_DIR must be an absolute path of [A-Za-z0-9._/+@-]: '$LUA_DIR'"
# The checking server's unix socket (the TLS front server's way in): sun_path holds 107 bytes.
(( ${#PREFIX} + ${#socket_name} + 1 <= 107 )) \
    || die "PREFIX is too long for the unix socket $PREFIX/$socket_name (at most $((106 - ${#socket_name})) characters)"
if [[ -n $TLS_CERT || -n $TLS_KEY ]]; then
    [[ -n $TLS_CERT && -n $TLS_KEY ]] || die "TLS_CERT and TLS_KEY go together (certificate and its key)"
    [[ $TLS_CERT =~ $path_re ]] || die "TLS_CERT must be an absolute path of [A-Za-z0-9._/+@-]: '$TLS_CERT'"
    [[ $TLS_KEY =~ $path_re ]] || die "TLS_KEY must be an absolute path of [A-Za-z0-9._/+@-]: '$TLS_KEY'"
    [[ $TLS_LISTEN =~ $addr_re || $TLS_LISTEN =~ ^[0-9]{1,5}$ ]] \
        || die "TLS_LISTEN must be host:port or port: '$TLS_LISTEN'"
    [[ $TLS_LISTEN != "$GATEWAY_LISTEN" ]] || die "TLS_LISTEN and GATEWAY_LISTEN are the same address: '$TLS_LISTEN'"
    for file in "$TLS_CERT" "$TLS_KEY"; do
        # Mounted secrets may appear only when the container starts: nginx itself refuses to
        # start without them, naming the file.
        [[ -f $file ]] || echo "render.sh: warning: $file does not exist (yet); nginx will not start without it" >&2
    done
fi

render() {  # render TEMPLATE OUTPUT
    local text name
    text=$(<"$1")
    for name in GATEWAY_LISTEN AUTH_SERVER MAX_BODY MAX_LIST_ANSWER BODY_BUFFER PREFIX LUA_DIR TLS_LISTEN TLS_CERT TLS_KEY; do
        text=${text//"\${$name}"/"${!name}"}
    done
    [[ $text != *'${'* ]] || die "$1: unknown placeholder left: $(grep -o '\${[A-Za-z_]*}' <<<"$text" | sort -u | tr '\n' ' ')"
    printf '%s\n' "$text" >"$2"
}

render "$here/nginx.conf.template" "$outdir/nginx.conf"
if [[ -n $TLS_CERT ]]; then
    render "$here/tls.conf.template" "$outdir/mcp-tls.conf"
else
    echo "# No TLS front server: render.sh ran without TLS_CERT and TLS_KEY." >"$outdir/mcp-tls.conf"
fi

for lua in mcp_auth.lua mcp_tools_list.lua; do
    if [[ $LUA_DIR == "$PREFIX" ]]; then
        cp "$here/$lua" "$outdir/$lua"
    elif [[ ! -f $LUA_DIR/$lua ]]; then
        echo "render.sh: warning: $LUA_DIR/$lua does not exist (yet); nginx will not start without it" >&2
    fi
done

if [[ -n ${MCP_SERVERS:-} ]]; then
    {
        echo "# generated by render.sh from MCP_SERVERS=$MCP_SERVERS"
        declare -a names=()
        IFS=',' read -ra entries <<<"$MCP_SERVERS"
        for entry in "${entries[@]}"; do
            name=${entry%%=*}; addr=${entry#*=}
            [[ $name =~ ^[A-Za-z0-9_-]+$ ]] || die "MCP_SERVERS: bad server name '$name'"
            [[ $addr =~ $addr_re ]] || die "MCP_SERVERS: bad address for $name: '$addr'"
            printf 'upstream mcp_%s {\n    server %s;\n    keepalive 64;\n    keepalive_requests 10000;\n}\n' "$name" "$addr"
            names+=("$name")
        done
        echo 'map $mcp_server $mcp_upstream {'
        echo '    default "";'
        for name in "${names[@]}"; do
            printf '    ~^%s$ mcp_%s;\n' "$name" "$name"
        done
        echo '}'
    } >"$outdir/mcp-servers.conf"
else
    cp "${MCP_SERVERS_CONF:-$here/mcp-servers.conf.example}" "$outdir/mcp-servers.conf"
fi

tls_note=""
[[ -z $TLS_CERT ]] || tls_note=", https $TLS_LISTEN"
echo "rendered $outdir/nginx.conf (listen $GATEWAY_LISTEN$tls_note, auth $AUTH_SERVER, body ≤ $MAX_BODY)"
