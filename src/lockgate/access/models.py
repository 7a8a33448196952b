"""The access-control domain: teams, users, agents, keys, grants, kill switches.

Plain immutable records. The store persists them (`lockgate.store`), the services
change them (`lockgate.access.services`), and the data plane reads them from an
in-memory snapshot (`lockgate.access.snapshot`): no database round trip per request.

Times are UTC-aware datetimes; ids are UUIDv7 text; money is USD as float.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

__all__ = [
    "Agent",
    "AgentStatus",
    "ApiKey",
    "Grant",
    "KillScope",
    "KillSwitch",
    "Limits",
    "RiskTier",
    "ShadowAgent",
    "Team",
    "User",
]

RiskTier = Literal["low", "medium", "high", "critical"]
AgentStatus = Literal["active", "suspended", "decommissioned"]
KillScope = Literal[
    "global", "team", "user", "agent", "key", "model", "provider", "mcp_server", "tool"
]


@dataclass(frozen=True, slots=True)
class Limits:
    """Limits of one principal (key, user, team or agent); None means unlimited.
    A request must fit every limit of every principal it involves."""

    rpm: int | None = None  # requests per minute
    tpm: int | None = None  # tokens per minute (prompt estimate + max_tokens reserved)
    max_concurrent: int | None = None  # requests in flight
    budget_day_usd: float | None = None  # UTC day
    budget_month_usd: float | None = None  # UTC calendar month

    def is_empty(self) -> bool:
        return all(
            v is None
            for v in (
                self.rpm,
                self.tpm,
                self.max_concurrent,
                self.budget_day_usd,
                self.budget_month_usd,
            )
        )


@dataclass(frozen=True, slots=True)
class Team:
    id: str
    name: str
    created_at: datetime
    limits: Limits = field(default_factory=Limits)
    allowed_models: tuple[str, ...] = ()  # empty: any model


@dataclass(frozen=True, slots=True)
class User:
    id: str
    name: str  # unique, e.g. an e-mail address
    created_at: datetime
    team_id: str | None = None
    limits: Limits = field(default_factory=Limits)


@dataclass(frozen=True, slots=True)
class Agent:
    id: str
    name: str  # unique; what `x-lockgate-agent` names
    owner: str  # the responsible human (a user name or e-mail)
    purpose: str
    risk_tier: RiskTier
    status: AgentStatus
    created_at: datetime
    team_id: str | None = None
    allowed_models: tuple[str, ...] = ()  # the baseline; empty: none beyond grants
    allowed_tools: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)
    last_seen_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A virtual key. Only `key_hash` (SHA-256 of the whole key) and the visible
    `prefix` are stored; the key itself is shown once, at creation."""

    id: str
    name: str
    prefix: str  # e.g. "lg-AbCd1234", the first characters of the key
    key_hash: str  # hex SHA-256 of the full key
    created_at: datetime
    team_id: str | None = None
    user_id: str | None = None
    agent_id: str | None = None
    allowed_models: tuple[str, ...] = ()  # empty: any model the team allows
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    limits: Limits = field(default_factory=Limits)
    last_used_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Grant:
    """A just-in-time grant: a short-lived bearer token bound to one agent."""

    id: str
    agent_id: str
    prefix: str
    token_hash: str
    purpose: str
    created_at: datetime
    expires_at: datetime
    requested_by: str  # who asked: the agent's key prefix, its owner, or "admin"
    models: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()
    max_spend_usd: float | None = None
    max_requests: int | None = None
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class KillSwitch:
    id: str
    scope: KillScope
    target: str  # the id or name within the scope; "*" for global
    reason: str
    actor: str
    created_at: datetime
    lifted_at: datetime | None = None
    lifted_by: str | None = None


@dataclass(frozen=True, slots=True)
class ShadowAgent:
    """An agent name seen in traffic that the registry does not know."""

    name: str
    first_seen: datetime
    last_seen: datetime
    count: int
    last_key_prefix: str | None = None
