"""The approval queue: hold, decide, wait, consume.

A held item is a row in `approvals` (so every gateway and the CLI see it) and, in the
process that holds it, a future the caller awaits. Decisions made here resolve the
future at once; decisions made elsewhere (the CLI, another gateway) are found by a
poll that runs only while something waits (`approvals.poll_interval`). Every step is
an audit event: approval.requested, approval.approved, approval.denied,
approval.expired. A webhook is notified when something enters the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from lockgate.audit.event import actor_of
from lockgate.config.audit import ApprovalsConfig
from lockgate.core.context import Principal
from lockgate.core.ids import uuid7
from lockgate.errors import (
    ApprovalDenied,
    ApprovalPending,
    ApprovalTimedOut,
    Conflict,
    InvalidRequest,
    NotFound,
)
from lockgate.oversight.webhook import Webhook

if TYPE_CHECKING:
    from lockgate.audit.ledger import Ledger
    from lockgate.store import Store

__all__ = ["Oversight", "approval_out"]

_log = logging.getLogger("lockgate.oversight")


def approval_out(row: Mapping[str, Any]) -> dict[str, Any]:
    """An approval as the API and CLI show it (JSON fields parsed, times ISO)."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key in ("summary", "evidence", "actor") and isinstance(value, str):
            out[key] = json.loads(value)
        elif isinstance(value, datetime):
            out[key] = value.astimezone(UTC).isoformat()
        else:
            out[key] = value
    return out


