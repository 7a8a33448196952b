"""Fixtures for the prompt registry tests: a store on SQLite (a file in tmp_path) and on
PostgreSQL (a fresh schema per test, dropped afterwards), a fake quality gate and a fake
audit recorder."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.access_support import postgres_schema

from lockgate.store import Store


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'lockgate.db'}"
        return
    with postgres_schema("lgprompts") as url:
        yield url


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    s = await Store.open(db_url)
    yield s
    await s.aclose()


@dataclass(frozen=True)
class Outcome:
    passed: bool
    failures: list[str]
    run_id: str | None = None


@dataclass
class FakeGate:
    """Covers the labels in `covers`; versions in `failing` fail with their failures."""

    covers: set[str] = field(default_factory=lambda: {"production"})
    failing: dict[int, list[str]] = field(default_factory=lambda: {})
    calls: list[tuple[str, int, str]] = field(default_factory=lambda: [])

    async def check_promotion(self, *, prompt: str, version: int, label: str) -> Outcome | None:
        self.calls.append((prompt, version, label))
        if label not in self.covers:
            return None
        failures = self.failing.get(version, [])
        return Outcome(passed=not failures, failures=failures, run_id=f"run-{version}")


@dataclass
class FakeAudit:
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=lambda: [])

    async def record(self, type: str, **kw: Any) -> int:
        self.events.append((type, kw))
        return len(self.events)


@pytest.fixture
def gate() -> FakeGate:
    return FakeGate()


@pytest.fixture
def audit() -> FakeAudit:
    return FakeAudit()
