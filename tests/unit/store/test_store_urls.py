"""Database URLs: drivers chosen for the user, psycopg imported only when needed."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import pytest

from lockgate.errors import ConfigError
from lockgate.store import Store
from lockgate.store._engine import normalise_url


@pytest.mark.parametrize(
    ("url", "is_async", "expected"),
    [
        ("sqlite:///lockgate.db", True, "sqlite+aiosqlite:///lockgate.db"),
        ("sqlite:///lockgate.db", False, "sqlite:///lockgate.db"),
        ("sqlite+aiosqlite:////var/lib/lg.db", False, "sqlite:////var/lib/lg.db"),
        ("postgresql://u:pw@db:5432/lg", True, "postgresql+psycopg://u:pw@db:5432/lg"),
        ("postgres://u@db/lg", False, "postgresql+psycopg://u@db/lg"),
        ("postgresql+asyncpg://u@db/lg?sslmode=require", True, "postgresql+psycopg://u@db/lg?sslmode=require"),
    ],
)
def test_urls_get_our_drivers(url: str, is_async: bool, expected: str) -> None:
    assert normalise_url(url, is_async=is_async).render_as_string(hide_password=False) == expected


@pytest.mark.parametrize("url", ["mysql://u@db/lg", "not a url", "redis://localhost"])
def test_unsupported_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError, match="atabase URL"):
        normalise_url(url, is_async=True)


def test_password_is_not_shown_in_errors() -> None:
    with pytest.raises(ConfigError) as caught:
        normalise_url("mysql://u:secret@db/lg", is_async=True)
    assert "secret" not in caught.value.message


def test_missing_psycopg_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # makes `import psycopg` fail
    with pytest.raises(ConfigError, match=r"pip install 'lockgate\[postgres\]'"):
        normalise_url("postgresql://u@db/lg", is_async=True)


def test_importing_the_store_does_not_import_psycopg() -> None:
    code = "import sys, lockgate.store; assert 'psycopg' not in sys.modules, 'psycopg imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


async def test_in_memory_sqlite_works_as_one_connection() -> None:
    async with await Store.open("sqlite:///:memory:", clock=lambda: datetime(2025, 1, 1, tzinfo=UTC)) as store:
        team = await store.create_team("research")
        assert await store.list_teams() == [team]
        assert await store.current_version() == 1
