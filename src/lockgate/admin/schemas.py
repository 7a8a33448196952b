"""Request and response bodies of the admin API (strict: unknown fields are errors)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lockgate.access.models import Agent, ApiKey, Grant, KillSwitch, Limits, ShadowAgent, Team, User

__all__ = [
    "AgentIn",
    "GrantIn",
    "KeyIn",
    "KillIn",
    "LimitsIn",
    "PolicyTestIn",
    "StatusIn",
    "TeamIn",
    "UserIn",
    "out",
]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LimitsIn(Body):
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    max_concurrent: int | None = Field(default=None, ge=1)
    budget_day_usd: float | None = Field(default=None, ge=0)
    budget_month_usd: float | None = Field(default=None, ge=0)

    def to_limits(self) -> Limits:
        return Limits(**self.model_dump())


class TeamIn(Body):
    name: str = Field(min_length=1, max_length=200)
    limits: LimitsIn = Field(default_factory=LimitsIn)
    allowed_models: list[str] = Field(default_factory=list)


class UserIn(Body):
    name: str = Field(min_length=1, max_length=200)
    team: str | None = None
    limits: LimitsIn = Field(default_factory=LimitsIn)


class AgentIn(Body):
    name: str = Field(min_length=1, max_length=200)
    owner: str = Field(min_length=1, max_length=200)
    purpose: str = Field(min_length=1, max_length=2000)
    risk_tier: Literal["low", "medium", "high", "critical"]
    team: str | None = None
    allowed_models: list[str] = Field(default_factory=list)
    allowed_tools: list[str] = Field(default_factory=list)
    limits: LimitsIn = Field(default_factory=LimitsIn)


class StatusIn(Body):
    status: Literal["active", "suspended", "decommissioned"]


class KeyIn(Body):
    name: str = Field(min_length=1, max_length=200)
    team: str | None = None
    user: str | None = None
    agent: str | None = None
    allowed_models: list[str] = Field(default_factory=list)
    expires_in_days: float | None = Field(default=None, gt=0, le=36500)  # 100 years
    limits: LimitsIn = Field(default_factory=LimitsIn)


class GrantIn(Body):
    agent: str = Field(min_length=1)
    models: list[str] = Field(default_factory=list)
    tools: list[str] = Field(default_factory=list)
    max_spend_usd: float | None = Field(default=None, ge=0)
    max_requests: int | None = Field(default=None, ge=1)
    purpose: str = Field(min_length=1, max_length=2000)
    minutes: float | None = Field(default=None, gt=0)
    approval_id: str | None = Field(default=None, min_length=1, max_length=64)
    """A grant beyond the agent's baseline: the approved id from the earlier 202."""


class KillIn(Body):
    scope: Literal["global", "team", "user", "agent", "key", "model", "provider", "mcp_server", "tool"]
    target: str = "*"
    reason: str = Field(min_length=1, max_length=2000)


class PolicyTestIn(Body):
    principal: str = Field(description="operator, key:PREFIX_OR_ID, or grant:PREFIX_OR_ID")
    agent: str | None = None
    action: Literal["invoke_model", "call_tool", "request_grant"] = "invoke_model"
    resource: str = Field(description="model:NAME or tool:SERVER/NAME")
    context: dict[str, Any] = Field(default_factory=dict)


def _limits(limits: Limits) -> dict[str, Any]:
    return {k: getattr(limits, k) for k in ("rpm", "tpm", "max_concurrent", "budget_day_usd", "budget_month_usd")}


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def out(record: Team | User | Agent | ApiKey | Grant | KillSwitch | ShadowAgent) -> dict[str, Any]:
    """A record as JSON; secrets (key and token hashes) never leave the store."""
    data: dict[str, Any] = {}
    for name in record.__slots__:  # type: ignore[attr-defined]
        if name in ("key_hash", "token_hash"):
            continue
        value = getattr(record, name)
        if isinstance(value, Limits):
            value = _limits(value)
        elif isinstance(value, datetime):
            value = _time(value)
        elif isinstance(value, tuple):
            value = list(value)  # type: ignore[arg-type]
        data[name] = value
    return data
