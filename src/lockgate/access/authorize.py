"""The authorize stage: a Cedar decision per request (cached per principal, model and
policy version), recorded on the request with the policies that decided it."""

from __future__ import annotations

from lockgate.access.policy import PolicyEngine
from lockgate.access.policy_entities import PolicyEntities, PolicyRecords
from lockgate.access.policy_request import (
    ModelResource,
    PolicyContext,
    PolicyPrincipal,
    PolicyRequest,
)
from lockgate.access.state import AccessState
from lockgate.core.context import RequestContext
from lockgate.errors import PermissionDenied

__all__ = ["AuthorizeStage", "PolicyDenied", "records_of"]


class PolicyDenied(PermissionDenied):
    code = "policy_denied"


def records_of(state: AccessState) -> PolicyRecords:
    return PolicyRecords(
        teams=list(state.teams.values()), users=list(state.users.values()),
        agents=list(state.agents_by_id.values()), keys=list(state.keys_by_hash.values()),
        grants=list(state.grants_by_hash.values()),
    )


class AuthorizeStage:
    name = "authorize"

    def __init__(self, engine: PolicyEngine) -> None:
        self._engine = engine
        self._entities: PolicyEntities = engine.entities(PolicyRecords())

    def on_state_change(self, state: AccessState) -> None:
        self._entities = self._engine.entities(records_of(state))

    async def admit(self, ctx: RequestContext) -> None:
        p = ctx.principal
        if p is None:
            return
        kind = "operator" if p.kind in ("operator", "anonymous") else p.kind
        request = PolicyRequest(
            PolicyPrincipal(kind, p.id),  # type: ignore[arg-type]
            "invoke_model",
            ModelResource(ctx.model),
            PolicyContext(agent_id=p.agent_id, delegation=p.delegation, stream=ctx.stream),
        )
        decision = self._engine.decide(request, self._entities)
        ctx.attrs["policy"] = decision
        if not decision.allowed:
            which = ", ".join(decision.policies) if decision.policies else "no policy permits it"
            raise PolicyDenied(
                f"Access to model `{ctx.model}` was denied by policy ({which}). {decision.reason}".strip()
            )

    async def complete(self, ctx: RequestContext) -> None:
        return None

