"""Renders a shipped deploy/envoy config for a load run: loopback ports in place of the
shipped ones, and with --no-auth the ext_authz filter disabled on the MCP routes (the same
Envoy config without the check: the baseline).

    .venv/bin/python render_envoy.py SHIPPED OUT --listen P --auth P [--auth-grpc P] --mcp P [--no-auth]

PyYAML comes with the packaging checks' kubernetes-validate in .venv (scripts/setup.sh).
"""
import argparse

import yaml


def endpoints(cluster, port):
    for locality in cluster["load_assignment"]["endpoints"]:
        for endpoint in locality["lb_endpoints"]:
            endpoint["endpoint"]["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": port}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("shipped")
    parser.add_argument("out")
    parser.add_argument("--listen", type=int, required=True)
    parser.add_argument("--auth", type=int, required=True)
    parser.add_argument("--auth-grpc", type=int)
    parser.add_argument("--mcp", type=int, required=True, help="every MCP server cluster")
    parser.add_argument("--no-auth", action="store_true")
    args = parser.parse_args()
    with open(args.shipped) as file:
        config = yaml.safe_load(file)
    resources = config["static_resources"]
    (listener,) = resources["listeners"]
    listener["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": args.listen}
    for cluster in resources["clusters"]:
        name = cluster["name"]
        port = {"auth_server": args.auth, "auth_server_grpc": args.auth_grpc}.get(name, args.mcp)
        if port is None:
            raise SystemExit(f"render_envoy.py: {args.shipped} needs --auth-grpc")
        endpoints(cluster, port)
    if args.no_auth:
        (chain,) = listener["filter_chains"]
        (manager,) = chain["filters"]
        for host in manager["typed_config"]["route_config"]["virtual_hosts"]:
            for route in host["routes"]:
                if "route" in route and route["route"]["cluster"].startswith("mcp_"):
                    route.setdefault("typed_per_filter_config", {})["envoy.filters.http.ext_authz"] = {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute",
                        "disabled": True,
                    }
    with open(args.out, "w") as file:
        yaml.safe_dump(config, file)


main()
