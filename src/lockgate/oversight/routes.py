"""Data-plane routes for callers (gateway keys, not the admin key):

- `GET /v1/approvals/{id}`: the state of an approval the caller is waiting on.
- `POST /v1/audit/reasoning`: attach an agent's reasoning or plan to one of its
  requests after the fact: `{"request_id": "...", "reasoning": "..."}` becomes an
  `agent.reasoning` event in the ledger (its SHA-256 covered by the proofs).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from lockgate.core.context import RequestContext
from lockgate.core.ids import uuid7
from lockgate.errors import InvalidRequest, LockgateError, NotFound, PayloadTooLarge
from lockgate.gateway.edge import credential_of, error_response

__all__ = ["oversight_routes"]

_MAX_REASONING = 256 * 1024


def oversight_routes(gateway: Callable[[], Any]) -> list[Route]:
    async def caller(request: Request) -> RequestContext:
        rid = uuid7()
        ctx = RequestContext(request_id=rid, dialect="openai", endpoint="control", credential=credential_of(request))
        await gateway().authenticate(ctx)
        return ctx

    async def get_approval(request: Request) -> Response:
        try:
            ctx = await caller(request)
            oversight = gateway().oversight
            approval = await oversight.get(request.path_params["approval_id"])
            p = ctx.principal
            if p is not None and not p.is_operator and approval.get("principal") != p.id:
                raise NotFound(f"No approval with id {request.path_params['approval_id']!r}.")
            shown = {k: approval.get(k) for k in (
                "id", "kind", "status", "reason", "created_at", "expires_at", "decided_at", "decided_by", "comment",
                "request_id",
            )}
            return JSONResponse({"object": "lockgate.approval", **shown})
        except LockgateError as err:
            return error_response(err, "openai", uuid7())

    async def add_reasoning(request: Request) -> Response:
        try:
            ctx = await caller(request)
            request_id, reasoning = await _reasoning_body(request)
            ledger = gateway().audit
            if ledger is None:
                raise InvalidRequest("The audit ledger is disabled ([audit] enabled = false).")
            seq = await ledger.record(
                "agent.reasoning", actor=ctx.principal, request_id=request_id, reasoning=reasoning,
            )
            return JSONResponse({"object": "lockgate.audit_event", "seq": seq, "request_id": request_id}, status_code=201)
        except LockgateError as err:
            return error_response(err, "openai", uuid7())

    return [
        Route("/v1/approvals/{approval_id}", get_approval, methods=["GET"]),
        Route("/v1/audit/reasoning", add_reasoning, methods=["POST"]),
    ]


async def _reasoning_body(request: Request) -> tuple[str, str]:
    raw = await request.body()
    if len(raw) > _MAX_REASONING:
        raise PayloadTooLarge(f"Reasoning is limited to {_MAX_REASONING} bytes.")
    try:
        body = json.loads(raw)
    except ValueError:
        raise InvalidRequest("The body must be JSON: {\"request_id\": ..., \"reasoning\": ...}.") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The body must be a JSON object.")
    request_id, reasoning = body.get("request_id"), body.get("reasoning")  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
    if not isinstance(request_id, str) or not request_id:
        raise InvalidRequest("'request_id' must be a non-empty string.", param="request_id")
    if not isinstance(reasoning, str) or not reasoning:
        raise InvalidRequest("'reasoning' must be a non-empty string.", param="reasoning")
    return request_id, reasoning
