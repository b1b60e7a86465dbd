#!/usr/bin/env python3
"""Drive one MCP client session through the gateway with the official Python SDK.

    python mcp_check.py --url http://127.0.0.1:PORT/fininfo/mcp \\
        --header 'X-Authorization=Bearer <ingress jwt>' \\
        --header 'Authorization=Bearer <egress token>' \\
        [--ca-file CA.pem] [--call TOOL [--args JSON]]...

It connects with the SDK's streamable HTTP client, initializes, lists the tools,
makes each requested call, and prints ONE JSON object on stdout:

    {"initialized": true, "server_name": "...", "server_version": "...",
     "protocol_version": "...", "tools": ["..."],
     "calls": [{"tool": "...", "ok": true, "content": "...text..."},
               {"tool": "...", "ok": false, "http_status": 403, "method": "tools/call",
                "error": "...", "www_authenticate": "..."}]}

An HTTP error status on initialize (401/403 from the gateway, or a 5xx) is an
answer, not a crash: {"initialized": false, "http_status": 401, "method":
"initialize", "error": "...", "www_authenticate": "..."}, exit code 0. So is an
HTTP error on tools/list ("tools": null, "tools_error": {...}) or on a call.
"method" names the JSON-RPC request the HTTP error answered (it can be
notifications/initialized). A tool's own error result is "ok": false,
"is_error": true with its text in "content"; a JSON-RPC error answer is
"ok": false, "jsonrpc_code", "error". www_authenticate is there when the
answer had that header. Anything else (connection refused, a bug) exits 1 with a
traceback on stderr; no answer within --timeout exits 3.

Each call is sent as exactly one tools/call (ClientSession.call_tool would also
send a tools/list to validate output in a new session).

The SDK's transport cannot carry on after an HTTP error on a request: its task
group fails and the session ends. So after a failed call the remaining calls
run in a new session (a new initialize), which the gateway checks like any other.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import ssl
import sys
from typing import Any

import httpx
from mcp import ClientSession, types
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import McpError

# ---------------------------------------------------------------------------
# Command line


def parse_header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), value


class CallAction(argparse.Action):
    """--call TOOL starts a call; a following --args JSON gives its arguments."""

    def __call__(self, parser, namespace, value, option_string=None):
        calls = namespace.calls
        if option_string == "--call":
            calls.append({"tool": value, "args": {}})
            return
        if not calls:
            parser.error("--args must follow a --call")
        try:
            args = json.loads(value)
        except json.JSONDecodeError as err:
            parser.error(f"--args for {calls[-1]['tool']}: not JSON: {err}")
        if not isinstance(args, dict):
            parser.error(f"--args for {calls[-1]['tool']}: must be a JSON object")
        calls[-1]["args"] = args


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="MCP endpoint, e.g. http://127.0.0.1:8080/fininfo/mcp")
    parser.add_argument(
        "--header", dest="headers", action="append", default=[], type=parse_header,
        metavar="NAME=VALUE", help="HTTP header sent with every request (repeatable)",
    )
    parser.add_argument("--call", dest="calls", action=CallAction, default=[], metavar="TOOL",
                        help="call this tool (repeatable)")
    parser.add_argument("--args", dest="calls", action=CallAction, metavar="JSON",
                        help="arguments of the preceding --call, a JSON object")
    parser.add_argument("--ca-file", metavar="PEM",
                        help="for https URLs: trust only the CA certificates in this file "
                             "(default: httpx's roots, from certifi)")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="give up (exit non-zero) after this many seconds in all (default 60)")
    return parser.parse_args(argv)


# ---------------------------------------------------------------------------
# Finding the HTTP status behind an SDK failure


class HttpErrorRecorder(logging.Handler):
    """Remembers the last httpx.HTTPStatusError the SDK logged.

    An HTTP error on a notification (e.g. notifications/initialized) is only
    logged by the transport, which then closes the session: the caller sees
    "Connection closed". This keeps the status it was closed for.
    """

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.last: httpx.HTTPStatusError | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            found = find_http_error(record.exc_info[1])
            if found is not None:
                self.last = found


def find_http_error(exc: BaseException | None) -> httpx.HTTPStatusError | None:
    """Depth-first search of an exception, its groups, causes and contexts."""
    seen: set[int] = set()
    stack = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, httpx.HTTPStatusError):
            return e
        if isinstance(e, BaseExceptionGroup):
            stack.extend(e.exceptions)
        stack.extend([e.__cause__, e.__context__])
    return None


def refused_method(request: httpx.Request) -> str:
    """The JSON-RPC method of a refused request, else its HTTP method."""
    try:
        return json.loads(request.content)["method"]
    except Exception:  # noqa: BLE001 - no body (GET, DELETE), a batch, a stream
        return request.method


def http_failure(err: httpx.HTTPStatusError) -> dict[str, Any]:
    response = err.response
    out: dict[str, Any] = {
        "http_status": response.status_code,
        "method": refused_method(err.request),
        "error": f"{response.status_code} {response.reason_phrase} from {err.request.method} {err.request.url}",
    }
    if "www-authenticate" in response.headers:
        out["www_authenticate"] = response.headers["www-authenticate"]
    return out


# ---------------------------------------------------------------------------
# The session


def content_text(result: Any) -> str:
    parts = []
    for item in result.content:
        text = getattr(item, "text", None)
        parts.append(text if text is not None else f"[{item.type}]")
    return "\n".join(parts)


async def call_tool(session: ClientSession, name: str, args: dict[str, Any]) -> types.CallToolResult:
    """tools/call and nothing else.

    ClientSession.call_tool also sends a tools/list when the tool is not in its
    cache (to validate structured output), e.g. in a new session; that extra
    request would blur what the gateway was asked.
    """
    request = types.ClientRequest(
        types.CallToolRequest(params=types.CallToolRequestParams(name=name, arguments=args))
    )
    return await session.send_request(request, types.CallToolResult)


class SessionEnded(Exception):
    """The session died on an HTTP error; `during` says what it was doing."""

    def __init__(self, during: str, error: httpx.HTTPStatusError):
        super().__init__(f"{during}: {error}")
        self.during = during
        self.error = error


async def run_session(url: str, headers: dict[str, str], report: dict[str, Any],
                      calls: list[dict[str, Any]], recorder: HttpErrorRecorder,
                      verify: ssl.SSLContext | bool) -> None:
    """One session: initialize, list tools (first session only), then calls.

    Pops each call off `calls` once its outcome is in the report. Raises
    SessionEnded when an HTTP error ended the session.
    """
    during = "initialize"
    recorder.last = None
    timeout = httpx.Timeout(30.0, read=60.0)
    try:
        async with httpx.AsyncClient(headers=headers, timeout=timeout, verify=verify) as http:
            async with streamable_http_client(url, http_client=http) as (read, write, _):
                async with ClientSession(read, write) as session:
                    init = await session.initialize()
                    if "initialized" not in report:
                        report["initialized"] = True
                        report["server_name"] = init.serverInfo.name
                        report["server_version"] = init.serverInfo.version
                        report["protocol_version"] = str(init.protocolVersion)
                        during = "tools/list"
                        tools = await session.list_tools()
                        report["tools"] = [t.name for t in tools.tools]
                    while calls:
                        call = calls[0]
                        during = f"tools/call {call['tool']}"
                        try:
                            result = await call_tool(session, call["tool"], call["args"])
                        except McpError as err:  # a JSON-RPC error answer
                            if recorder.last is not None:
                                raise  # "Connection closed" after an HTTP error
                            entry = {"tool": call["tool"], "ok": False,
                                     "jsonrpc_code": err.error.code, "error": err.error.message}
                        else:
                            entry = {"tool": call["tool"], "ok": not result.isError,
                                     "content": content_text(result)}
                            if result.isError:  # the tool's own error, not the gateway's
                                entry["is_error"] = True
                            if result.structuredContent is not None:
                                entry["structured_content"] = result.structuredContent
                        report["calls"].append(entry)
                        calls.pop(0)
    except BaseException as exc:  # noqa: BLE001 - ExceptionGroup, cancellation, ...
        found = find_http_error(exc) or recorder.last
        if found is None or isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt, SystemExit)):
            raise
        raise SessionEnded(during, found) from exc


async def check(url: str, headers: dict[str, str], calls: list[dict[str, Any]],
                verify: ssl.SSLContext | bool = True) -> dict[str, Any]:
    recorder = HttpErrorRecorder()
    logging.getLogger("mcp").addHandler(recorder)
    report: dict[str, Any] = {"calls": []}
    pending = list(calls)
    while True:
        try:
            await run_session(url, headers, report, pending, recorder, verify)
            break
        except SessionEnded as ended:
            failure = http_failure(ended.error)
            if "initialized" not in report:
                # The very first initialize was refused: that is the answer.
                return {"initialized": False, **failure}
            if ended.during == "tools/list":
                report["tools"] = None
                report["tools_error"] = failure
            elif pending:
                # The call in flight, or the next one when a new session's
                # initialize was refused (then "method" says "initialize").
                report["calls"].append({"tool": pending.pop(0)["tool"], "ok": False, **failure})
            if not pending:
                break
    # Put "calls" last, for readability.
    report["calls"] = report.pop("calls")
    return report


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    headers = dict(args.headers)
    # Certificate and host name are verified either way; --ca-file only replaces the roots.
    verify = ssl.create_default_context(cafile=args.ca_file) if args.ca_file else True
    try:
        report = asyncio.run(
            asyncio.wait_for(check(args.url, headers, args.calls, verify), args.timeout))
    except TimeoutError:
        print(f"mcp_check: no answer within {args.timeout} s", file=sys.stderr)
        return 3
    sys.stdout.write(json.dumps(report) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
