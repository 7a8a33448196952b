"""Database URLs and engines for the two backends.

Users write `sqlite:///path/to/lockgate.db` or `postgresql://user@host/db`; we pick
the driver: aiosqlite (async) or the standard `sqlite3` (sync) for SQLite, psycopg 3
for PostgreSQL. psycopg is an extra, imported only when a PostgreSQL URL is used.

SQLite connections get WAL, foreign keys and real transactions: the `sqlite3` module
would otherwise start a transaction only at the first write, so a read-then-write
would not be isolated. Writes begin with `BEGIN IMMEDIATE` (take the one write lock
up front, across processes); reads begin with a plain `BEGIN` (a consistent view).
"""

from __future__ import annotations

import contextlib
import importlib
import sqlite3
from typing import Any, Literal

from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from lockgate.errors import ConfigError

__all__ = [
    "WRITE_OPTION",
    "Backend",
    "backend_of",
    "is_memory",
    "make_async_engine",
    "make_sync_engine",
    "normalise_url",
]

Backend = Literal["sqlite", "postgresql"]

# Execution option a connection carries when its transaction will write (SQLite only).
WRITE_OPTION = "lockgate_write"

_POSTGRES_SCHEMES = ("postgresql", "postgres")


def normalise_url(url: str, *, is_async: bool) -> URL:
    """The SQLAlchemy URL with our driver for `url`; ConfigError for anything else."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"Invalid database URL {_redacted(url)!r}: {exc}") from None
    backend = parsed.drivername.partition("+")[0]
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite" if is_async else "sqlite")
    if backend in _POSTGRES_SCHEMES:
        _require_psycopg()
        return parsed.set(drivername="postgresql+psycopg")
    raise ConfigError(
        f"Unsupported database URL {_redacted(url)!r}: use sqlite:///path/to/lockgate.db "
        "or postgresql://user@host/dbname"
    )


def backend_of(url: URL) -> Backend:
    return "sqlite" if url.get_backend_name() == "sqlite" else "postgresql"


def is_memory(url: URL) -> bool:
    return backend_of(url) == "sqlite" and url.database in (None, "", ":memory:")


def make_async_engine(url: str) -> AsyncEngine:
    sa_url = normalise_url(url, is_async=True)
    kwargs: dict[str, Any] = {}
    if is_memory(sa_url):  # one connection, or every connection sees its own empty database
        kwargs["poolclass"] = StaticPool
    engine = create_async_engine(sa_url, **kwargs)
    if backend_of(sa_url) == "sqlite":
        _install_sqlite_listeners(engine.sync_engine)
    return engine


def make_sync_engine(url: str) -> Engine:
    sa_url = normalise_url(url, is_async=False)
    kwargs: dict[str, Any] = {}
    if is_memory(sa_url):
        kwargs["poolclass"] = StaticPool
    engine = create_engine(sa_url, **kwargs)
    if backend_of(sa_url) == "sqlite":
        _install_sqlite_listeners(engine)
    return engine


def _install_sqlite_listeners(engine: Engine) -> None:
    def on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy, not the driver, decide when a transaction starts.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            # Busy means another connection holds the lock, typically while it switches
            # this new file to WAL. The mode is stored in the file, so the switch is
            # made once, and this connection follows it.
            with contextlib.suppress(sqlite3.OperationalError):
                cursor.execute("PRAGMA journal_mode=WAL")
        finally:
            cursor.close()

    def on_begin(conn: Connection) -> None:
        writes = bool(conn.get_execution_options().get(WRITE_OPTION))
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")

    event.listen(engine, "connect", on_connect)
    event.listen(engine, "begin", on_begin)


def _require_psycopg() -> None:
    try:
        importlib.import_module("psycopg")
    except ImportError:
        raise ConfigError(
            "A PostgreSQL database needs the psycopg driver: pip install 'lockgate[postgres]'"
        ) from None


def _redacted(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("@")[-1]
