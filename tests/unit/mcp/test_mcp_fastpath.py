"""The endpoint's `tools/call` fast path (`lockgate.mcp.fastpath`) answers byte for byte
what the SDK's streamable HTTP entry answers with lockgate's own server (`build_server`),
and leaves every other request to the SDK without sending anything."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, TextContent

from lockgate.core.context import Principal
from lockgate.mcp.calls import Caller
from lockgate.mcp.endpoint import build_server
from lockgate.mcp.fastpath import FastCall

SCHEMA: dict[str, Any] = {
    "type": "object", "properties": {"customer_id": {"type": "integer"}}, "required": ["customer_id"],
}
HEADER_SCHEMA: dict[str, Any] = {
    "type": "object", "properties": {"region": {"type": "string", "x-mcp-header": "Region"}},
}
META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": {"name": "mcp", "version": "0.1.0"},
    "io.modelcontextprotocol/clientCapabilities": {},
}
CALLER = Caller(Principal(id="k1", kind="key", label="sk-1"), "req-1")


class _Calls:
    def __init__(self) -> None:
        self.outcome: CallToolResult | Exception = CallToolResult(content=[])
        self.seen: list[tuple[str, Any]] = []

    async def call(self, caller: Caller, name: str, arguments: dict[str, Any] | None) -> CallToolResult:
        assert caller is CALLER
        self.seen.append((name, arguments))
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


class _Registry:
    def input_schema(self, name: str) -> dict[str, Any] | None:
        return {"crm__lookup": SCHEMA, "geo__find": HEADER_SCHEMA}.get(name)


class _Paths:
    def __init__(self) -> None:
        self.calls = _Calls()
        svc: Any = SimpleNamespace(calls=self.calls, registry=_Registry(), passthrough=None)
        server = build_server(svc)
        self.fast = FastCall(svc, server)
        self.manager = StreamableHTTPSessionManager(server, json_response=True, stateless=True)

    async def sdk(self, headers: list[tuple[bytes, bytes]], body: bytes) -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []
        scope = _scope(headers)
        scope["state"] = {"lockgate_mcp_caller": CALLER}
        done = False

        async def receive() -> dict[str, Any]:
            nonlocal done
            if done:
                return {"type": "http.disconnect"}
            done = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: Any) -> None:
            sent.append(dict(message))

        await self.manager.handle_request(scope, receive, send)
        return sent

    async def fastpath(self, headers: list[tuple[bytes, bytes]], body: bytes) -> tuple[bool, list[dict[str, Any]]]:
        sent: list[dict[str, Any]] = []

        async def send(message: Any) -> None:
            sent.append(dict(message))

        folded = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in headers}
        handled = await self.fast.handle(CALLER, _scope(headers), folded, body, send)
        return handled, sent


def _scope(headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {"type": "http", "method": "POST", "path": "/mcp", "raw_path": b"/mcp", "query_string": b"",
            "headers": headers, "scheme": "http", "server": ("127.0.0.1", 4000), "client": ("127.0.0.1", 5000),
            "http_version": "1.1", "root_path": ""}


def _request(name: str = "crm__lookup", arguments: Any = None, *, rid: Any = 3, version: str = "2026-07-28",
             method: str = "tools/call", extra: list[tuple[bytes, bytes]] | None = None,
             body: Any = None) -> tuple[list[tuple[bytes, bytes]], bytes]:
    headers = [
        (b"host", b"127.0.0.1:4000"), (b"accept", b"application/json, text/event-stream"),
        (b"content-type", b"application/json"), (b"mcp-protocol-version", version.encode()),
        (b"mcp-method", method.encode()), (b"mcp-name", name.encode()), *(extra or []),
    ]
    params: dict[str, Any] = {"name": name, "_meta": META}
    if arguments is not None:
        params["arguments"] = arguments
    envelope = body if body is not None else {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}
    return headers, json.dumps(envelope).encode()


@contextlib.asynccontextmanager
async def _paths() -> AsyncIterator[_Paths]:
    """Both paths over one server; the SDK's session manager runs in this task."""
    p = _Paths()
    async with p.manager.run():
        yield p


OUTCOMES: list[CallToolResult | Exception] = [
    CallToolResult(content=[TextContent(type="text", text='{"id": 1}')], structured_content={"id": 1, "a": None}),
    CallToolResult(content=[TextContent(type="text", text="boom")], is_error=True, _meta={"lockgate/guard": {"x": 1}}),
    CallToolResult(content=[]),
    MCPError(-32003, "Calling crm__lookup was denied by policy.", {"code": "permission_denied", "status": 403}),
    MCPError(-32602, "Unknown tool: 'crm__nope'.", {"code": "unknown_tool", "param": "name"}),
    MCPError(-32029, "Rate limit exceeded.", {"code": "rate_limit_exceeded", "retry_after": 3}),
    RuntimeError("an internal bug"),
]


@pytest.mark.parametrize("outcome", OUTCOMES, ids=lambda o: type(o).__name__)
@pytest.mark.parametrize("rid", [3, "abc-1"])
async def test_the_fast_path_answers_byte_for_byte_as_the_sdk(outcome: Any, rid: Any) -> None:
    async with _paths() as paths:
        paths.calls.outcome = outcome
        headers, body = _request(arguments={"customer_id": 1}, rid=rid)
        expected = await paths.sdk(headers, body)
        handled, sent = await paths.fastpath(headers, body)
    assert handled
    assert sent == expected
    assert paths.calls.seen == [("crm__lookup", {"customer_id": 1})] * 2


async def test_without_arguments_too() -> None:
    async with _paths() as paths:
        paths.calls.outcome = CallToolResult(content=[TextContent(type="text", text="ok")])
        headers, body = _request()
        expected = await paths.sdk(headers, body)
        assert await paths.fastpath(headers, body) == (True, expected)
    assert expected[0]["status"] == 200 and b'"resultType":"complete"' in expected[1]["body"]


def _replaced(name: bytes, value: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    headers, body = _request()
    return [(k, value if k == name else v) for k, v in headers], body


FALLBACKS = {
    "another method": _request(method="tools/list"),
    "handshake era": _request(version="2025-06-18"),
    "unknown version": _request(version="2099-01-01"),
    "header sent twice": _request(extra=[(b"accept", b"text/html")]),
    "mcp-name mismatch": _replaced(b"mcp-name", b"crm__other"),
    "mcp-param header": _request("geo__find", {"region": "eu"}, extra=[(b"mcp-param-region", b"eu")]),
    "x-mcp-header schema": _request("geo__find", {"region": "eu"}),
    "arguments not an object": _request(arguments=[1, 2]),
    "a notification": _request(body={"jsonrpc": "2.0", "method": "tools/call", "params": {}}),
    "a batch": _request(body=[{"jsonrpc": "2.0", "id": 1, "method": "tools/call"}]),
    "boolean id": _request(rid=True),
    "extra envelope key": _request(body={"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {}, "x": 1}),
    "no _meta": _request(body={"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "crm__lookup"}}),
    "malformed json": ([(b"content-type", b"application/json"), (b"mcp-protocol-version", b"2026-07-28"),
                        (b"accept", b"application/json")], b"{nope"),
    "wrong content type": _replaced(b"content-type", b"text/plain"),
    "no json accepted": _replaced(b"accept", b"text/event-stream"),
}


@pytest.mark.parametrize("case", list(FALLBACKS))
async def test_everything_else_is_left_to_the_sdk(case: str) -> None:
    async with _paths() as paths:
        headers, body = FALLBACKS[case]
        assert await paths.fastpath(headers, body) == (False, [])
    assert paths.calls.seen == []
