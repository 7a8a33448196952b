"""Schema migrations: Alembic, shipped inside the package and configured in code.

`migrate(url)` (async, used at start-up) and `migrate_sync(url)` (used by
`lockgate db upgrade`) bring a database to the newest revision; on a database that is
already there they change nothing. Each run is one transaction, taken exclusively
(`BEGIN IMMEDIATE` on SQLite, an advisory lock on PostgreSQL), so several gateways
starting at once migrate once.
"""

from __future__ import annotations

from importlib import resources

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, text

from lockgate.errors import ConfigError
from lockgate.store._engine import WRITE_OPTION, make_async_engine, make_sync_engine

__all__ = [
    "VERSION_TABLE",
    "current_revision",
    "head_revision",
    "migrate",
    "migrate_sync",
    "upgrade_connection",
]

VERSION_TABLE = "lockgate_alembic_version"
_PG_LOCK_KEY = 0x6C6F636B67617465  # "lockgate"; the advisory lock that serialises migrations


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(resources.files(__name__)))
    config.set_main_option("path_separator", "os")
    return config


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head_revision() -> str:
    head = _scripts().get_current_head()
    if head is None:  # pragma: no cover - the package always ships a revision
        raise RuntimeError("no migrations found")
    return head


def current_revision(connection: Connection) -> str | None:
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def upgrade_connection(connection: Connection) -> None:
    """Migrate to the newest revision on `connection`, inside its open transaction."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
    current = current_revision(connection)
    if current == head_revision():
        return
    if current is not None and not _is_known(current):
        raise ConfigError(
            f"The database schema is at revision {current!r}, newer than this lockgate "
            "knows; upgrade lockgate (downgrading a database is not supported)."
        )
    config = _config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _is_known(revision: str) -> bool:
    try:
        _scripts().get_revision(revision)
    except CommandError:
        return False
    return True


async def migrate(url: str) -> None:
    """Bring the database at `url` to the newest schema (async drivers)."""
    engine = make_async_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.execution_options(**{WRITE_OPTION: True})
            async with conn.begin():
                await conn.run_sync(upgrade_connection)
    finally:
        await engine.dispose()


def migrate_sync(url: str) -> None:
    """Bring the database at `url` to the newest schema (sync drivers)."""
    engine = make_sync_engine(url)
    try:
        with engine.connect() as conn:
            conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                upgrade_connection(conn)
    finally:
        engine.dispose()
