"""What every gateway route does at the edge: read a bounded body, find the
credential and the request id, render errors in the caller's dialect."""

from __future__ import annotations

import json
import logging
import math

from starlette.requests import Request
from starlette.responses import Response

from lockgate.core.context import Dialect
from lockgate.core.ids import is_safe_request_id, uuid7
from lockgate.errors import ApprovalPending, InvalidRequest, LockgateError, PayloadTooLarge
from lockgate.gateway import anthropic_wire, openai_wire

__all__ = ["credential_of", "error_response", "read_body", "request_id_of"]

_log = logging.getLogger("lockgate.gateway")


def request_id_of(request: Request) -> str:
    supplied = request.headers.get("x-request-id")
    if supplied and is_safe_request_id(supplied):
        return supplied
    return uuid7()


def credential_of(request: Request) -> str | None:
    """`Authorization: Bearer KEY` (OpenAI SDK) or `x-api-key: KEY` (Anthropic SDK)."""
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    key = request.headers.get("x-api-key")
    return key.strip() if key else None


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise InvalidRequest("Invalid Content-Length header.") from None
        if size > limit:
            raise _too_large(limit)
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"Request body too large: the limit is {limit} bytes (gateway.max_body_bytes)."
    )


def error_response(err: LockgateError, dialect: Dialect, request_id: str) -> Response:
    if isinstance(err, ApprovalPending):  # not an error: 202 and the approval to poll
        body = json.dumps({
            "id": err.approval_id,
            "object": "lockgate.approval",
            "status": "pending",
            "message": err.message,
            "poll": f"/v1/approvals/{err.approval_id}",
        }).encode()
        headers = {"x-request-id": request_id, "location": f"/v1/approvals/{err.approval_id}"}
        return Response(body, status_code=202, headers=headers, media_type="application/json")
    if dialect == "anthropic":
        body = anthropic_wire.error_body(err, request_id=request_id)
    else:
        body = openai_wire.error_body(err)
    headers = {"x-request-id": request_id, **err.headers}
    if err.retry_after is not None:
        headers["retry-after"] = str(max(0, math.ceil(err.retry_after)))
    if err.status >= 500:
        _log.warning(
            "request failed", extra={"request_id": request_id, "code": err.code, "status": err.status}
        )
    return Response(body, status_code=err.status, headers=headers, media_type="application/json")
