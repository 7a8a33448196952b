"""The Cedar entities of lockgate's access records.

    Operator                          name
    Team                              name, allowed_models
    User   in Team                    name
    Agent  in Team                    name, owner, risk_tier, status, baseline_models,
                                      baseline_tools, team?
    Key    in Team, User, Agent       name, prefix, allowed_models, team?
    Grant  in Agent                   prefix, agent, models, tools
    Model                             name
    Tool                              server, name, destructive, matches

Entity ids are record ids. A request needs only a few entities (its principal, their
parents, its agent, its resource), so `PolicyEntities` parses just that slice, once,
and keeps the parsed handle for the next request with the same principal, agent and
resource. Build one per snapshot of the records: its records never change afterwards,
so it also holds the engine's decisions (keyed by policy-set version, principal,
action, resource, agent, and the context attributes the policies read).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import cedarpy

from lockgate.access.models import Agent, ApiKey, Grant, Team, User
from lockgate.access.policy_request import (
    AgentResource,
    Decision,
    ModelResource,
    PolicyPrincipal,
    PolicyResource,
    ToolResource,
)

__all__ = ["Lru", "PolicyEntities", "PolicyRecords", "Uid", "entity_json", "resource_json"]

_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")

Uid = tuple[str, str]  # (Cedar entity type, id)
_TYPES = {
    "operator": "Lockgate::Operator",
    "key": "Lockgate::Key",
    "grant": "Lockgate::Grant",
    "user": "Lockgate::User",
}
_Record = Team | User | Agent | ApiKey | Grant


@dataclass(frozen=True, slots=True)
class PolicyRecords:
    """The access records policies see."""

    teams: Sequence[Team] = ()
    users: Sequence[User] = ()
    agents: Sequence[Agent] = ()
    keys: Sequence[ApiKey] = ()
    grants: Sequence[Grant] = ()


def _ref(uid: Uid) -> dict[str, Any]:
    return {"__entity": {"type": uid[0], "id": uid[1]}}


def _entity(uid: Uid, attrs: dict[str, Any], parents: Iterable[Uid] = ()) -> dict[str, Any]:
    return {
        "uid": {"type": uid[0], "id": uid[1]},
        "attrs": attrs,
        "parents": [{"type": t, "id": i} for t, i in parents],
    }


def principal_uid(principal: PolicyPrincipal) -> Uid:
    return (_TYPES[principal.kind], principal.id)


def agent_uid(agent_id: str) -> Uid:
    return ("Lockgate::Agent", agent_id)


def resource_uid(resource: PolicyResource) -> Uid:
    match resource:
        case ModelResource(name=name):
            return ("Lockgate::Model", name)
        case ToolResource():
            return ("Lockgate::Tool", resource.scope)
        case AgentResource(id=agent_id):
            return agent_uid(agent_id)


def resource_json(resource: ModelResource | ToolResource) -> dict[str, Any]:
    """The entity of a model or tool: these come with the request, not the records."""
    uid = resource_uid(resource)
    if isinstance(resource, ModelResource):
        return _entity(uid, {"name": resource.name})
    matches = [resource.scope, f"{resource.server}/*"]
    attrs = {
        "server": resource.server,
        "name": resource.name,
        "destructive": resource.destructive,
        "matches": matches,
    }
    return _entity(uid, attrs)


def entity_json(record: _Record, *, team_id: str | None = None) -> dict[str, Any]:
    """The Cedar entity (JSON form) of one record. For a key or an agent, `team_id` is
    its `team` attribute: a team that exists (for a key, its own team, else its user's
    or its agent's), as `PolicyEntities` works it out."""
    match record:
        case Team():
            attrs: dict[str, Any] = {
                "name": record.name,
                "allowed_models": list(record.allowed_models),
            }
            return _entity(("Lockgate::Team", record.id), attrs)
        case User():
            parents = [("Lockgate::Team", record.team_id)] if record.team_id else []
            return _entity(("Lockgate::User", record.id), {"name": record.name}, parents)
        case Agent():
            return _agent_json(record, team_id)
        case ApiKey():
            return _key_json(record, team_id)
        case Grant():
            attrs = {
                "prefix": record.prefix,
                "agent": _ref(agent_uid(record.agent_id)),
                "models": list(record.models),
                "tools": list(record.tools),
            }
            return _entity(("Lockgate::Grant", record.id), attrs, [agent_uid(record.agent_id)])


def _agent_json(agent: Agent, team_id: str | None) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "name": agent.name,
        "owner": agent.owner,
        "risk_tier": agent.risk_tier,
        "status": agent.status,
        "baseline_models": list(agent.allowed_models),
        "baseline_tools": list(agent.allowed_tools),
    }
    if team_id:
        attrs["team"] = _ref(("Lockgate::Team", team_id))
    parents = [("Lockgate::Team", agent.team_id)] if agent.team_id else []
    return _entity(agent_uid(agent.id), attrs, parents)


def _key_json(key: ApiKey, team_id: str | None) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "name": key.name,
        "prefix": key.prefix,
        "allowed_models": list(key.allowed_models),
    }
    parents: list[Uid] = []
    if team_id:
        attrs["team"] = _ref(("Lockgate::Team", team_id))
    if key.team_id:
        parents.append(("Lockgate::Team", key.team_id))
    if key.user_id:
        parents.append(("Lockgate::User", key.user_id))
    if key.agent_id:
        parents.append(agent_uid(key.agent_id))
    return _entity(("Lockgate::Key", key.id), attrs, parents)


