#!/usr/bin/env python3
"""A small MCP server on the official Python SDK (FastMCP, streamable HTTP), for the gateway's
end-to-end tests: the tools of the rmcp `fininfo` demo server, by name, answering every POST
with an event stream (FastMCP's default), as Python MCP servers in the wild do.

    python fininfo_fastmcp.py --port PORT

Serves http://127.0.0.1:PORT/mcp until killed. Loopback only.
"""

from __future__ import annotations

import argparse

from mcp.server.fastmcp import FastMCP


def build(port: int) -> FastMCP:
    server = FastMCP("pyfin", host="127.0.0.1", port=port, log_level="WARNING")

    @server.tool()
    def get_stock_aggregates(stock_ticker: str, from_date: str, to_date: str) -> str:
        """Aggregate bars for a stock (demo: no market data is fetched)."""
        return f"{stock_ticker.upper()} from {from_date} to {to_date}: no data (demo)"

    @server.tool()
    def print_stock_data(stock_ticker: str, from_date: str, to_date: str) -> str:
        """Aggregate bars for a stock as a text table (demo)."""
        return f"Stock data for {stock_ticker.upper()} (demo)"

    @server.tool()
    def delete_all_portfolios() -> str:
        """Delete every portfolio. No policy should allow it (demo: deletes nothing)."""
        return "delete_all_portfolios ran"

    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    build(args.port).run(transport="streamable-http")


if __name__ == "__main__":
    main()
