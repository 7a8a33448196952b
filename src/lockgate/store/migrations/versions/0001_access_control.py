"""Access control: teams, users, agents, keys, grants, kill switches, shadow agents,
usage rollups, permission use, and the state version row.

Revision ID: 0001_access_control
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from lockgate.store.types import StringTuple, UTCDateTime

revision = "0001_access_control"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

ID = 36
NAME = 200
EMPTY_LIST = sa.text("'[]'")


def _limits() -> list[sa.Column[object]]:
    return [
        sa.Column("rpm", sa.Integer),
        sa.Column("tpm", sa.Integer),
        sa.Column("max_concurrent", sa.Integer),
        sa.Column("budget_day_usd", sa.Double),
        sa.Column("budget_month_usd", sa.Double),
    ]


def _models(name: str) -> sa.Column[object]:
    return sa.Column(name, StringTuple, nullable=False, server_default=EMPTY_LIST)


def _team_fk() -> sa.Column[object]:
    return sa.Column("team_id", sa.String(ID), sa.ForeignKey("teams.id"), index=True)


def upgrade() -> None:
    version = op.create_table(
        "state_version",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(version, [{"id": 1, "version": 0}])
    op.create_table(
        "teams",
        sa.Column("id", sa.String(ID), primary_key=True),
        sa.Column("name", sa.String(NAME), nullable=False, unique=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        _models("allowed_models"),
        *_limits(),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.String(ID), primary_key=True),
        sa.Column("name", sa.String(NAME), nullable=False, unique=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        _team_fk(),
        *_limits(),
    )
    op.create_table(
        "agents",
        sa.Column("id", sa.String(ID), primary_key=True),
        sa.Column("name", sa.String(NAME), nullable=False, unique=True),
        sa.Column("owner", sa.String(NAME), nullable=False),
        sa.Column("purpose", sa.String(2000), nullable=False),
        sa.Column("risk_tier", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        _team_fk(),
        _models("allowed_models"),
        _models("allowed_tools"),
        sa.Column("last_seen_at", UTCDateTime),
        *_limits(),
    )
    _create_keys_and_grants()
    _create_kill_switches()
    _create_observations()


def _create_keys_and_grants() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(ID), primary_key=True),
        sa.Column("name", sa.String(NAME), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False, unique=True),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        _team_fk(),
        sa.Column("user_id", sa.String(ID), sa.ForeignKey("users.id"), index=True),
        sa.Column("agent_id", sa.String(ID), sa.ForeignKey("agents.id"), index=True),
        _models("allowed_models"),
        sa.Column("expires_at", UTCDateTime),
        sa.Column("revoked_at", UTCDateTime),
        sa.Column("last_used_at", UTCDateTime),
        *_limits(),
    )
    op.create_table(
        "grants",
        sa.Column("id", sa.String(ID), primary_key=True),
        sa.Column("agent_id", sa.String(ID), sa.ForeignKey("agents.id"), nullable=False, index=True),
        sa.Column("prefix", sa.String(16), nullable=False, unique=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("purpose", sa.String(2000), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
        sa.Column("requested_by", sa.String(NAME), nullable=False),
        _models("models"),
        _models("tools"),
        sa.Column("max_spend_usd", sa.Double),
        sa.Column("max_requests", sa.Integer),
        sa.Column("revoked_at", UTCDateTime),
    )


def _create_kill_switches() -> None:
    kills = op.create_table(
        "kill_switches",
        sa.Column("id", sa.String(ID), primary_key=True),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("target", sa.String(NAME), nullable=False),
        sa.Column("reason", sa.String(2000), nullable=False),
        sa.Column("actor", sa.String(NAME), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("lifted_at", UTCDateTime),
        sa.Column("lifted_by", sa.String(NAME)),
    )
    active = kills.c.lifted_at.is_(None)
    op.create_index(
        "uq_kill_switches_active",
        "kill_switches",
        ["scope", "target"],
        unique=True,
        sqlite_where=active,
        postgresql_where=active,
    )


def _create_observations() -> None:
    op.create_table(
        "shadow_agents",
        sa.Column("name", sa.String(NAME), primary_key=True),
        sa.Column("first_seen", UTCDateTime, nullable=False),
        sa.Column("last_seen", UTCDateTime, nullable=False),
        sa.Column("requests", sa.BigInteger, nullable=False),
        sa.Column("last_key_prefix", sa.String(16)),
    )
    op.create_table(
        "usage_rollups",
        sa.Column("entity_kind", sa.String(16), primary_key=True),
        sa.Column("entity_id", sa.String(NAME), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("requests", sa.BigInteger, nullable=False),
        sa.Column("input_tokens", sa.BigInteger, nullable=False),
        sa.Column("output_tokens", sa.BigInteger, nullable=False),
        sa.Column("cost_usd", sa.Double, nullable=False),
    )
    op.create_table(
        "permission_use",
        sa.Column("agent_id", sa.String(ID), primary_key=True),
        sa.Column("permission", sa.String(NAME), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("requests", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "permission_use",
        "usage_rollups",
        "shadow_agents",
        "kill_switches",
        "grants",
        "api_keys",
        "agents",
        "users",
        "teams",
        "state_version",
    ):
        op.drop_table(table)
