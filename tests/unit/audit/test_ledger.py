"""The ledger on SQLite and PostgreSQL: group commit, verification, and every kind of
tampering done with direct SQL, each named by `verify` at the right entry."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from tests.e2e.access_support import open_backend

from lockgate.audit import merkle
from lockgate.audit.checkpoint import Signer, load_signer
from lockgate.audit.ledger import Ledger
from lockgate.audit.reader import consistency, export_lines, inclusion
from lockgate.audit.verify import verify_database, verify_export
from lockgate.config.audit import AuditConfig
from lockgate.core.context import Principal
from lockgate.store import Store

BACKENDS = ["sqlite", "postgres"]
ALICE = Principal(id="k1", kind="key", label="lg-Abc123", team_id="t1", user_id="u1", agent_id="a1", agent_name="planner")


class Env:
    def __init__(self, url: str, store: Store, ledger: Ledger, signer: Signer) -> None:
        self.url = url
        self.store = store
        self.ledger = ledger
        self.signer = signer

    def sql(self, *statements: str) -> None:
        """Run statements as an attacker with direct database access (triggers off)."""
        engine = create_engine(self.url.replace("postgresql://", "postgresql+psycopg://"))
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SET session_replication_role = replica"))
            else:
                for table in ("audit_events", "audit_checkpoints"):
                    for verb in ("update", "delete"):
                        conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_{verb}"))
            for statement in statements:
                conn.exec_driver_sql(statement)
        engine.dispose()

    def verify(self) -> Any:
        return verify_database(self.url, trusted_keys={self.signer.public_b64})


@pytest.fixture(params=BACKENDS)
async def env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncGenerator[Env]:
    with open_backend(request.param, tmp_path) as backend:
        store = await Store.open(backend.database)
        signer = load_signer(None, None)
        # The gateway's path: group commits in the writer thread on a sync engine.
        ledger = Ledger(store, AuditConfig(checkpoint_interval=0, capture_content=True), signer=signer,
                        writer_url=backend.database)
        await ledger.start()
        try:
            yield Env(backend.database, store, ledger, signer)
        finally:
            await ledger.aclose()
            await store.aclose()


async def _fill(env: Env, n: int) -> list[int]:
    return list(
        await asyncio.gather(
            *(
                env.ledger.record(
                    "gateway.request", actor=ALICE, request_id=f"req-{i}", target={"model": "gpt-x", "provider": "p"},
                    input={"messages": [{"role": "user", "content": f"hello {i}"}]}, output=f"answer {i}",
                    decision={"effect": "allow", "policies": ["policy0"]}, cost_usd=0.0012 * i, latency_ms=3.5,
                    status=200, guard=[{"scanner": "pii", "action": "redact", "score": 0.9}],
                )
                for i in range(n)
            )
        )
    )


async def test_group_commit_assigns_one_dense_sequence(env: Env) -> None:
    seqs = await _fill(env, 40)
    assert sorted(seqs) == list(range(1, 41))
    assert env.ledger.commits < 40  # concurrent events shared commits
    await env.ledger.checkpoint()
    report = env.verify()
    assert report.ok, report.problems
    assert report.events == 40 and report.checkpoints == 1


async def test_search_returns_schema_shaped_events(env: Env) -> None:
    await _fill(env, 5)
    found = await env.ledger.search(request_id="req-3")
    assert len(found) == 1
    event = found[0]
    assert event["actor"]["agent"] == "planner" and event["actor"]["key_prefix"] == "lg-Abc123"
    assert event["decision"] == {"effect": "allow", "policies": ["policy0"]}
    assert len(event["input_sha256"]) == 64 and "input" not in event
    assert [e["seq"] for e in await env.ledger.search(agent="planner", limit=2)] == [5, 4]
    assert [e["seq"] for e in await env.ledger.search(agent="planner", before_seq=4, limit=10)] == [3, 2, 1]
    payload = await env.ledger.payload(event["seq"], event["id"])
    assert payload is not None and payload["output"] == "answer 3"


async def test_append_only_triggers_refuse_update_and_delete(env: Env) -> None:
    await _fill(env, 2)
    engine = create_engine(env.url.replace("postgresql://", "postgresql+psycopg://"))
    for statement in ("UPDATE audit_events SET agent = 'x' WHERE seq = 1", "DELETE FROM audit_events WHERE seq = 2"):
        with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
            conn.exec_driver_sql(statement)
    engine.dispose()
    assert env.verify().ok


TAMPERING: dict[str, tuple[Callable[[Env], list[str]], int | None, str]] = {
    "body edited": (lambda e: ["UPDATE audit_events SET body = replace(body, '\"status\":200', '\"status\":201') WHERE seq = 7"], 7, "chain"),
    "search column edited": (lambda e: ["UPDATE audit_events SET agent = 'innocent' WHERE seq = 5"], 5, "row was edited"),
    "middle deleted": (lambda e: ["DELETE FROM audit_events WHERE seq = 6"], 6, "missing"),
    "tail deleted": (lambda e: ["DELETE FROM audit_events WHERE seq >= 11"], None, "deleted"),
}


@pytest.mark.parametrize("kind", list(TAMPERING))
async def test_tampering_is_named(env: Env, kind: str) -> None:
    await _fill(env, 12)
    await env.ledger.checkpoint()
    assert env.verify().ok
    statements, seq, words = TAMPERING[kind]
    env.sql(*statements(env))
    report = env.verify()
    assert not report.ok
    first = report.first
    assert first is not None
    if seq is not None:
        assert first.seq == seq, report.problems
    assert words in first.message


async def test_body_edit_names_the_entry(env: Env) -> None:
    await _fill(env, 9)
    body = (await env.store.audit_event(4))
    assert body is not None
    forged = body[0].replace('"status":200', '"status":201')
    env.sql(f"UPDATE audit_events SET body = '{forged}' WHERE seq = 4")
    report = env.verify()
    assert report.first is not None and report.first.seq == 4 and "chain" in report.first.message


async def test_reordering_and_insertion_are_caught(env: Env) -> None:
    await _fill(env, 8)
    await env.ledger.checkpoint()
    # Swap two entries' positions.
    env.sql(
        "UPDATE audit_events SET seq = -3 WHERE seq = 3",
        "UPDATE audit_events SET seq = 3 WHERE seq = 4",
        "UPDATE audit_events SET seq = 4 WHERE seq = -3",
    )
    report = env.verify()
    assert report.first is not None and report.first.seq == 3


async def test_inserted_entry_is_caught(env: Env) -> None:
    await _fill(env, 6)
    row = await env.store.audit_event(6)
    assert row is not None
    body = row[0].replace('"seq":6', '"seq":7')
    event = json.loads(body)
    env.sql(
        "INSERT INTO audit_events (seq, id, time, type, request_id, principal, agent, model, decision, status, body, chain) "
        f"VALUES (7, 'forged-id', '2026-01-01T00:00:00.000000+00:00', 'gateway.request', '{event['request_id']}', 'k1', 'planner', 'gpt-x', 'allow', 200, "
        f"'{body}', '{'ab' * 32}')"
    )
    report = env.verify()
    assert report.first is not None and report.first.seq == 7


async def test_rewritten_chain_fails_the_signed_checkpoint(env: Env) -> None:
    """An attacker who edits an entry and recomputes every later chain hash still
    cannot match the signed root."""
    await _fill(env, 10)
    await env.ledger.checkpoint()
    rows = [r async for r in env.store.audit_rows(1, 10)]
    import hashlib

    chain = rows[2][2]
    statements = []
    for seq, body, _ in rows[3:]:
        if seq == 4:
            body = body.replace('"status":200', '"status":500')
            statements.append(f"UPDATE audit_events SET body = '{body}', status = 500 WHERE seq = 4")
        chain = hashlib.sha256(bytes.fromhex(chain) + merkle.leaf_hash(body.encode())).hexdigest()
        statements.append(f"UPDATE audit_events SET chain = '{chain}' WHERE seq = {seq}")
    env.sql(*statements)
    report = env.verify()
    assert not report.ok
    assert any("Merkle root" in p.message for p in report.problems)


async def test_untrusted_checkpoint_key_is_reported(env: Env) -> None:
    await _fill(env, 3)
    await env.ledger.checkpoint()
    report = verify_database(env.url, trusted_keys={load_signer(None, None).public_b64})
    assert not report.ok and "not a trusted key" in str(report.first)


async def test_proofs_check_with_the_independent_verifier(env: Env) -> None:
    await _fill(env, 13)
    first = await env.ledger.checkpoint()
    assert first is not None
    await _fill(env, 8)
    second = await env.ledger.checkpoint()
    assert second is not None and second["tree_size"] == 21
    for seq in (1, 7, 13, 21):
        proof = await inclusion(env.store, seq)
        assert merkle.verify_inclusion(
            bytes.fromhex(proof["leaf_hash"]), seq - 1, 21, [bytes.fromhex(p) for p in proof["proof"]],
            bytes.fromhex(second["root_hash"]),
        )
    c = await consistency(env.store, 13, 21)
    assert merkle.verify_consistency(
        13, 21, bytes.fromhex(first["root_hash"]), bytes.fromhex(second["root_hash"]), [bytes.fromhex(p) for p in c["proof"]]
    )
    assert not merkle.verify_consistency(
        13, 21, bytes.fromhex(second["root_hash"]), bytes.fromhex(second["root_hash"]), [bytes.fromhex(p) for p in c["proof"]]
    )


async def test_export_verifies_offline_and_detects_edits(env: Env, tmp_path: Path) -> None:
    await _fill(env, 15)
    await env.ledger.checkpoint()
    await _fill(env, 2)  # after the checkpoint: chained, not yet in a signed tree
    path = tmp_path / "audit.jsonl"
    with path.open("wb") as fh:
        async for line in export_lines(env.store, with_payloads=True):
            fh.write(line)
    report = verify_export(path, trusted_keys={env.signer.public_b64})
    assert report.ok, report.problems
    assert report.events == 17 and report.proofs == 15
    lines = path.read_bytes().splitlines(keepends=True)
    assert json.loads(lines[3])["payload"]["output"].startswith("answer")
    lines[5] = lines[5].replace(b'"status":200', b'"status":404')
    path.write_bytes(b"".join(lines))
    bad = verify_export(path, trusted_keys={env.signer.public_b64})
    assert not bad.ok and bad.first is not None and bad.first.seq == 5


async def test_postgres_role_needs_only_insert_and_select(tmp_path: Path) -> None:
    """The documented grant: a gateway role with INSERT and SELECT on the ledger tables
    appends events and verifies; UPDATE is refused to it by privilege, not only by trigger."""
    import uuid

    from lockgate.store._base import utc_now
    from lockgate.store._engine import make_async_engine

    with open_backend("postgres", tmp_path) as backend:
        store = await Store.open(backend.database)
        await store.aclose()
        role = f"lg_gw_{uuid.uuid4().hex[:8]}"
        schema = make_url(backend.database).query["options"].split("=", 1)[1]
        admin_url = backend.database.replace("postgresql://", "postgresql+psycopg://")
        engine = create_engine(admin_url)
        with engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
            conn.exec_driver_sql(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
            conn.exec_driver_sql(f"GRANT SELECT, INSERT ON audit_events, audit_payloads, audit_checkpoints TO {role}")
        try:
            role_url = make_url(backend.database).set(username=role).render_as_string(hide_password=False)
            limited = Store(make_async_engine(role_url), "postgresql", clock=utc_now, memory=False)
            ledger = Ledger(limited, AuditConfig(checkpoint_interval=0), signer=load_signer(None, None))
            await ledger.start()
            try:
                assert await ledger.record("admin.change", actor={"kind": "operator", "principal": "admin"}) == 1
                assert await ledger.checkpoint() is not None
            finally:
                await ledger.aclose()
                await limited.aclose()
            with pytest.raises(psycopg.errors.InsufficientPrivilege), psycopg.connect(role_url) as c:
                c.execute(f"SET search_path = {schema}")
                c.execute("UPDATE audit_events SET agent = 'x'")
        finally:
            with engine.begin() as conn:
                conn.exec_driver_sql(f"DROP OWNED BY {role}")
                conn.exec_driver_sql(f"DROP ROLE {role}")
            engine.dispose()


async def test_crypto_shredding_erases_payloads_and_keeps_proofs(tmp_path: Path) -> None:
    import base64
    import os

    from lockgate.audit.crypto import PayloadCipher

    with open_backend("sqlite", tmp_path) as backend:
        store = await Store.open(backend.database)
        signer = load_signer(None, None)
        cipher = PayloadCipher(os.urandom(32), store)
        ledger = Ledger(store, AuditConfig(checkpoint_interval=0, capture_content=True), signer=signer, cipher=cipher)
        await ledger.start()
        try:
            a = await ledger.record("gateway.request", input="alice's secret prompt", subject="alice")
            b = await ledger.record("gateway.request", input="bob's prompt", subject="bob")
            raw = await store.audit_payload(a)
            assert raw is not None and raw["scheme"] == "aes-256-gcm" and b"alice" not in bytes(raw["data"])
            event_a = (await ledger.search(request_id=None, limit=10))[-1]
            assert (await ledger.payload(a, event_a["id"])) == {"input": "alice's secret prompt"}
            await ledger.checkpoint()
            assert await ledger.shred("alice")
            assert await ledger.payload(a, event_a["id"]) is None
            event_b = (await ledger.search(limit=10))[0]
            assert (await ledger.payload(b, event_b["id"])) == {"input": "bob's prompt"}
            report = verify_database(backend.database, trusted_keys={signer.public_b64})
            assert report.ok and report.events == 2
            assert base64.b64decode(signer.public_b64)
        finally:
            await ledger.aclose()
            await store.aclose()
