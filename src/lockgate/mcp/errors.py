"""How MCP gateway refusals and failures reach an agent: JSON-RPC errors.

Every `LockgateError` becomes one JSON-RPC error whose `data` carries lockgate's stable
`code`, the HTTP-like `status` and the request id, so a client can tell a policy denial
from a held call or a slow upstream without parsing the message:

    -32602  invalid params      unknown tool, arguments that fail the tool's schema
    -32003  forbidden           policy, allow-list, rule, kill switch, guardrail block,
                                approval denied or timed out, a tool not (re)approved
    -32029  rate limited        `data.retry_after` in seconds
    -32001  request timeout     the upstream did not answer within the call timeout
    -32002  upstream failed     the upstream is down, crashed, or refused lockgate
    -32030  unauthorized        no or bad credential (with HTTP 401)
    -32603  internal error      anything else

A tool that ran and failed is not an error here: its `isError: true` result is passed on.
"""

from __future__ import annotations

from typing import Any

from mcp.shared.exceptions import MCPError
from mcp.types import INTERNAL_ERROR, INVALID_PARAMS, REQUEST_TIMEOUT

from lockgate.errors import (
    InvalidRequest,
    LockgateError,
    NotFound,
    PermissionDenied,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
)

__all__ = [
    "FORBIDDEN",
    "RATE_LIMITED",
    "UNAUTHORIZED",
    "UPSTREAM_FAILED",
    "ToolBlocked",
    "UnknownTool",
    "to_mcp_error",
]

FORBIDDEN = -32003
RATE_LIMITED = -32029
UPSTREAM_FAILED = -32002
UNAUTHORIZED = -32030


class UnknownTool(NotFound):
    code = "unknown_tool"


class ToolBlocked(PermissionDenied):
    """The tool (or its server) is not approved in its current form."""

    code = "tool_not_approved"

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


def _jsonrpc_code(exc: LockgateError) -> int:
    if isinstance(exc, InvalidRequest | NotFound):
        return INVALID_PARAMS
    if isinstance(exc, RateLimited) or exc.status == 429:
        return RATE_LIMITED
    if isinstance(exc, PermissionDenied):
        return FORBIDDEN
    if isinstance(exc, UpstreamTimeout):
        return REQUEST_TIMEOUT
    if isinstance(exc, UpstreamError):
        return UPSTREAM_FAILED
    if 400 <= exc.status < 500:
        return INVALID_PARAMS if exc.status == 400 else FORBIDDEN
    return INTERNAL_ERROR


def to_mcp_error(exc: LockgateError, request_id: str) -> MCPError:
    data: dict[str, Any] = {"code": exc.code, "status": exc.status, "request_id": request_id}
    if exc.param:
        data["param"] = exc.param
    if exc.retry_after is not None:
        data["retry_after"] = exc.retry_after
    approval = getattr(exc, "approval_id", None)
    if approval:
        data["approval_id"] = approval
    return MCPError(_jsonrpc_code(exc), exc.message, data)
