"""`lockgate policy test` and `POST /admin/policy/test`: decide a described request
against the current records and print the decision with the deciding policies."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lockgate.access.authorize import records_of
from lockgate.access.policy import PolicyEngine
from lockgate.access.policy_explain import describe_test_request
from lockgate.access.watcher import state_from_snapshot

if TYPE_CHECKING:
    from lockgate.store.store import Store

__all__ = ["run_policy_test"]


async def run_policy_test(
    engine: PolicyEngine,
    store: Store,
    *,
    principal: str,
    action: str,
    resource: str,
    agent: str | None = None,
    context: dict[str, Any] | list[str] | None = None,
) -> dict[str, Any]:
    state = state_from_snapshot(await store.load_snapshot())
    pairs = [f"{k}={v}" for k, v in context.items()] if isinstance(context, dict) else list(context or [])
    result = describe_test_request(
        engine, records_of(state), principal=principal, action=action, resource=resource,
        agent=agent, context=pairs,
    )
    d = result.decision
    return {
        "decision": d.decision,
        "allowed": d.allowed,
        "policies": list(d.policies),
        "reason": d.reason,
        "errors": list(d.errors),
        "explanation": result.explanation,
    }
