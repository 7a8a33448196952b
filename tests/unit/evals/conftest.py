"""Fixtures for the evaluation tests: a store on SQLite (a file in tmp_path) and on
PostgreSQL (a fresh schema per test, dropped afterwards; skipped only when PostgreSQL
is unreachable and LOCKGATE_TEST_POSTGRES_URL is unset)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import make_url

from lockgate.store import Store

PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"


def _postgres_base() -> str:
    configured = os.environ.get("LOCKGATE_TEST_POSTGRES_URL")
    url = make_url(configured or PG_DEFAULT).set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        if configured:
            pytest.fail(f"LOCKGATE_TEST_POSTGRES_URL is set but unreachable: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {PG_DEFAULT}")
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'lockgate.db'}"
        return
    base = _postgres_base()
    schema = f"lgevals_{uuid.uuid4().hex}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        yield make_url(base).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    s = await Store.open(db_url)
    yield s
    await s.aclose()
