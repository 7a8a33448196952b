"""The store contract: every test runs on SQLite (a file in tmp_path) and on
PostgreSQL (a fresh schema per test, dropped afterwards).

PostgreSQL comes from LOCKGATE_TEST_POSTGRES_URL (default: the local test database);
its tests are skipped only when it is unreachable and that variable is unset.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from psycopg import sql
from sqlalchemy import URL, Connection, create_engine, inspect, make_url, text

from lockgate.access.models import (
    Agent,
    ApiKey,
    Grant,
    KillSwitch,
    Limits,
    ShadowAgent,
    Team,
    User,
)
from lockgate.errors import ConfigError, Conflict, InvalidRequest, NotFound
from lockgate.store import (
    ShadowSighting,
    Snapshot,
    Store,
    UsageRow,
    UsageSummary,
    migrate,
    migrate_sync,
    secret_hash,
)
from lockgate.store._engine import normalise_url
from lockgate.store.all_tables import metadata
from lockgate.store.migrations import VERSION_TABLE, head_revision

T0 = datetime(2025, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"
LIMITS = Limits(rpm=60, tpm=10_000, max_concurrent=4, budget_day_usd=1.5, budget_month_usd=20.0)


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def _libpq_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    configured = os.environ.get("LOCKGATE_TEST_POSTGRES_URL")
    url = _libpq_url(configured or PG_DEFAULT)
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        if configured:
            pytest.fail(f"LOCKGATE_TEST_POSTGRES_URL is set but unreachable: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {PG_DEFAULT}")
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'lockgate.db'}"
        return
    base: str = request.getfixturevalue("postgres_url")
    schema = f"lgtest_{uuid.uuid4().hex}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(db_url: str, clock: FakeClock) -> AsyncIterator[Store]:
    s = await Store.open(db_url, clock=clock)
    yield s
    await s.aclose()


def _sync_engine_url(db_url: str) -> URL:
    return normalise_url(db_url, is_async=False)


# -- migrations ------------------------------------------------------------------


async def test_migrations_are_idempotent_and_keep_data(db_url: str, clock: FakeClock) -> None:
    await migrate(db_url)
    async with await Store.open(db_url, clock=clock) as s:
        team = await s.create_team("research")
        version = await s.current_version()
    await migrate(db_url)
    migrate_sync(db_url)
    async with await Store.open(db_url, clock=clock) as s:
        assert await s.get_team("research") == team
        assert await s.current_version() == version == 1
    engine = create_engine(_sync_engine_url(db_url))
    with engine.connect() as conn:
        revision = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        assert revision.get_current_revision() == head_revision() == "0005_evaluations"
        assert conn.execute(text(f"SELECT count(*) FROM {VERSION_TABLE}")).scalar() == 1
    engine.dispose()


async def test_a_newer_schema_is_refused(db_url: str) -> None:
    await migrate(db_url)
    engine = create_engine(_sync_engine_url(db_url))
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '0099_future'"))
    engine.dispose()
    with pytest.raises(ConfigError, match="'0099_future', newer than this lockgate knows"):
        await Store.open(db_url)


def _diffs(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return [d for d in compare_metadata(context, metadata) if d[0] != "remove_table" or d[1].name != VERSION_TABLE]


async def test_migrations_build_exactly_the_tables(db_url: str) -> None:
    migrate_sync(db_url)
    engine = create_engine(_sync_engine_url(db_url))
    with engine.connect() as conn:
        assert _diffs(conn) == []
        names = set(inspect(conn).get_table_names())
    engine.dispose()
    assert names == set(metadata.tables) | {VERSION_TABLE}


# -- teams and users -------------------------------------------------------------


async def test_teams_create_get_list_update(store: Store) -> None:
    team = await store.create_team(" research ", limits=LIMITS, allowed_models=["fast", "fast", "claude"])
    assert team == Team(team.id, "research", T0, LIMITS, ("fast", "claude"))
    other = await store.create_team("ops")
    assert await store.get_team(team.id) == team
    assert await store.get_team("research") == team
    assert await store.list_teams() == [other, team]
    updated = await store.update_team(team.id, name="science", limits=Limits(), allowed_models=())
    assert updated == Team(team.id, "science", T0)
    assert await store.update_team(team.id) == updated


async def test_team_names_are_unique(store: Store) -> None:
    await store.create_team("research")
    ops = await store.create_team("ops")
    with pytest.raises(Conflict, match="'research' already exists"):
        await store.create_team("research")
    with pytest.raises(Conflict, match="'research' already exists"):
        await store.update_team(ops.id, name="research")
    assert [t.name for t in await store.list_teams()] == ["ops", "research"]


async def test_unknown_ids_are_not_found(store: Store) -> None:
    cases: list[tuple[Callable[[], Awaitable[object]], str]] = [
        (lambda: store.get_team("nope"), "No team with id or name 'nope'."),
        (lambda: store.update_team("nope", name="x"), "No team with id 'nope'."),
        (lambda: store.delete_team("nope"), "No team with id 'nope'."),
        (lambda: store.get_user("nope"), "No user with id or name 'nope'."),
        (lambda: store.create_user("u", team_id="nope"), "No team with id 'nope'."),
        (lambda: store.get_agent("nope"), "No agent with id or name 'nope'."),
        (lambda: store.set_agent_status("nope", "suspended"), "No agent with id 'nope'."),
        (lambda: store.get_key("nope"), "No key with id or prefix 'nope'."),
        (lambda: store.create_key("k", user_id="nope"), "No user with id 'nope'."),
        (lambda: store.create_key("k", agent_id="nope"), "No agent with id 'nope'."),
        (lambda: store.revoke_key("nope"), "No key with id 'nope'."),
        (lambda: store.get_grant("nope"), "No grant with id or prefix 'nope'."),
        (
            lambda: store.create_grant("nope", models=["m"], purpose="p", lifetime=timedelta(minutes=1), requested_by="a"),
            "No agent with id 'nope'.",
        ),
        (lambda: store.revoke_grant("nope"), "No grant with id 'nope'."),
        (lambda: store.lift_kill("nope", actor="a"), "No kill switch with id 'nope'."),
        (lambda: store.lift_kill(("team", "t1"), actor="a"), "No active team kill switch for 't1'."),
    ]
    for call, message in cases:
        with pytest.raises(NotFound) as caught:
            await call()
        assert caught.value.message == message
    assert await store.current_version() == 0


async def test_delete_team_refuses_while_referenced(store: Store) -> None:
    team = await store.create_team("research")
    await store.create_user("ada", team_id=team.id)
    await store.register_agent("bot", owner="ada", purpose="p", risk_tier="low", team_id=team.id)
    await store.create_key("ci", team_id=team.id)
    with pytest.raises(Conflict, match=r"referenced by 1 user, 1 agent, 1 key"):
        await store.delete_team(team.id)
    spare = await store.create_team("spare")
    await store.delete_team(spare.id)
    assert await store.list_teams() == [team]


async def test_users(store: Store) -> None:
    team = await store.create_team("research")
    ada = await store.create_user("ada@example.com", team_id=team.id, limits=LIMITS)
    bob = await store.create_user("bob@example.com")
    assert ada == User(ada.id, "ada@example.com", T0, team.id, LIMITS)
    assert await store.get_user("ada@example.com") == await store.get_user(ada.id) == ada
    assert await store.list_users() == [ada, bob]
    assert await store.list_users(team_id=team.id) == [ada]
    with pytest.raises(Conflict, match=r"A user named 'bob@example\.com' already exists\."):
        await store.create_user("bob@example.com")


async def test_invalid_input_is_refused(store: Store) -> None:
    agent = await store.register_agent("bot", owner="o", purpose="p", risk_tier="low")
    bad: Any = "unknown"  # not a valid Literal value
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: store.create_team(""),
        lambda: store.create_team("   "),
        lambda: store.create_team("x" * 201),
        lambda: store.create_team("t", limits=Limits(rpm=-1)),
        lambda: store.create_team("t", limits=Limits(budget_day_usd=float("nan"))),
        lambda: store.create_team("t", allowed_models=[""]),
        lambda: store.create_user("u", limits=Limits(budget_month_usd=-0.01)),
        lambda: store.register_agent("a", owner="", purpose="p", risk_tier="low"),
        lambda: store.register_agent("a", owner="o", purpose="p", risk_tier=bad),
        lambda: store.set_agent_status(agent.id, bad),
        lambda: store.create_key("k", expires_at=T0),
        lambda: store.create_key("k", expires_at=datetime(2030, 1, 1)),
        lambda: store.create_grant(agent.id, models=["m"], purpose="p", lifetime=timedelta(0), requested_by="a"),
        lambda: store.create_grant(agent.id, purpose="p", lifetime=timedelta(minutes=1), requested_by="a"),
        lambda: store.create_grant(agent.id, models=["m"], max_requests=-1, purpose="p", lifetime=timedelta(minutes=1), requested_by="a"),
        lambda: store.set_kill("global", "team-1", reason="r", actor="a"),
        lambda: store.set_kill(bad, "x", reason="r", actor="a"),
        lambda: store.add_usage([UsageRow("key", "k", date(2025, 3, 4), requests=-1)]),
        lambda: store.add_usage([UsageRow(bad, "k", date(2025, 3, 4))]),
    ]
    for call in calls:
        with pytest.raises(InvalidRequest):
            await call()
    assert await store.current_version() == 1


# -- agents ----------------------------------------------------------------------


async def test_agents_register_get_list(store: Store) -> None:
    team = await store.create_team("research")
    agent = await store.register_agent(
        "planner",
        owner="ada@example.com",
        purpose="plans trips",
        risk_tier="high",
        team_id=team.id,
        allowed_models=["fast"],
        allowed_tools=["search"],
        limits=LIMITS,
    )
    assert agent == Agent(
        agent.id, "planner", "ada@example.com", "plans trips", "high", "active", T0,
        team.id, ("fast",), ("search",), LIMITS, None,
    )
    coder = await store.register_agent("coder", owner="bob", purpose="code", risk_tier="low")
    assert await store.get_agent("planner") == await store.get_agent(agent.id) == agent
    assert await store.list_agents() == [coder, agent]
    assert await store.list_agents(team_id=team.id) == [agent]
    with pytest.raises(Conflict, match=r"An agent named 'planner' already exists\."):
        await store.register_agent("planner", owner="x", purpose="y", risk_tier="low")


async def test_decommission_revokes_keys_and_grants_in_one_change(store: Store, clock: FakeClock) -> None:
    agent = await store.register_agent("bot", owner="o", purpose="p", risk_tier="low")
    other = await store.register_agent("other", owner="o", purpose="p", risk_tier="low")
    key, _ = await store.create_key("k", agent_id=agent.id)
    kept, _ = await store.create_key("k2", agent_id=other.id)
    grant, _ = await store.create_grant(agent.id, models=["m"], purpose="p", lifetime=timedelta(hours=1), requested_by="o")
    suspended = await store.set_agent_status(agent.id, "suspended")
    assert suspended.status == "suspended"
    assert (await store.get_key(key.id)).revoked_at is None
    with pytest.raises(Conflict, match="'bot' is suspended"):
        await store.create_grant(agent.id, models=["m"], purpose="p", lifetime=timedelta(hours=1), requested_by="o")
    clock.advance(timedelta(minutes=5))
    version = await store.current_version()
    gone = await store.set_agent_status(agent.id, "decommissioned")
    assert await store.current_version() == version + 1
    assert gone == Agent(agent.id, "bot", "o", "p", "low", "decommissioned", T0)
    assert await store.get_key(key.id) == ApiKey(
        key.id, "k", key.prefix, key.key_hash, T0, agent_id=agent.id, revoked_at=clock.now
    )
    assert (await store.get_grant(grant.id)).revoked_at == clock.now
    assert (await store.get_key(kept.id)).revoked_at is None
    with pytest.raises(Conflict, match="'bot' is decommissioned"):
        await store.set_agent_status(agent.id, "active")
    with pytest.raises(Conflict, match="'bot' is decommissioned"):
        await store.create_key("k3", agent_id=agent.id)
    assert await store.set_agent_status(agent.id, "decommissioned") == gone
    assert await store.current_version() == version + 1


async def test_touch_agents_last_seen_moves_forward_only(store: Store) -> None:
    a = await store.register_agent("a", owner="o", purpose="p", risk_tier="low")
    b = await store.register_agent("b", owner="o", purpose="p", risk_tier="low")
    version = await store.current_version()
    later = T0 + timedelta(seconds=30)
    await store.touch_agents_last_seen({a.id: later, b.id: T0, "unknown": T0})
    await store.touch_agents_last_seen({a.id: T0})
    await store.touch_agents_last_seen({})
    assert (await store.get_agent(a.id)).last_seen_at == later
    assert (await store.get_agent(b.id)).last_seen_at == T0
    assert await store.current_version() == version


# -- keys ------------------------------------------------------------------------


async def test_keys_create_get_list_revoke(store: Store, clock: FakeClock) -> None:
    team = await store.create_team("research")
    user = await store.create_user("ada", team_id=team.id)
    expires = T0 + timedelta(days=30)
    key, secret = await store.create_key(
        "ci", team_id=team.id, user_id=user.id, allowed_models=["fast"], expires_at=expires, limits=LIMITS
    )
    assert re.fullmatch(r"lg-[A-Za-z0-9_-]{40}", secret)
    assert key == ApiKey(
        key.id, "ci", secret[:11], hashlib.sha256(secret.encode()).hexdigest(), T0,
        team.id, user.id, None, ("fast",), expires, None, LIMITS, None,
    )
    assert secret_hash(secret) == key.key_hash
    loose, loose_secret = await store.create_key("loose")
    assert loose_secret != secret and loose.prefix != key.prefix
    assert await store.get_key(key.prefix) == await store.get_key(key.id) == key
    assert await store.list_keys() == [key, loose]
    assert await store.list_keys(team_id=team.id) == [key]
    clock.advance(timedelta(seconds=1))
    revoked = await store.revoke_key(key.id)
    assert revoked.revoked_at == clock.now
    version = await store.current_version()
    clock.advance(timedelta(seconds=1))
    assert await store.revoke_key(key.id) == revoked
    assert await store.current_version() == version


async def test_touch_keys_last_used(store: Store) -> None:
    key, _ = await store.create_key("k")
    version = await store.current_version()
    later = T0 + timedelta(minutes=1)
    await store.touch_keys_last_used({key.id: later, "unknown": later})
    await store.touch_keys_last_used({key.id: T0})
    assert (await store.get_key(key.id)).last_used_at == later
    assert await store.current_version() == version


async def test_times_round_trip_as_aware_utc(store: Store) -> None:
    plus_two = timezone(timedelta(hours=2))
    expires = datetime(2031, 6, 7, 10, 11, 12, 123456, tzinfo=plus_two)
    key, _ = await store.create_key("k", expires_at=expires)
    stored = (await store.get_key(key.id)).expires_at
    assert stored == expires
    assert stored is not None and stored.tzinfo == UTC and stored.hour == 8
    assert stored.microsecond == 123456
    assert (await store.get_key(key.id)).created_at == T0


# -- grants ----------------------------------------------------------------------


async def test_grants_create_get_list_revoke(store: Store, clock: FakeClock) -> None:
    agent = await store.register_agent("bot", owner="o", purpose="p", risk_tier="low")
    grant, token = await store.create_grant(
        agent.id,
        models=["fast"],
        tools=["search"],
        max_spend_usd=2.5,
        max_requests=10,
        purpose="one report",
        lifetime=timedelta(minutes=15),
        requested_by="lg-abcdefgh",
    )
    assert re.fullmatch(r"lgt-[A-Za-z0-9_-]{40}", token)
    assert grant == Grant(
        grant.id, agent.id, token[:12], secret_hash(token), "one report", T0,
        T0 + timedelta(minutes=15), "lg-abcdefgh", ("fast",), ("search",), 2.5, 10, None,
    )
    short, _ = await store.create_grant(agent.id, tools=["t"], purpose="p", lifetime=timedelta(minutes=1), requested_by="admin")
    gone, _ = await store.create_grant(agent.id, tools=["t"], purpose="p", lifetime=timedelta(hours=1), requested_by="admin")
    assert await store.get_grant(grant.id) == await store.get_grant(grant.prefix) == grant
    revoked = await store.revoke_grant(gone.id)
    assert revoked.revoked_at == T0
    assert await store.revoke_grant(gone.id) == revoked
    clock.advance(timedelta(minutes=2))
    assert await store.list_grants() == [grant, short, revoked]
    assert await store.list_grants(agent_id=agent.id, active_only=True) == [grant]
    assert await store.list_grants(agent_id="other") == []


# -- kill switches ---------------------------------------------------------------


async def test_kill_switches(store: Store, clock: FakeClock) -> None:
    everything = await store.set_kill("global", "*", reason="incident 42", actor="ada")
    assert everything == KillSwitch(everything.id, "global", "*", "incident 42", "ada", T0)
    team_kill = await store.set_kill("team", "t1", reason="runaway spend", actor="ada")
    version = await store.current_version()
    assert await store.set_kill("team", "t1", reason="again", actor="bob") == team_kill
    assert await store.current_version() == version
    assert await store.list_kills() == [everything, team_kill]
    clock.advance(timedelta(minutes=1))
    lifted = await store.lift_kill(("team", "t1"), actor="bob")
    assert lifted == KillSwitch(team_kill.id, "team", "t1", "runaway spend", "ada", T0, clock.now, "bob")
    assert await store.lift_kill(team_kill.id, actor="carol") == lifted
    lifted_global = await store.lift_kill(everything.id, actor="bob")
    assert lifted_global.lifted_by == "bob"
    again = await store.set_kill("team", "t1", reason="still bad", actor="ada")
    assert again.id != team_kill.id
    assert await store.list_kills() == [again]
    assert await store.list_kills(active_only=False) == [lifted_global, lifted, again]


# -- shadow agents ---------------------------------------------------------------


async def test_shadow_agents_accumulate(store: Store) -> None:
    t1, t2, t3 = T0 + timedelta(seconds=1), T0 + timedelta(seconds=2), T0 + timedelta(seconds=3)
    await store.record_shadow_agents(
        [ShadowSighting("ghost", t1, 2, "lg-aaaaaaaa"), ("ghost", T0, 1, None), ("spook", t1, 5, None)]
    )
    await store.record_shadow_agents([("ghost", t3, 4, "lg-bbbbbbbb"), ("spook", T0, 1, "lg-cccccccc")])
    await store.record_shadow_agents([])
    assert await store.list_shadow_agents() == [
        ShadowAgent("ghost", T0, t3, 7, "lg-bbbbbbbb"),
        ShadowAgent("spook", T0, t1, 6, None),
    ]
    await store.record_shadow_agents([("spook", t2 + timedelta(seconds=5), 1, None)])
    assert (await store.list_shadow_agents())[0] == ShadowAgent("spook", T0, t2 + timedelta(seconds=5), 7, None)
    assert await store.current_version() == 0


# -- usage -----------------------------------------------------------------------


async def test_usage_rollups_accumulate(store: Store) -> None:
    d1, d2, d3 = date(2025, 3, 1), date(2025, 3, 2), date(2025, 3, 3)
    await store.add_usage(
        [
            UsageRow("key", "k1", d1, requests=1, input_tokens=10, output_tokens=5, cost_usd=0.25),
            UsageRow("key", "k1", d1, requests=2, input_tokens=20, output_tokens=10, cost_usd=0.5),
            UsageRow("key", "k1", d3, requests=1, input_tokens=1, output_tokens=1, cost_usd=0.125),
            UsageRow("team", "k1", d2, requests=9),
        ]
    )
    await store.add_usage([UsageRow("key", "k1", d1, requests=1, cost_usd=0.25)])
    await store.add_usage([UsageRow("grant", "g1", datetime(2025, 3, 2, 23, 30, tzinfo=timezone(timedelta(hours=-2))), requests=1)])
    await store.add_usage([])
    assert await store.usage_summary("key", "k1") == UsageSummary(5, 31, 16, 1.125, d3)
    assert await store.usage_summary("key", "k1", since_day=d2) == UsageSummary(1, 1, 1, 0.125, d3)
    assert await store.usage_summary("team", "k1") == UsageSummary(9, 0, 0, 0.0, d2)
    assert await store.usage_summary("grant", "g1") == UsageSummary(1, 0, 0, 0.0, d3)
    assert await store.usage_summary("user", "nobody") == UsageSummary()
    assert (await store.usage_summary("key", "k1")).tokens == 47
    assert await store.current_version() == 0


async def test_permission_use_accumulates_per_agent_and_day(store: Store) -> None:
    d1, d2 = date(2025, 3, 1), date(2025, 3, 2)
    await store.add_permission_use(
        [("a1", "model:fast", d1, 2), ("a1", "tool:search", d2, 1), ("a1", "model:fast", d1, 1), ("a2", "model:big", d2, 4)]
    )
    await store.add_permission_use([("a1", "model:fast", d1, 1)])  # an existing row grows
    await store.add_permission_use([])
    assert await store.permissions_used("a1") == ["model:fast", "tool:search"]
    assert await store.permissions_used("a1", since_day=d2) == ["tool:search"]
    assert await store.permissions_used("a2", since_day=date(2025, 3, 3)) == []
    assert await store.permissions_used("nobody") == []
    with pytest.raises(InvalidRequest):
        await store.add_permission_use([("a1", "", d1, 1)])
    assert await store.current_version() == 0


# -- snapshot and version --------------------------------------------------------


async def test_snapshot_holds_what_the_data_plane_needs(store: Store, clock: FakeClock) -> None:
    team = await store.create_team("research")
    user = await store.create_user("ada", team_id=team.id)
    agent = await store.register_agent("bot", owner="ada", purpose="p", risk_tier="low")
    key, _ = await store.create_key("live", team_id=team.id)
    soon, _ = await store.create_key("soon", expires_at=T0 + timedelta(minutes=1))
    dead, _ = await store.create_key("dead")
    await store.revoke_key(dead.id)
    grant, _ = await store.create_grant(agent.id, models=["m"], purpose="p", lifetime=timedelta(hours=1), requested_by="ada")
    await store.create_grant(agent.id, models=["m"], purpose="p", lifetime=timedelta(minutes=1), requested_by="ada")
    kill = await store.set_kill("model", "fast", reason="r", actor="ada")
    key_kill = await store.set_kill("key", key.id, reason="r", actor="ada")
    await store.lift_kill(key_kill.id, actor="ada")
    version = await store.current_version()
    assert version == 12
    assert (await store.load_snapshot()).keys == (key, soon)
    clock.advance(timedelta(minutes=2))
    snapshot = await store.load_snapshot()
    assert snapshot == Snapshot(
        version=version,
        loaded_at=clock.now,
        teams=(team,),
        users=(user,),
        agents=(agent,),
        keys=(key,),
        grants=(grant,),
        kill_switches=(kill,),
    )
    assert await store.current_version() == version


async def test_every_change_bumps_the_version_once_and_reads_never(store: Store) -> None:
    team = await store.create_team("t")
    agent = await store.register_agent("a", owner="o", purpose="p", risk_tier="low")
    key, _ = await store.create_key("k")
    grant, _ = await store.create_grant(agent.id, models=["m"], purpose="p", lifetime=timedelta(hours=1), requested_by="o")
    kill = await store.set_kill("agent", agent.id, reason="r", actor="o")
    spare = await store.create_team("spare")
    changes: list[Callable[[], Awaitable[object]]] = [
        lambda: store.create_team("t2"),
        lambda: store.update_team(team.id, limits=LIMITS),
        lambda: store.delete_team(spare.id),
        lambda: store.create_user("u", team_id=team.id),
        lambda: store.register_agent("a2", owner="o", purpose="p", risk_tier="low"),
        lambda: store.set_agent_status(agent.id, "suspended"),
        lambda: store.set_agent_status(agent.id, "active"),
        lambda: store.create_key("k2"),
        lambda: store.revoke_key(key.id),
        lambda: store.create_grant(agent.id, tools=["x"], purpose="p", lifetime=timedelta(hours=1), requested_by="o"),
        lambda: store.revoke_grant(grant.id),
        lambda: store.set_kill("tool", "rm", reason="r", actor="o"),
        lambda: store.lift_kill(kill.id, actor="o"),
        lambda: store.set_agent_status(agent.id, "decommissioned"),
    ]
    reads: list[Callable[[], Awaitable[object]]] = [
        lambda: store.get_team(team.id),
        store.list_teams,
        store.list_users,
        store.list_agents,
        store.list_keys,
        store.list_grants,
        store.list_kills,
        store.list_shadow_agents,
        store.load_snapshot,
        store.current_version,
        lambda: store.usage_summary("team", team.id),
        lambda: store.touch_keys_last_used({key.id: T0}),
        lambda: store.touch_agents_last_seen({agent.id: T0}),
        lambda: store.record_shadow_agents([("ghost", T0, 1, None)]),
        lambda: store.add_usage([UsageRow("team", team.id, T0.date(), requests=1)]),
        lambda: store.add_permission_use([(agent.id, "model:m", T0.date(), 1)]),
        lambda: store.permissions_used(agent.id),
    ]
    version = await store.current_version()
    for change in changes:
        await change()
        version += 1
        assert await store.current_version() == version
        for read in reads:
            await read()
        assert await store.current_version() == version


async def test_failed_changes_leave_no_trace(store: Store) -> None:
    team = await store.create_team("t")
    await store.create_user("u", team_id=team.id)
    with pytest.raises(Conflict):
        await store.create_team("t")
    with pytest.raises(Conflict):
        await store.delete_team(team.id)
    assert await store.current_version() == 2
    assert await store.list_teams() == [team]


# -- concurrency -----------------------------------------------------------------


async def test_concurrent_migrations_migrate_once(db_url: str) -> None:
    await asyncio.gather(*(migrate(db_url) for _ in range(4)))
    async with await Store.open(db_url) as s:
        assert await s.current_version() == 0
    if db_url.startswith("sqlite"):  # WAL is a property of the file
        path = make_url(db_url).database or ""
        with contextlib.closing(sqlite3.connect(path)) as raw:
            assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_concurrent_writers_serialise(db_url: str, clock: FakeClock) -> None:
    async with await Store.open(db_url, clock=clock) as one, await Store.open(db_url, clock=clock) as two:
        created = await asyncio.gather(
            *(s.create_team(f"team-{i}") for i, s in enumerate([one, two] * 10)),
            *(s.add_usage([UsageRow("team", "t", T0.date(), requests=1)]) for s in [one, two] * 5),
            *(s.load_snapshot() for s in [one, two] * 3),
        )
        assert len({t.id for t in created[:20] if isinstance(t, Team)}) == 20
        assert await one.current_version() == 20
        assert (await two.usage_summary("team", "t")).requests == 10
        results = await asyncio.gather(one.create_team("same"), two.create_team("same"), return_exceptions=True)
        assert sorted(type(r).__name__ for r in results) == ["Conflict", "Team"]
