"""The schema, as SQLAlchemy Core tables: the current shape the migrations build.

A test checks that migrating an empty database yields exactly these tables, so a
change here needs a new migration in `migrations/versions/`.

Conventions: ids are UUIDv7 text; times are `UTCDateTime` (aware, UTC); tuples of
strings are JSON lists (`StringTuple`); limits are five nullable columns (None:
unlimited); money is USD as a double.

`state_version` holds one row. Every change to teams, users, agents, keys, grants or
kill switches adds one to it in the same transaction, so a gateway learns that its
in-memory snapshot is stale by reading one row.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    text,
)

from lockgate.store.types import StringTuple, UTCDateTime

__all__ = [
    "agents",
    "api_keys",
    "grants",
    "kill_switches",
    "limit_columns",
    "metadata",
    "permission_use",
    "shadow_agents",
    "state_version",
    "teams",
    "usage_rollups",
    "users",
]

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)

ID = 36  # a UUID as text
NAME = 200
EMPTY_LIST = text("'[]'")


def limit_columns() -> list[Column[object]]:
    """The limits of a principal (`lockgate.access.models.Limits`), one column each."""
    return [
        Column("rpm", Integer),
        Column("tpm", Integer),
        Column("max_concurrent", Integer),
        Column("budget_day_usd", Double),
        Column("budget_month_usd", Double),
    ]


state_version = Table(
    "state_version",
    metadata,
    Column("id", Integer, primary_key=True),  # always 1
    Column("version", BigInteger, nullable=False),
)

teams = Table(
    "teams",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("name", String(NAME), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("allowed_models", StringTuple, nullable=False, server_default=EMPTY_LIST),
    *limit_columns(),
)

users = Table(
    "users",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("name", String(NAME), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("team_id", String(ID), ForeignKey("teams.id"), index=True),
    *limit_columns(),
)

agents = Table(
    "agents",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("name", String(NAME), nullable=False, unique=True),
    Column("owner", String(NAME), nullable=False),
    Column("purpose", String(2000), nullable=False),
    Column("risk_tier", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("team_id", String(ID), ForeignKey("teams.id"), index=True),
    Column("allowed_models", StringTuple, nullable=False, server_default=EMPTY_LIST),
    Column("allowed_tools", StringTuple, nullable=False, server_default=EMPTY_LIST),
    Column("last_seen_at", UTCDateTime),
    *limit_columns(),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("name", String(NAME), nullable=False),
    Column("prefix", String(16), nullable=False, unique=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("team_id", String(ID), ForeignKey("teams.id"), index=True),
    Column("user_id", String(ID), ForeignKey("users.id"), index=True),
    Column("agent_id", String(ID), ForeignKey("agents.id"), index=True),
    Column("allowed_models", StringTuple, nullable=False, server_default=EMPTY_LIST),
    Column("expires_at", UTCDateTime),
    Column("revoked_at", UTCDateTime),
    Column("last_used_at", UTCDateTime),
    *limit_columns(),
)

grants = Table(
    "grants",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("agent_id", String(ID), ForeignKey("agents.id"), nullable=False, index=True),
    Column("prefix", String(16), nullable=False, unique=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("purpose", String(2000), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("requested_by", String(NAME), nullable=False),
    Column("models", StringTuple, nullable=False, server_default=EMPTY_LIST),
    Column("tools", StringTuple, nullable=False, server_default=EMPTY_LIST),
    Column("max_spend_usd", Double),
    Column("max_requests", Integer),
    Column("revoked_at", UTCDateTime),
)

kill_switches = Table(
    "kill_switches",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("scope", String(16), nullable=False),
    Column("target", String(NAME), nullable=False),
    Column("reason", String(2000), nullable=False),
    Column("actor", String(NAME), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("lifted_at", UTCDateTime),
    Column("lifted_by", String(NAME)),
)
# At most one active switch per (scope, target), even with several writers.
Index(
    "uq_kill_switches_active",
    kill_switches.c.scope,
    kill_switches.c.target,
    unique=True,
    sqlite_where=kill_switches.c.lifted_at.is_(None),
    postgresql_where=kill_switches.c.lifted_at.is_(None),
)

shadow_agents = Table(
    "shadow_agents",
    metadata,
    Column("name", String(NAME), primary_key=True),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
    Column("requests", BigInteger, nullable=False),  # requests that named it
    Column("last_key_prefix", String(16)),
)

# Usage per principal and UTC day. Grants are principals too (entity_kind "grant"):
# their lifetime spend and request count are the sum of their rows.
usage_rollups = Table(
    "usage_rollups",
    metadata,
    Column("entity_kind", String(16), primary_key=True),
    Column("entity_id", String(NAME), primary_key=True),
    Column("day", String(10), primary_key=True),  # YYYY-MM-DD, UTC
    Column("requests", BigInteger, nullable=False),
    Column("input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("cost_usd", Double, nullable=False),
)

# Which permissions ("model:NAME", "tool:NAME") each agent used per UTC day: the
# evidence for least-privilege reviews (granted but unused, used beyond baseline).
permission_use = Table(
    "permission_use",
    metadata,
    Column("agent_id", String(ID), primary_key=True),
    Column("permission", String(NAME), primary_key=True),
    Column("day", String(10), primary_key=True),  # YYYY-MM-DD, UTC
    Column("requests", BigInteger, nullable=False),
)