class Oversight:
    def __init__(
        self,
        store: Store,
        config: ApprovalsConfig,
        *,
        audit: Ledger | None,
        webhook: Webhook | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.config = config
        self._audit = audit
        self._webhook = webhook
        self._clock = clock
        self._waiters: dict[str, asyncio.Future[str]] = {}
        self._poller: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    async def aclose(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        if self._webhook is not None:
            await self._webhook.aclose()

    async def _record(self, type: str, row: Mapping[str, Any], **fields: Any) -> None:
        if self._audit is None:
            return
        await self._audit.record(
            type,
            request_id=row.get("request_id"),
            target={"object": f"approval:{row['id']}"},
            reason=str(row.get("reason") or "")[:500] or None,
            data={"approval_id": row["id"], "kind": row["kind"]},
            **fields,
        )

    # --- holding ------------------------------------------------------------------------

    async def hold(
        self,
        *,
        kind: str,
        actor: Principal | None,
        request_id: str,
        reason: str,
        summary: Mapping[str, Any],
        evidence: Mapping[str, Any] | None = None,
        wait: bool = True,
        timeout: float | None = None,
        request_hash: str | None = None,
    ) -> str:
        """Queue an item; return its id once approved (see `lockgate.oversight.hold`)."""
        now = self._clock()
        timeout = self.config.timeout if timeout is None else timeout
        lifetime = timeout if wait else self.config.expire_after
        actor_fields = actor_of(actor)
        row: dict[str, Any] = {
            "id": uuid7(),
            "kind": kind,
            "status": "pending",
            "created_at": now,
            "expires_at": now + timedelta(seconds=lifetime),
            "request_id": request_id,
            "principal": actor.id if actor else None,
            "agent": actor.agent_name if actor else None,
            "reason": reason,
            "summary": json.dumps(dict(summary), default=str),
            "evidence": json.dumps(dict(evidence or {}), default=str),
            "actor": json.dumps(actor_fields) if actor_fields else None,
            "request_hash": request_hash,
        }
        await self.store.create_approval(row)
        await self._record("approval.requested", row, actor=actor, decision={"effect": "needs_approval", "reason": reason})
        if self._webhook is not None:
            self._webhook.notify({"type": "approval.requested", "approval": approval_out(row)})
        if not wait:
            raise ApprovalPending(
                f"Held for human approval ({reason}). Poll GET /v1/approvals/{row['id']}, then send the "
                f"request again with the header 'x-lockgate-approval: {row['id']}'.",
                approval_id=row["id"],
            )
        return await self._wait(row, timeout)

    async def _wait(self, row: dict[str, Any], timeout: float) -> str:
        approval_id = row["id"]
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiters[approval_id] = future
        self._ensure_poller()
        try:
            status = await asyncio.wait_for(asyncio.shield(future), timeout=timeout)
        except TimeoutError:
            if await self.store.move_approval(approval_id, from_status="pending", to_status="expired", now=self._clock()):
                await self._record("approval.expired", row, decision={"effect": "denied", "reason": "timeout"})
                raise ApprovalTimedOut(
                    f"No reviewer decided within {timeout:g} s; the request was denied (approval {approval_id})."
                ) from None
            status = (await self.store.get_approval(approval_id))["status"]
        finally:
            self._waiters.pop(approval_id, None)
        if status == "approved":
            await self.store.move_approval(approval_id, from_status="approved", to_status="consumed", now=self._clock())
            return approval_id
        decided = await self.store.get_approval(approval_id)
        comment = f": {decided['comment']}" if decided.get("comment") else ""
        raise ApprovalDenied(f"Denied by {decided.get('decided_by') or 'a reviewer'}{comment} (approval {approval_id}).")

    def _ensure_poller(self) -> None:
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(self._poll(), name="approvals-poll")

    async def _poll(self) -> None:
        while self._waiters:
            await asyncio.sleep(self.config.poll_interval)
            try:
                statuses = await self.store.approval_statuses(list(self._waiters))
            except Exception as exc:  # the database is briefly away: keep waiting
                _log.warning("approval poll failed: %s", type(exc).__name__)
                continue
            for approval_id, status in statuses.items():
                if status != "pending":
                    self._resolve(approval_id, status)

    def _resolve(self, approval_id: str, status: str) -> None:
        future = self._waiters.get(approval_id)
        if future is not None and not future.done():
            future.set_result(status)

    # --- deciding -------------------------------------------------------------------------

    async def decide(self, approval_id: str, *, approve: bool, reviewer: str, comment: str | None) -> dict[str, Any]:
        reviewer = reviewer.strip()
        if not reviewer:
            raise InvalidRequest("A reviewer must name themselves.", param="reviewer")
        row = await self.store.get_approval(approval_id)
        now = self._clock()
        to_status = "approved" if approve else "denied"
        if row["status"] == "pending" and row["expires_at"] <= now:
            await self.store.move_approval(approval_id, from_status="pending", to_status="expired", now=now)
            await self._record("approval.expired", row, decision={"effect": "denied", "reason": "expired"})
            raise Conflict(f"Approval {approval_id} expired before a decision.")
        moved = await self.store.move_approval(
            approval_id, from_status="pending", to_status=to_status, now=now, decided_by=reviewer, comment=comment
        )
        if not moved:
            raise Conflict(f"Approval {approval_id} is already {row['status']}.")
        await self._record(
            f"approval.{to_status}",
            row,
            actor={"kind": "reviewer", "principal": reviewer},
            decision={"effect": to_status, **({"reason": comment} if comment else {})},
        )
        self._resolve(approval_id, to_status)
        return approval_out(await self.store.get_approval(approval_id))

    async def get(self, approval_id: str) -> dict[str, Any]:
        return approval_out(await self.store.get_approval(approval_id))

    async def list(self, status: str | None = None) -> list[dict[str, Any]]:
        return [approval_out(r) for r in await self.store.list_approvals(status=status)]

    async def consume(self, approval_id: str, *, principal: Principal | None, request_hash: str | None) -> None:
        """Admit a request sent again with an approved id (async mode): once, by the
        same caller, for the same request, before it expires."""
        try:
            row = await self.store.get_approval(approval_id)
        except NotFound:
            raise ApprovalDenied(f"Unknown approval {approval_id!r}.") from None
        if principal is not None and row["principal"] not in (None, principal.id):
            raise ApprovalDenied(f"Approval {approval_id} was granted to another caller.")
        if row["request_hash"] and request_hash and row["request_hash"] != request_hash:
            raise ApprovalDenied(f"Approval {approval_id} was granted for a different request.")
        if row["status"] == "pending":
            raise ApprovalPending(f"Approval {approval_id} is still pending.", approval_id=approval_id)
        if row["status"] != "approved" or row["expires_at"] <= self._clock():
            raise ApprovalDenied(f"Approval {approval_id} is {row['status']}; it cannot admit this request.")
        if not await self.store.move_approval(approval_id, from_status="approved", to_status="consumed", now=self._clock()):
            raise ApprovalDenied(f"Approval {approval_id} was already used.")
