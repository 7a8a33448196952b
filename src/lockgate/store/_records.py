"""Rows to domain records (`lockgate.access.models`) and back."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Row

from lockgate.access.models import (
    Agent,
    AgentStatus,
    ApiKey,
    Grant,
    KillScope,
    KillSwitch,
    Limits,
    RiskTier,
    ShadowAgent,
    Team,
    User,
)

__all__ = [
    "agent_from",
    "grant_from",
    "key_from",
    "kill_from",
    "limits_from",
    "limits_values",
    "shadow_from",
    "team_from",
    "user_from",
]


def limits_values(limits: Limits) -> dict[str, Any]:
    return {
        "rpm": limits.rpm,
        "tpm": limits.tpm,
        "max_concurrent": limits.max_concurrent,
        "budget_day_usd": limits.budget_day_usd,
        "budget_month_usd": limits.budget_month_usd,
    }


def limits_from(row: Row[Any]) -> Limits:
    return Limits(
        rpm=row.rpm,
        tpm=row.tpm,
        max_concurrent=row.max_concurrent,
        budget_day_usd=row.budget_day_usd,
        budget_month_usd=row.budget_month_usd,
    )


def team_from(row: Row[Any]) -> Team:
    return Team(
        id=row.id,
        name=row.name,
        created_at=row.created_at,
        limits=limits_from(row),
        allowed_models=row.allowed_models,
    )


def user_from(row: Row[Any]) -> User:
    return User(
        id=row.id,
        name=row.name,
        created_at=row.created_at,
        team_id=row.team_id,
        limits=limits_from(row),
    )


def agent_from(row: Row[Any]) -> Agent:
    return Agent(
        id=row.id,
        name=row.name,
        owner=row.owner,
        purpose=row.purpose,
        risk_tier=cast(RiskTier, row.risk_tier),
        status=cast(AgentStatus, row.status),
        created_at=row.created_at,
        team_id=row.team_id,
        allowed_models=row.allowed_models,
        allowed_tools=row.allowed_tools,
        limits=limits_from(row),
        last_seen_at=row.last_seen_at,
    )


def key_from(row: Row[Any]) -> ApiKey:
    return ApiKey(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        key_hash=row.key_hash,
        created_at=row.created_at,
        team_id=row.team_id,
        user_id=row.user_id,
        agent_id=row.agent_id,
        allowed_models=row.allowed_models,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        limits=limits_from(row),
        last_used_at=row.last_used_at,
    )


def grant_from(row: Row[Any]) -> Grant:
    return Grant(
        id=row.id,
        agent_id=row.agent_id,
        prefix=row.prefix,
        token_hash=row.token_hash,
        purpose=row.purpose,
        created_at=row.created_at,
        expires_at=row.expires_at,
        requested_by=row.requested_by,
        models=row.models,
        tools=row.tools,
        max_spend_usd=row.max_spend_usd,
        max_requests=row.max_requests,
        revoked_at=row.revoked_at,
    )


def kill_from(row: Row[Any]) -> KillSwitch:
    return KillSwitch(
        id=row.id,
        scope=cast(KillScope, row.scope),
        target=row.target,
        reason=row.reason,
        actor=row.actor,
        created_at=row.created_at,
        lifted_at=row.lifted_at,
        lifted_by=row.lifted_by,
    )


def shadow_from(row: Row[Any]) -> ShadowAgent:
    return ShadowAgent(
        name=row.name,
        first_seen=row.first_seen,
        last_seen=row.last_seen,
        count=row.requests,
        last_key_prefix=row.last_key_prefix,
    )
