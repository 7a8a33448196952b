"""The hot path of the endpoint: one `tools/call` on the 2026-07-28 single-exchange wire.

Every tool call used to go through the SDK's streamable HTTP entry, which builds per
request a Starlette `Request`, a transport-security check, a pydantic `JSONRPCRequest`, a
`Connection`, a dispatch context, a `ServerRunner`, a `ServerSession` and a request
context, then runs the handler and serialises the reply. For the one request shape that
matters for latency, a well-formed `tools/call` POST, this module answers directly,
calling the same SDK functions for the checks and the reply:

    classify_inbound_request     the routing headers against the body's envelope
    validate_client_request      the params, per protocol version
    CallToolRequestParams        what the handler receives
    serialize_server_result      the per-version result sieve; then `resultType` and
                                 the `serverInfo` stamp, as `ServerRunner._serialize`
    modern_error_data            a refusal's JSON-RPC error, with the SDK's HTTP status

Anything else returns False before anything is sent, and the SDK answers it, errors
included, exactly as it always did: another method, a handshake-era request, a header
sent twice, an `Mcp-Param-*` header or a tool whose schema declares `x-mcp-header`, a
malformed envelope, any check that fails. Tests compare both paths' replies byte for byte.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, cast

from mcp.server.runner import modern_error_data
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import (
    ERROR_CODE_HTTP_STATUS,
    X_MCP_HEADER_KEY,
    InboundLadderRejection,
    classify_inbound_request,
)
from mcp.types import INTERNAL_ERROR, CallToolRequestParams, JSONRPCError
from mcp_types import CORE_RESULT_TYPES, SERVER_INFO_META_KEY
from mcp_types import methods as _methods
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ValidationError
from starlette.types import Send

from lockgate.mcp.calls import Caller

if TYPE_CHECKING:
    from mcp.server.lowlevel import Server

    from lockgate.mcp.service import McpService

__all__ = ["FastCall"]

_ENVELOPE: Final = frozenset({"jsonrpc", "id", "method", "params"})
_PARAM_PREFIX: Final = "mcp-param-"
_OK: Final = 200


def _accepts_json(accept: str) -> bool:
    """`check_accept_headers`' JSON half (the endpoint answers JSON only)."""
    types = [t.strip().split(";")[0].strip().lower() for t in accept.split(",")]
    return any(t in ("application/json", "application/*", "*/*") for t in types)


