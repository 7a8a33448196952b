"""Fixtures for the evaluation tests: a store on SQLite (a file in tmp_path) and on
PostgreSQL (a fresh schema per test, dropped afterwards; skipped only when PostgreSQL
is unreachable and LOCKGATE_TEST_POSTGRES_URL is unset)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from tests.e2e.access_support import postgres_schema

from lockgate.store import Store


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'lockgate.db'}"
        return
    with postgres_schema("lgevals") as url:
        yield url


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    s = await Store.open(db_url)
    yield s
    await s.aclose()