class Lru(Generic[_K, _V]):
    """A least-recently-used map of at most `size` entries (0: keeps nothing)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._data: OrderedDict[_K, _V] = OrderedDict()

    def get(self, key: _K) -> _V | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: _K, value: _V) -> None:
        self._data[key] = value
        if len(self._data) > self._size:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


class PolicyEntities:
    """The entities of one snapshot of the records, parsed per request slice. Keeps
    the last `cache_size` slices and, for the engine, the last `cache_size` decisions.
    Meant for one event loop: its caches are not locked."""

    def __init__(
        self, records: PolicyRecords, schema: cedarpy.Schema | None, *, cache_size: int = 1024
    ) -> None:
        self.teams = {t.id: t for t in records.teams}
        self.users = {u.id: u for u in records.users}
        self.agents = {a.id: a for a in records.agents}
        self.keys = {k.id: k for k in records.keys}
        self.grants = {g.id: g for g in records.grants}
        self._schema = schema
        self._fragments: dict[Uid, tuple[str, tuple[Uid, ...]] | None] = {}
        self._handles: Lru[tuple[object, ...], cedarpy.Entities] = Lru(cache_size)
        self.decisions: Lru[tuple[object, ...], Decision] = Lru(cache_size)

    def knows(self, principal: PolicyPrincipal) -> bool:
        match principal.kind:
            case "operator":
                return True
            case "key":
                return principal.id in self.keys
            case "grant":
                return principal.id in self.grants
            case "user":
                return principal.id in self.users

    def bound_agent(self, principal: PolicyPrincipal) -> str | None:
        """The agent a key or grant is bound to."""
        if principal.kind == "key" and (key := self.keys.get(principal.id)) is not None:
            return key.agent_id
        if principal.kind == "grant" and (grant := self.grants.get(principal.id)) is not None:
            return grant.agent_id
        return None

    def handle(
        self,
        principals: Sequence[PolicyPrincipal],
        agents: Sequence[str],
        resources: Sequence[PolicyResource],
    ) -> cedarpy.Entities:
        """The parsed entities these principals, agents and resources need."""
        key = (tuple(principals), tuple(agents), tuple(resources))
        handle = self._handles.get(key)
        if handle is None:
            text = self._slice(principals, agents, resources)
            handle = cedarpy.Entities.from_json_str(text, self._schema)
            self._handles.put(key, handle)
        return handle

    def _slice(
        self,
        principals: Sequence[PolicyPrincipal],
        agents: Sequence[str],
        resources: Sequence[PolicyResource],
    ) -> str:
        parts: list[str] = []
        seen: set[Uid] = set()
        stack: list[Uid] = [agent_uid(a) for a in agents]
        for p in dict.fromkeys(principals):
            if p.kind == "operator":
                parts.append(json.dumps(_entity(principal_uid(p), {"name": p.id})))
            else:
                stack.append(principal_uid(p))
        for r in dict.fromkeys(resources):
            if isinstance(r, AgentResource):
                stack.append(agent_uid(r.id))
            else:
                parts.append(json.dumps(resource_json(r)))
        while stack:
            uid = stack.pop()
            if uid in seen:
                continue
            seen.add(uid)
            if (fragment := self._fragment(uid)) is not None:
                parts.append(fragment[0])
                stack.extend(fragment[1])
        return "[" + ",".join(parts) + "]"

    def _fragment(self, uid: Uid) -> tuple[str, tuple[Uid, ...]] | None:
        """The entity's JSON text and the entities it refers to, worked out once."""
        if uid in self._fragments:
            return self._fragments[uid]
        record = self._record(uid)
        fragment = None
        if record is not None:
            team_id = self._team_of(record)
            data = entity_json(record, team_id=team_id)
            refs: list[Uid] = [(p["type"], p["id"]) for p in data["parents"]]  # a grant's agent too
            if team_id:
                refs.append(("Lockgate::Team", team_id))
            fragment = (json.dumps(data), tuple(refs))
        self._fragments[uid] = fragment
        return fragment

    def _record(self, uid: Uid) -> _Record | None:
        kind, record_id = uid
        table: dict[str, Any] = {
            "Lockgate::Team": self.teams,
            "Lockgate::User": self.users,
            "Lockgate::Agent": self.agents,
            "Lockgate::Key": self.keys,
            "Lockgate::Grant": self.grants,
        }.get(kind, {})
        return table.get(record_id)

    def _team_of(self, record: _Record) -> str | None:
        """An agent's team; a key's own team, else its user's, else its agent's; only
        a team the records hold."""
        candidates: list[str | None] = []
        if isinstance(record, Agent):
            candidates.append(record.team_id)
        elif isinstance(record, ApiKey):
            candidates.append(record.team_id)
            if record.user_id and (user := self.users.get(record.user_id)):
                candidates.append(user.team_id)
            if record.agent_id and (agent := self.agents.get(record.agent_id)):
                candidates.append(agent.team_id)
        return next((t for t in candidates if t and t in self.teams), None)
