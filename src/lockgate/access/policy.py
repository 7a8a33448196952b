"""Authorization decisions from Cedar policies.

The built-in policies (`policies/defaults.cedar`) are always loaded first; the
operator's files (`access.policy_files`) add permits and forbids. Cedar semantics: a
request is allowed when at least one policy permits it and none forbids it.

    lockgate.default.operator              permit  the operator may do anything
    lockgate.default.key-model-allowlist   permit  a key: models its allow-list names (all when empty)
    lockgate.default.key-tools             permit  a key: any tool (agents are narrowed below)
    lockgate.default.grant-allow           permit  a grant: the models and tools of its scope
    lockgate.default.grant-scope           forbid  a grant: anything outside its scope
    lockgate.default.agent-baseline        forbid  an agent: models/tools outside baseline and grant
    lockgate.default.agent-not-active      forbid  a suspended or decommissioned agent
    lockgate.default.team-model-allowlist  forbid  models outside the team's list (when not empty)
    lockgate.default.grant-request-self    permit  an agent's own key asks a grant for it
    lockgate.default.grant-request-owner   permit  an agent's owner asks a grant for it

The default forbids never bind the operator; the operator's own forbids may. The
schema is `policies/lockgate.cedarschema` (namespace `Lockgate`).

    engine = PolicyEngine.load([Path("policies.cedar")])
    problems = engine.validate()                 # for `lockgate config check`
    entities = engine.entities(records)          # once per snapshot of the records
    decision = engine.decide(request, entities)  # per request

Speed: a repeated question is answered from `entities.decisions` (about 2 µs); a new
one costs one Cedar evaluation (about 55-75 µs), plus parsing its entity slice the
first time a principal, agent and resource meet (about 100 µs more).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cedarpy

from lockgate.access.policy_entities import (
    PolicyEntities,
    PolicyRecords,
    principal_uid,
    resource_uid,
)
from lockgate.access.policy_request import (
    AgentResource,
    Decision,
    ModelResource,
    PolicyPrincipal,
    PolicyRequest,
    PolicyResource,
    ToolResource,
)
from lockgate.access.policy_source import (
    PolicySource,
    PolicyText,
    build_policy_set,
    context_reads,
    read_policy_files,
    schema_text,
    validation_problems,
)
from lockgate.errors import ConfigError

__all__ = ["PolicyEngine"]

_LONG_MAX = 2**63 - 1
_FAILED = re.compile(r"while evaluating policy `([^`]*)`")
# The PolicyContext fields behind each Cedar context attribute; the agent is always
# part of a decision's cache key, so `agent` and `risk_tier` need none.
_CONTEXT_FIELDS: dict[str, tuple[str, ...]] = {
    "delegation": ("delegation",),
    "delegation_depth": ("delegation",),
    "estimated_cost_micro_usd": ("estimated_cost_usd",),
    "stream": ("stream",),
    "models": ("grant_models",),
    "tools": ("grant_tools",),
    "minutes": ("grant_minutes",),
}


def _micro_usd(usd: float) -> int:
    """USD as a Cedar Long of micro-USD, clamped to the Long's range; NaN counts as
    the most expensive."""
    if not math.isfinite(usd):
        return -_LONG_MAX if usd < 0 else _LONG_MAX
    return max(-_LONG_MAX, min(_LONG_MAX, round(usd * 1_000_000)))


def _context_fields(reads: frozenset[str]) -> tuple[str, ...]:
    return tuple(sorted({f for attr in reads for f in _CONTEXT_FIELDS.get(attr, ())}))


def _fits(request: PolicyRequest) -> bool:
    """Each action has one kind of resource."""
    match request.action:
        case "invoke_model":
            return isinstance(request.resource, ModelResource)
        case "call_tool":
            return isinstance(request.resource, ToolResource)
        case "request_grant":
            return isinstance(request.resource, AgentResource)


class PolicyEngine:
    """The policy set, parsed once. Immutable: a new config makes a new engine."""

    def __init__(self, texts: Sequence[PolicyText], schema: cedarpy.Schema) -> None:
        self._texts = tuple(texts)
        self._schema = schema
        self._policy_set, self._sources, problems = build_policy_set(texts)
        self._problems = tuple(problems)
        self._forbids = frozenset(i for i, s in self._sources.items() if s.effect == "forbid")
        digest = hashlib.sha256()
        for text in texts:
            digest.update(f"{text.label}\0{text.text}\0".encode())
        self._version = digest.hexdigest()[:16]
        reads = context_reads(node for text in texts for _, _, node in text.policies)
        self._context_fields = None if reads is None else _context_fields(reads)

    @classmethod
    def load(cls, policy_files: Sequence[Path], *, include_defaults: bool = True) -> PolicyEngine:
        """Read the policies. Never raises for their content: `validate()` lists the
        problems, and `decide()` refuses to run on policies that did not all load."""
        return cls(
            read_policy_files(policy_files, include_defaults=include_defaults),
            cedarpy.Schema.from_str(schema_text()),
        )

    @property
    def version(self) -> str:
        """A digest of the policy texts: equal versions decide alike."""
        return self._version

    @property
    def sources(self) -> Mapping[str, PolicySource]:
        """Every loaded policy by id: its effect and `file:line`."""
        return self._sources

    def validate(self) -> list[str]:
        """Problems, each naming a file and a line: unreadable files, parse errors,
        templates, duplicate ids, and Cedar's validation against the schema."""
        return [*self._problems, *validation_problems(self._texts, self._schema)]

    def entities(self, records: PolicyRecords, *, cache_size: int = 1024) -> PolicyEntities:
        """The entities of a snapshot of the access records, checked against the schema."""
        return PolicyEntities(records, self._schema, cache_size=cache_size)

    def decide(self, request: PolicyRequest, entities: PolicyEntities) -> Decision:
        return self.decide_batch([request], entities)[0]

    def decide_batch(
        self, requests: Sequence[PolicyRequest], entities: PolicyEntities
    ) -> list[Decision]:
        """One decision per request, in order, evaluated in one call (e.g. an MCP
        `tools/list` filtered tool by tool)."""
        if self._problems:
            raise ConfigError(
                "the policies did not all load; run `lockgate config check`", list(self._problems)
            )
        decisions: list[Decision | None] = []
        pending: list[tuple[int, tuple[object, ...]]] = []  # (index, cache key) for Cedar
        cedar: list[dict[str, Any]] = []
        principals: dict[PolicyPrincipal, None] = {}
        agents: dict[str, None] = {}
        resources: dict[PolicyResource, None] = {}
        for index, request in enumerate(requests):
            agent_id = self._agent_of(request, entities)
            decision = self._refusal(request, agent_id, entities)
            if decision is None:
                key = self._cache_key(request, agent_id)
                if (decision := entities.decisions.get(key)) is None:
                    pending.append((index, key))
                    cedar.append(self._cedar_request(request, agent_id, entities))
                    principals[request.principal] = None
                    resources[request.resource] = None
                    if agent_id is not None:
                        agents[agent_id] = None
            decisions.append(decision)
        if cedar:
            handle = entities.handle(list(principals), list(agents), list(resources))
            results = cedarpy.is_authorized_batch(cedar, self._policy_set, handle)
            for (index, key), result in zip(pending, results, strict=True):
                decisions[index] = decision = self._decision(result)
                entities.decisions.put(key, decision)
        return [d for d in decisions if d is not None]

    def _cache_key(self, request: PolicyRequest, agent_id: str | None) -> tuple[object, ...]:
        """What the decision depends on: the policy set, the principal, action, resource
        and agent (which also fix the entities), and the context the policies read."""
        c = request.context
        fields = self._context_fields
        context = c if fields is None else tuple(getattr(c, f) for f in fields)
        return (
            self._version,
            request.principal,
            request.action,
            request.resource,
            agent_id,
            context,
        )

    @staticmethod
    def _agent_of(request: PolicyRequest, entities: PolicyEntities) -> str | None:
        if request.context.agent_id is not None:
            return request.context.agent_id
        if isinstance(request.resource, AgentResource):
            return request.resource.id
        return entities.bound_agent(request.principal)

    @staticmethod
    def _refusal(
        request: PolicyRequest, agent_id: str | None, entities: PolicyEntities
    ) -> Decision | None:
        """A request Cedar cannot judge: unknown principal or agent, wrong resource kind."""
        problem = None
        if not entities.knows(request.principal):
            problem = f"unknown {request.principal.kind} {request.principal.id!r}"
        elif agent_id is not None and agent_id not in entities.agents:
            problem = f"unknown agent {agent_id!r}"
        elif not _fits(request):
            problem = f"{request.action} does not apply to {type(request.resource).__name__}"
        return None if problem is None else Decision.deny((), (problem,), problem)

    @staticmethod
    def _cedar_request(
        request: PolicyRequest, agent_id: str | None, entities: PolicyEntities
    ) -> dict[str, Any]:
        c = request.context
        context: dict[str, Any] = {
            "delegation": list(c.delegation),
            "delegation_depth": len(c.delegation),
            "estimated_cost_micro_usd": _micro_usd(c.estimated_cost_usd),
            "stream": c.stream,
        }
        if agent_id is not None:
            context["agent"] = {"__entity": {"type": "Lockgate::Agent", "id": agent_id}}
            context["risk_tier"] = entities.agents[agent_id].risk_tier
        if request.action == "request_grant":
            context.update(
                models=list(c.grant_models), tools=list(c.grant_tools), minutes=c.grant_minutes
            )
        principal = principal_uid(request.principal)
        resource = resource_uid(request.resource)
        return {
            "principal": {"type": principal[0], "id": principal[1]},
            "action": {"type": "Lockgate::Action", "id": request.action},
            "resource": {"type": resource[0], "id": resource[1]},
            "context": json.dumps(context),
        }

    def _decision(self, result: cedarpy.AuthzResult) -> Decision:
        reasons = tuple(sorted(result.diagnostics.reasons))
        errors = tuple(result.diagnostics.errors)
        failed = tuple(sorted({m for e in errors for m in _FAILED.findall(e)} & self._forbids))
        if not failed:
            return (
                Decision.allow(reasons, errors)
                if result.allowed
                else Decision.deny(reasons, errors)
            )
        if result.allowed or not reasons:  # fail closed: a forbid that could not be evaluated
            return Decision.deny(
                failed, errors, f"forbid policy failed to evaluate: {', '.join(failed)}"
            )
        return Decision.deny(reasons, errors)