class FastCall:
    """Answers well-formed modern `tools/call` POSTs; see the module docstring."""

    def __init__(self, svc: McpService, server: Server[Any]) -> None:
        self._svc = svc
        self._status = ERROR_CODE_HTTP_STATUS
        self._stamp = server.server_info_stamp  # a fresh copy per access in the SDK; never mutated here
        self._schemas: dict[int, tuple[Any, bool]] = {}
        # The SDK's extras a lockgate server never sets; with any, the SDK serves all.
        self.enabled = not server.middleware and "tools/call" not in server.cache_hints

    async def handle(
        self, caller: Caller, scope: Mapping[str, Any], headers: dict[str, str], body: bytes, send: Send,
    ) -> bool:
        """Answer the request and return True, or return False having sent nothing."""
        request = self._parse(scope, headers, body)
        if request is None:
            return False
        request_id, version, name, arguments = request
        try:
            result = await self._svc.calls.call(caller, name, arguments)
            dumped = self._serialize(version, result.model_dump(by_alias=True, mode="json", exclude_none=True))
        except Exception as exc:  # the SDK's boundary: every handler error becomes JSON-RPC
            await self._write_error(JSONRPCError(jsonrpc="2.0", id=request_id, error=modern_error_data(exc)), send)
            return True
        # `JSONRPCResponse(...).model_dump(mode="json", exclude_none=True)` of a JSON-ready
        # result is this dict: `exclude_none` reaches model fields only, not `result`'s values.
        await _send_json(send, _OK, {"jsonrpc": "2.0", "id": request_id, "result": dumped})
        return True

    def _parse(
        self, scope: Mapping[str, Any], headers: dict[str, str], body: bytes
    ) -> tuple[int | str, str, str, dict[str, Any] | None] | None:
        """(request id, protocol version, tool name, arguments) of a request this path
        answers exactly as the SDK would; None for everything else."""
        if (
            not self.enabled or scope.get("method") != "POST"
            or headers.get("mcp-protocol-version") not in MODERN_PROTOCOL_VERSIONS
            or not headers.get("content-type", "").lower().startswith("application/json")
            or not _accepts_json(headers.get("accept", ""))
        ):
            return None
        try:
            decoded: Any = json.loads(body)
        except (ValueError, RecursionError):
            return None
        if not isinstance(decoded, dict) or not _ENVELOPE.issuperset(cast("dict[str, Any]", decoded)):
            return None
        envelope = cast("dict[str, Any]", decoded)
        request_id: Any = envelope.get("id")
        params: Any = envelope.get("params")
        if (
            envelope.get("jsonrpc") != "2.0" or envelope.get("method") != "tools/call"
            or isinstance(request_id, bool) or not isinstance(request_id, int | str)
            or not isinstance(params, dict)
        ):
            return None
        # A header given twice (first-copy and last-copy readers could disagree, and the
        # SDK names a duplicated routing header in its error): the SDK.
        if len(scope.get("headers", ())) != len(headers):
            return None
        verdict = classify_inbound_request(envelope, headers=headers)
        if isinstance(verdict, InboundLadderRejection):
            return None
        version = verdict.protocol_version
        typed = self._params(version, cast("dict[str, Any]", params), headers)
        if typed is None:
            return None
        return request_id, version, typed.name, typed.arguments

    def _params(self, version: str, params: dict[str, Any], headers: dict[str, str]) -> CallToolRequestParams | None:
        if any(h.startswith(_PARAM_PREFIX) for h in headers):
            return None
        arguments: Any = params.get("arguments")
        if arguments is not None and not isinstance(arguments, dict):
            return None
        name: Any = params.get("name")
        if arguments and isinstance(name, str) and self._declares_headers(name):
            return None  # the tool mirrors arguments into headers: the SDK checks them
        try:
            _methods.validate_client_request("tools/call", version, params)
            return CallToolRequestParams.model_validate(params, by_name=False)
        except (ValidationError, KeyError):
            return None

    def _declares_headers(self, name: str) -> bool:
        """Whether the tool's input schema has an `x-mcp-header` key anywhere (cached per
        schema object): without one, `validate_mcp_param_headers` has nothing to check."""
        try:
            schema = self._svc.registry.input_schema(name)
        except Exception:
            return True
        if schema is None:
            return False
        cached = self._schemas.get(id(schema))
        if cached is None or cached[0] is not schema:
            if len(self._schemas) > 4096:
                self._schemas.clear()
            cached = self._schemas[id(schema)] = (schema, _mentions(schema, X_MCP_HEADER_KEY))
        return cached[1]

    def _serialize(self, version: str, dumped: dict[str, Any]) -> dict[str, Any]:
        """`ServerRunner._serialize` for `tools/call` (no cache hints on lockgate's server)."""
        result_type = dumped.get("resultType")
        if not isinstance(result_type, str) or result_type in CORE_RESULT_TYPES:
            try:
                dumped = _methods.serialize_server_result("tools/call", version, dumped)
            except ValidationError:
                raise MCPError(code=INTERNAL_ERROR, message="Handler returned an invalid result") from None
        if dumped.get("resultType") is None:
            dumped["resultType"] = "complete"
        meta: Any = dumped.get("_meta")
        if meta is None:
            dumped["_meta"] = {SERVER_INFO_META_KEY: self._stamp}
        elif isinstance(meta, dict) and cast("dict[str, Any]", meta).get(SERVER_INFO_META_KEY) is None:
            dumped["_meta"] = {**cast("dict[str, Any]", meta), SERVER_INFO_META_KEY: self._stamp}
        return dumped

    async def _write_error(self, reply: JSONRPCError, send: Send) -> None:
        """The SDK's `_write` of an error: the table-mapped HTTP status."""
        status = self._status.get(reply.error.code, _OK)
        await _send_json(send, status, reply.model_dump(mode="json", by_alias=True, exclude_none=True))


def _mentions(value: Any, key: str) -> bool:
    """Whether `key` is a key of any object inside the JSON value."""
    stack: list[Any] = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            mapping = cast("dict[str, Any]", node)
            if key in mapping:
                return True
            stack.extend(mapping.values())
        elif isinstance(node, list):
            stack.extend(cast("list[Any]", node))
    return False


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    """Starlette's `Response(json.dumps(body, separators=(",", ":")), media_type="application/json")`."""
    data = json.dumps(body, separators=(",", ":")).encode("utf-8")
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-length", str(len(data)).encode("latin-1")), (b"content-type", b"application/json"),
    ]})
    await send({"type": "http.response.body", "body": data})
