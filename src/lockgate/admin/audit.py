"""Admin API for the audit ledger and the approval queue.

    GET  /admin/audit                      search (type, request_id, agent, principal, model,
                                           decision, since, until; newest first; `before` cursor)
    GET  /admin/audit/{seq}                one event, with its payloads when kept and readable
    GET  /admin/audit/{seq}/proof          inclusion proof in the newest (or `tree_size`) checkpoint
    GET  /admin/audit/consistency          consistency proof between two checkpoints (from, to)
    GET  /admin/audit/checkpoints          every signed checkpoint
    POST /admin/audit/checkpoints          sign a checkpoint now
    GET  /admin/approvals                  the queue (status filter)
    GET  /admin/approvals/{id}             one item, with what was asked, why, and the evidence
    POST /admin/approvals/{id}/approve     {"reviewer": "...", "comment": "..."}
    POST /admin/approvals/{id}/deny        {"reviewer": "...", "comment": "..."}

Searches read the database on the control plane's connections, capped at 1,000 rows a
page (keyset pagination on seq), so no query holds the data plane up.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import Depends, FastAPI, Query
from pydantic import BaseModel, ConfigDict, Field

from lockgate.audit.reader import checkpoint_out, consistency, inclusion
from lockgate.errors import InvalidRequest, NotFound

__all__ = ["include_audit_routes"]


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reviewer: str = Field(min_length=1, max_length=200)
    comment: str | None = Field(default=None, max_length=4000)


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise InvalidRequest(f"'{name}' needs a time zone (e.g. 2026-11-26T10:00:00Z).", param=name)
    return value.astimezone(UTC)


def include_audit_routes(app: FastAPI, require_admin: Callable[..., str], gateway: Callable[[], Any]) -> None:
    def ledger() -> Any:
        found = gateway().audit
        if found is None:
            raise NotFound("The audit ledger is disabled ([audit] enabled = false).")
        return found

    @app.get("/audit")
    async def search_audit(
        type: str | None = None,
        request_id: str | None = None,
        agent: str | None = None,
        principal: str | None = None,
        model: str | None = None,
        decision: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before: int | None = Query(default=None, ge=1, description="Only events with a smaller seq (the next page)."),
        limit: int = Query(default=100, ge=1, le=1000),
        _: str = Depends(require_admin),
    ) -> dict[str, Any]:
        events = await ledger().search(
            type=type, request_id=request_id, agent=agent, principal=principal, model=model, decision=decision,
            since=_aware(since, "since"), until=_aware(until, "until"), before_seq=before, limit=limit,
        )
        nxt = events[-1]["seq"] if len(events) == limit else None
        return {"object": "list", "data": events, "next_before": nxt}

    @app.get("/audit/checkpoints")
    async def list_checkpoints(_: str = Depends(require_admin)) -> list[dict[str, Any]]:
        return [checkpoint_out(c) for c in await ledger().store.checkpoints()]

    @app.post("/audit/checkpoints", status_code=201)
    async def make_checkpoint(_: str = Depends(require_admin)) -> dict[str, Any]:
        row = await ledger().checkpoint()
        if row is None:
            latest = await ledger().store.latest_checkpoint()
            if latest is None:
                raise InvalidRequest("The ledger is empty: nothing to sign yet.")
            return checkpoint_out(latest)
        return checkpoint_out(row)

    @app.get("/audit/consistency")
    async def consistency_proof(
        from_size: int = Query(alias="from", ge=1), to_size: int = Query(alias="to", ge=1),
        _: str = Depends(require_admin),
    ) -> dict[str, Any]:
        return await consistency(ledger().store, from_size, to_size)

    @app.get("/audit/{seq}")
    async def get_event(seq: int, _: str = Depends(require_admin)) -> dict[str, Any]:
        import json

        found = await ledger().store.audit_event(seq)
        if found is None:
            raise NotFound(f"No audit event {seq}.")
        event = json.loads(found[0])
        payload = await ledger().payload(seq, event["id"])
        return {**event, "chain": found[1], **({"payload": payload} if payload is not None else {})}

    @app.get("/audit/{seq}/proof")
    async def inclusion_proof(
        seq: int, tree_size: int | None = Query(default=None, ge=1), _: str = Depends(require_admin)
    ) -> dict[str, Any]:
        return await inclusion(ledger().store, seq, tree_size)

    _approval_routes(app, require_admin, gateway)


def _approval_routes(app: FastAPI, require_admin: Callable[..., str], gateway: Callable[[], Any]) -> None:
    @app.get("/approvals")
    async def list_approvals(
        status: Literal["pending", "approved", "denied", "expired", "consumed"] | None = None,
        _: str = Depends(require_admin),
    ) -> list[dict[str, Any]]:
        return await gateway().oversight.list(status)

    @app.get("/approvals/{approval_id}")
    async def get_approval(approval_id: str, _: str = Depends(require_admin)) -> dict[str, Any]:
        return await gateway().oversight.get(approval_id)

    @app.post("/approvals/{approval_id}/approve")
    async def approve(approval_id: str, body: DecisionIn, _: str = Depends(require_admin)) -> dict[str, Any]:
        return await gateway().oversight.decide(approval_id, approve=True, reviewer=body.reviewer, comment=body.comment)

    @app.post("/approvals/{approval_id}/deny")
    async def deny(approval_id: str, body: DecisionIn, _: str = Depends(require_admin)) -> dict[str, Any]:
        return await gateway().oversight.decide(approval_id, approve=False, reviewer=body.reviewer, comment=body.comment)
