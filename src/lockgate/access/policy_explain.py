"""`lockgate policy test`: one authorization question, asked by hand, answered in words.

    lockgate policy test --principal key:lg-abc --agent support-bot \\
        --action invoke_model --resource model:fast --context stream=true

Principals: `operator[:NAME]`, `key:PREFIX|ID|NAME`, `grant:PREFIX|ID`, `user:NAME|ID`.
Resources: `model:NAME`, `tool:SERVER/NAME`, `agent:NAME|ID`. Context keys:
`delegation` and (for request_grant) `models`, `tools` take comma-separated lists;
`estimated_cost_usd` a number; `stream` true/false; `minutes` an integer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, get_args

from lockgate.access.policy import PolicyEngine
from lockgate.access.policy_entities import PolicyEntities, PolicyRecords
from lockgate.access.policy_request import (
    AgentResource,
    Decision,
    ModelResource,
    PolicyAction,
    PolicyContext,
    PolicyPrincipal,
    PolicyRequest,
    PolicyResource,
    ToolResource,
)
from lockgate.errors import InvalidRequest

__all__ = ["PolicyTestResult", "describe_test_request"]

_R = TypeVar("_R")
_LISTS = {"delegation": "delegation", "models": "grant_models", "tools": "grant_tools"}
_CONTEXT_KEYS = ("delegation", "estimated_cost_usd", "stream", "models", "tools", "minutes")


@dataclass(frozen=True, slots=True)
class PolicyTestResult:
    request: PolicyRequest
    decision: Decision
    explanation: str  # printable, several lines


def describe_test_request(
    engine: PolicyEngine,
    records: PolicyRecords,
    *,
    principal: str,
    action: str,
    resource: str,
    agent: str | None = None,
    context: Sequence[str] = (),
    destructive: bool = False,
) -> PolicyTestResult:
    """Decide a request given as `lockgate policy test` arguments; raises
    `InvalidRequest` naming the argument that names nothing."""
    entities = engine.entities(records, cache_size=0)
    actions: dict[str, PolicyAction] = {a: a for a in get_args(PolicyAction)}
    verb = actions.get(action)
    if verb is None:
        raise InvalidRequest(f"--action: {action!r} is not one of {', '.join(actions)}")
    who = _principal(principal, entities)
    what = _resource(resource, entities, destructive)
    ctx = _context(context)
    agent_id = _agent(agent, who, what, entities)
    request = PolicyRequest(who, verb, what, dataclasses.replace(ctx, agent_id=agent_id))
    decision = engine.decide(request, entities)
    return PolicyTestResult(request, decision, _explain(engine, entities, request, decision))


def _one(kind: str, name: str, found: Iterable[_R]) -> _R:
    matches = list(dict.fromkeys(found))
    if not matches:
        raise InvalidRequest(f"no {kind} {name!r}")
    if len(matches) > 1:
        raise InvalidRequest(f"{kind} {name!r} is ambiguous ({len(matches)} match); give its id")
    return matches[0]


def _principal(text: str, entities: PolicyEntities) -> PolicyPrincipal:
    kind, _, name = text.partition(":")
    if kind == "operator":
        return PolicyPrincipal("operator", name or "admin")
    if not name:
        raise InvalidRequest(f"--principal: {text!r} is not KIND:NAME (operator, key, grant, user)")
    if kind == "key":
        keys = entities.keys.values()
        key = _one("key", name, (k for k in keys if name in (k.id, k.prefix, k.name)))
        return PolicyPrincipal("key", key.id)
    if kind == "grant":
        grants = entities.grants.values()
        grant = _one("grant", name, (g for g in grants if name in (g.id, g.prefix)))
        return PolicyPrincipal("grant", grant.id)
    if kind == "user":
        user = _one("user", name, (u for u in entities.users.values() if name in (u.id, u.name)))
        return PolicyPrincipal("user", user.id)
    raise InvalidRequest(f"--principal: unknown kind {kind!r} (operator, key, grant, user)")


def _agent_id(name: str, entities: PolicyEntities) -> str:
    return _one("agent", name, (a.id for a in entities.agents.values() if name in (a.id, a.name)))


def _resource(text: str, entities: PolicyEntities, destructive: bool) -> PolicyResource:
    kind, _, name = text.partition(":")
    if kind == "model" and name:
        return ModelResource(name)
    if kind == "tool" and "/" in name:
        server, _, tool = name.partition("/")
        return ToolResource(server, tool, destructive)
    if kind == "agent" and name:
        return AgentResource(_agent_id(name, entities))
    raise InvalidRequest(f"--resource: {text!r} is not model:NAME, tool:SERVER/NAME or agent:NAME")


def _agent(
    name: str | None, who: PolicyPrincipal, what: PolicyResource, entities: PolicyEntities
) -> str | None:
    """The agent named, else the one the key or grant is bound to (or the resource of
    request_grant); a key or grant bound to another agent cannot act for this one."""
    bound = entities.bound_agent(who)
    if name is None:
        return bound or (what.id if isinstance(what, AgentResource) else None)
    agent_id = _agent_id(name, entities)
    if bound is not None and bound != agent_id:
        raise InvalidRequest(
            f"--agent: the {who.kind} is bound to agent {entities.agents[bound].name!r}"
        )
    return agent_id


def _context(pairs: Sequence[str]) -> PolicyContext:
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or key not in _CONTEXT_KEYS:
            raise InvalidRequest(
                f"--context: {pair!r} is not KEY=VALUE with KEY one of {', '.join(_CONTEXT_KEYS)}"
            )
        try:
            if key in _LISTS:
                values[_LISTS[key]] = tuple(v.strip() for v in value.split(",") if v.strip())
            elif key == "estimated_cost_usd":
                values[key] = float(value)
            elif key == "minutes":
                values["grant_minutes"] = int(value)
            elif value.lower() in ("true", "false"):
                values[key] = value.lower() == "true"
            else:
                raise ValueError(value)
        except ValueError:
            raise InvalidRequest(f"--context: {pair!r}: bad value for {key}") from None
    return PolicyContext(**values)


def _describe_principal(who: PolicyPrincipal, entities: PolicyEntities) -> str:
    match who.kind:
        case "operator":
            return f"operator {who.id!r}"
        case "key":
            key = entities.keys[who.id]
            return f"key {key.prefix} {key.name!r} ({who.id})"
        case "grant":
            grant = entities.grants[who.id]
            return f"grant {grant.prefix} ({who.id}) models={list(grant.models)} tools={list(grant.tools)}"
        case "user":
            return f"user {entities.users[who.id].name!r} ({who.id})"


def _describe_resource(what: PolicyResource, entities: PolicyEntities) -> str:
    match what:
        case ModelResource(name=name):
            return f"model {name}"
        case ToolResource():
            return f"tool {what.scope}{' (destructive)' if what.destructive else ''}"
        case AgentResource(id=agent_id):
            return f"agent {entities.agents[agent_id].name!r} ({agent_id})"


def _explain(
    engine: PolicyEngine, entities: PolicyEntities, request: PolicyRequest, decision: Decision
) -> str:
    c = request.context
    agent = entities.agents.get(c.agent_id) if c.agent_id else None
    context = f"delegation={list(c.delegation)} estimated_cost_usd={c.estimated_cost_usd:g} stream={str(c.stream).lower()}"
    if request.action == "request_grant":
        context += (
            f" models={list(c.grant_models)} tools={list(c.grant_tools)} minutes={c.grant_minutes}"
        )
    lines = [
        f"principal  {_describe_principal(request.principal, entities)}",
        "agent      "
        + (
            f"{agent.name!r} (risk {agent.risk_tier}, {agent.status}; baseline models={list(agent.allowed_models)} tools={list(agent.allowed_tools)})"
            if agent
            else "none"
        ),
        f"action     {request.action}",
        f"resource   {_describe_resource(request.resource, entities)}",
        f"context    {context}",
        f"decision   {decision.decision.upper()}: {decision.reason}",
    ]
    for policy_id in decision.policies:
        source = engine.sources.get(policy_id)
        lines.append(f"  {policy_id}" + (f"  ({source.effect}, {source.origin})" if source else ""))
    lines.extend(f"error      {error}" for error in decision.errors)
    return "\n".join(lines)
