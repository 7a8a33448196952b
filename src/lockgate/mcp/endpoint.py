"""The endpoint agents use: streamable HTTP at `/mcp` and `/mcp/{virtual_server}`.

An ASGI front authenticates every HTTP request (a lockgate key or a just-in-time grant
token, exactly as the chat endpoints do: `Authorization: Bearer ...` or `x-api-key`),
bounds the body, and picks the virtual server; a well-formed 2026-07-28 `tools/call` is
answered by `fastpath.FastCall` (the same checks and reply, without the SDK's per-request
machinery); for everything else the `mcp` SDK's streamable HTTP session manager
(stateless, JSON responses) and low-level `Server` speak the protocol, both the
2026-07-28 single-exchange form and the handshake form. The handlers below
read the caller the front attached to the request.

Errors before the protocol starts are JSON-RPC error bodies too: 401 (no or bad
credential), 403 (an unknown agent), 404 (an unknown virtual server), 413 (a body over
`mcp.max_body_bytes`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError
from mcp.types import (
    INVALID_REQUEST,
    CallToolRequestParams,
    CallToolResult,
    GetPromptRequestParams,
    GetPromptResult,
    ListPromptsResult,
    ListResourcesResult,
    ListResourceTemplatesResult,
    ListToolsResult,
    PaginatedRequestParams,
    ReadResourceRequestParams,
    ReadResourceResult,
)
from starlette.types import Message, Receive, Scope, Send

from lockgate.core.context import RequestContext
from lockgate.core.ids import uuid7
from lockgate.errors import LockgateError
from lockgate.mcp.calls import Caller
from lockgate.mcp.errors import FORBIDDEN, UNAUTHORIZED, to_mcp_error
from lockgate.mcp.fastpath import FastCall

if TYPE_CHECKING:
    from mcp.server.context import ServerRequestContext

    from lockgate.mcp.service import McpService

__all__ = ["McpEndpoint", "build_server"]

_CALLER = "lockgate_mcp_caller"


def _caller(ctx: ServerRequestContext[Any, Any]) -> Caller:
    request = ctx.request
    caller = request.scope.get("state", {}).get(_CALLER) if request is not None else None
    if not isinstance(caller, Caller):
        raise MCPError(INVALID_REQUEST, "No authenticated caller on this request.")
    return caller


def build_server(svc: McpService) -> Server[Any]:
    """The low-level SDK server whose handlers apply lockgate's rules."""

    async def list_tools(ctx: ServerRequestContext[Any, Any], params: PaginatedRequestParams | None) -> Any:
        return ListToolsResult(tools=svc.calls.visible_tools(_caller(ctx)))

    async def call_tool(ctx: ServerRequestContext[Any, Any], params: CallToolRequestParams) -> CallToolResult:
        return await svc.calls.call(_caller(ctx), params.name, params.arguments)

    async def list_resources(ctx: ServerRequestContext[Any, Any], params: PaginatedRequestParams | None) -> Any:
        return ListResourcesResult(resources=await svc.passthrough.list_resources(_caller(ctx)))

    async def list_templates(ctx: ServerRequestContext[Any, Any], params: PaginatedRequestParams | None) -> Any:
        return ListResourceTemplatesResult(resource_templates=[])

    async def read_resource(ctx: ServerRequestContext[Any, Any], params: ReadResourceRequestParams) -> ReadResourceResult:
        caller = _caller(ctx)
        return await _mapped(caller, svc.passthrough.read_resource(caller, str(params.uri)))

    async def list_prompts(ctx: ServerRequestContext[Any, Any], params: PaginatedRequestParams | None) -> Any:
        return ListPromptsResult(prompts=await svc.passthrough.list_prompts(_caller(ctx)))

    async def get_prompt(ctx: ServerRequestContext[Any, Any], params: GetPromptRequestParams) -> GetPromptResult:
        caller = _caller(ctx)
        return await _mapped(caller, svc.passthrough.get_prompt(caller, params.name, params.arguments))

    server: Server[Any] = Server(
        "lockgate", version="1", description="lockgate MCP gateway: governed access to enterprise tools",
        get_tool_input_schema=svc.registry.input_schema,
        on_list_tools=list_tools, on_call_tool=call_tool, on_list_resources=list_resources,
        on_list_resource_templates=list_templates, on_read_resource=read_resource,
        on_list_prompts=list_prompts, on_get_prompt=get_prompt,
    )
    server.middleware = []  # lockgate traces tool calls itself (`execute_tool {tool}`)
    return server


async def _mapped(caller: Caller, work: Any) -> Any:
    try:
        return await work
    except LockgateError as exc:
        raise to_mcp_error(exc, caller.request_id) from None


def _error_body(status: int, code: int, message: str, data: dict[str, Any]) -> tuple[int, bytes]:
    body = {"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message, "data": data}}
    return status, json.dumps(body, separators=(",", ":")).encode()


async def _send_error(send: Send, status: int, code: int, message: str, data: dict[str, Any],
                      headers: list[tuple[bytes, bytes]] | None = None) -> None:
    status, body = _error_body(status, code, message, data)
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(headers or []),
    ]})
    await send({"type": "http.response.body", "body": body})


def _credential(headers: dict[str, str]) -> str | None:
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return headers.get("x-api-key") or None


class McpEndpoint:
    """The ASGI app mounted at `/mcp` and `/mcp/{virtual_server}`."""

    def __init__(
        self, svc: McpService, identify: Callable[[RequestContext], Any], max_body: int, fast: FastCall | None = None,
    ) -> None:
        self._svc = svc
        self._identify = identify
        self._max_body = max_body
        self._fast = fast

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        rid = headers.get("x-request-id") or uuid7()
        data: dict[str, Any] = {"request_id": rid}
        path: str = scope.get("path", "")
        virtual_name = path.rstrip("/").removeprefix("/mcp").strip("/") or None
        virtual = None
        if virtual_name is not None:
            virtual = self._svc.rules.virtual.get(virtual_name)
            if virtual is None:
                known = ", ".join(sorted(self._svc.rules.virtual)) or "none"
                await _send_error(send, 404, INVALID_REQUEST,
                                  f"Unknown virtual MCP server {virtual_name!r} (known: {known}).",
                                  {**data, "code": "not_found"})
                return
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._max_body:
            await _send_error(send, 413, INVALID_REQUEST, f"Request body over {self._max_body} bytes.",
                              {**data, "code": "request_too_large"})
            return
        ctx = RequestContext(request_id=rid, dialect="openai", endpoint="mcp", credential=_credential(headers))
        ctx.attrs["headers"] = headers
        try:
            principal = self._identify(ctx)
        except LockgateError as exc:
            extra = [(b"www-authenticate", b'Bearer realm="lockgate"')] if exc.status == 401 else []
            code = UNAUTHORIZED if exc.status == 401 else FORBIDDEN
            await _send_error(send, exc.status, code, exc.message, {**data, "code": exc.code}, extra)
            return
        caller = Caller(principal, rid, virtual)
        body = await _read_body(receive, self._max_body)
        if body is None:
            await _send_error(send, 413, INVALID_REQUEST, f"Request body over {self._max_body} bytes.",
                              {**data, "code": "request_too_large"})
            return
        if self._fast is not None and await self._fast.handle(caller, scope, headers, body, send):
            return
        scope = dict(scope)  # the SDK's handlers find the caller in the request's state
        scope["state"] = {**scope.get("state", {}), _CALLER: caller}
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self._svc.manager.handle_request(scope, replay, send)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None once it passes `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)
