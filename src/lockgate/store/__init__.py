"""Storage: SQLAlchemy Core tables, Alembic migrations, and the async `Store`.

SQLite (the embedded default: WAL, one writer) and PostgreSQL (psycopg 3, the
`lockgate[postgres]` extra) pass the same contract tests.
"""

from lockgate.store._agents import ShadowSighting
from lockgate.store._secrets import secret_hash
from lockgate.store._usage import EntityKind, UsageRow, UsageSummary
from lockgate.store.migrations import migrate, migrate_sync
from lockgate.store.store import Snapshot, Store

__all__ = [
    "EntityKind",
    "ShadowSighting",
    "Snapshot",
    "Store",
    "UsageRow",
    "UsageSummary",
    "migrate",
    "migrate_sync",
    "secret_hash",
]
