#!/usr/bin/env python3
"""An agent's MCP side, the pattern of mcp-gateway-registry's guide: langchain-mcp-adapters'
MultiServerMCPClient built from what credentials-provider wrote, its tools listed and called.

    # from a generated config (VS Code: {"servers": ...} or {"mcp": {"servers": ...}};
    # Roocode: {"mcpServers": ...}); default .oauth-tokens/vscode_mcp.json
    .venv-agent/bin/python examples/agent.py --config .oauth-tokens/vscode_mcp.json \\
        --call currenttime current_time_by_timezone '{"tz_name": "UTC"}'

    # from the ingress token alone (.oauth-tokens/ingress.json) and the gateway's URL
    .venv-agent/bin/python examples/agent.py --ingress .oauth-tokens/ingress.json \\
        --gateway-url http://127.0.0.1:8480 --server currenttime --server fininfo

It prints ONE JSON object on stdout:

    {"servers": ["currenttime", ...],
     "tools": {"currenttime": ["countdown", "current_time_by_timezone"], ...},
     "calls": [{"server": "currenttime", "tool": "...", "result": "...text..."}]}

No language model is involved (none is reachable where the tests run): the tools listed here
are exactly the LangChain tools an agent would be given, e.g.

    from langchain.agents import create_agent
    agent = create_agent("anthropic:claude-sonnet-4-5", tools)

and each call below is what the agent's tool call runs. Errors (a refused token, a tool that
is not allowed) exit 1 with the reason on stderr.

Its venv is its own (.venv-agent, made by scripts/setup.sh from examples/requirements.txt):
langchain-mcp-adapters pins the MCP SDK to 1.x.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from langchain_mcp_adapters.client import MultiServerMCPClient

# Transport names of the generated configs that are streamable HTTP.
STREAMABLE_HTTP = {None, "http", "streamable-http", "streamable_http"}


def connections_from_config(path: Path) -> dict[str, dict[str, Any]]:
    """MultiServerMCPClient connections from a config credentials-provider wrote."""
    document = json.loads(path.read_text())
    servers = (
        document.get("servers")
        or document.get("mcp", {}).get("servers")
        or document.get("mcpServers")
    )
    if not isinstance(servers, dict) or not servers:
        raise SystemExit(f"{path}: no servers in it (servers, mcp.servers or mcpServers)")
    connections = {}
    for name, server in servers.items():
        if server.get("type") not in STREAMABLE_HTTP:
            print(f"agent: skipping {name}: transport {server.get('type')!r}", file=sys.stderr)
            continue
        connections[name] = {
            "transport": "streamable_http",
            "url": server["url"],
            "headers": server.get("headers", {}),
        }
    return connections


def connections_from_ingress(
    path: Path, gateway_url: str, servers: list[str]
) -> dict[str, dict[str, Any]]:
    """Connections to servers behind the gateway with the stored ingress token: the headers
    the gateway reads (X-Authorization; for Cognito also the pool headers it checks)."""
    token = json.loads(path.read_text())
    headers = {"X-Authorization": f"Bearer {token['access_token']}"}
    if token.get("provider") == "cognito" and token.get("user_pool_id"):
        headers |= {
            "X-User-Pool-Id": token["user_pool_id"],
            "X-Client-Id": token["client_id"],
            "X-Region": token["region"],
        }
    base = gateway_url.rstrip("/")
    return {
        name: {"transport": "streamable_http", "url": f"{base}/{name}/mcp", "headers": headers}
        for name in servers
    }


def text_of(result: Any) -> str:
    """The text of a tool's answer (a string, or MCP content blocks)."""
    if isinstance(result, str):
        return result
    if isinstance(result, tuple):  # (content, artifact)
        result = result[0]
    if isinstance(result, list):
        return "\n".join(
            block.get("text", json.dumps(block)) if isinstance(block, dict) else str(block)
            for block in result
        )
    return json.dumps(result)


async def run(connections: dict[str, dict[str, Any]], calls: list[tuple[str, str, dict]]) -> dict:
    client = MultiServerMCPClient(connections)
    tools = {}
    by_server = {}
    for name in connections:
        server_tools = await client.get_tools(server_name=name)
        by_server[name] = {tool.name: tool for tool in server_tools}
        tools[name] = sorted(by_server[name])
    results = []
    for server, tool_name, arguments in calls:
        tool = by_server.get(server, {}).get(tool_name)
        if tool is None:
            raise SystemExit(f"agent: {server} has no tool {tool_name} (it has {tools.get(server)})")
        result = await tool.ainvoke(arguments)
        results.append({"server": server, "tool": tool_name, "result": text_of(result)})
    return {"servers": list(connections), "tools": tools, "calls": results}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--config", type=Path, help="a config credentials-provider wrote")
    source.add_argument("--ingress", type=Path, help="the stored ingress token (ingress.json)")
    parser.add_argument("--gateway-url", help="with --ingress: the gateway's base URL")
    parser.add_argument(
        "--server", action="append", default=[], help="with --ingress: a server (repeatable)"
    )
    parser.add_argument(
        "--call",
        nargs=3,
        action="append",
        default=[],
        metavar=("SERVER", "TOOL", "JSON"),
        help="call a tool with JSON arguments (repeatable)",
    )
    args = parser.parse_args()
    if args.ingress:
        if not args.gateway_url or not args.server:
            parser.error("--ingress needs --gateway-url and at least one --server")
        connections = connections_from_ingress(args.ingress, args.gateway_url, args.server)
    else:
        connections = connections_from_config(args.config or Path(".oauth-tokens/vscode_mcp.json"))
    calls = []
    for server, tool, arguments in args.call:
        try:
            calls.append((server, tool, json.loads(arguments)))
        except json.JSONDecodeError as err:
            parser.error(f"--call {server} {tool}: arguments are not JSON: {err}")
    try:
        report = asyncio.run(run(connections, calls))
    except SystemExit:
        raise
    except Exception as err:  # noqa: BLE001 - one line for people, not a traceback
        # The MCP SDK's task groups wrap the cause (an HTTP 401/403, a refused connection).
        while isinstance(err, BaseExceptionGroup) and err.exceptions:
            err = err.exceptions[0]
        print(f"agent: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
