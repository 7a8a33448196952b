"""The audit ledger and human oversight end to end: the official OpenAI SDK against a
real gateway, the admin API, and the CLI (verify, export, approvals)."""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import openai
import psycopg
import pytest
from tests.conftest import ADMIN_KEY, Server, free_port, gateway_config, start_server
from tests.e2e.access_support import open_backend

from lockgate.testing import FakeProvider

APPROVALS = """
[audit]
capture_content = true
checkpoint_interval = 0

[approvals]
timeout = {timeout}
poll_interval = 0.05
webhook_url = "{hook}"
webhook_secret = "env::HOOK_SECRET"

[[approvals.rules]]
name = "gated-model"
models = ["gated"]

[models.gated]
routes = [ {{ provider = "oai", model = "gpt-4o-mini" }} ]
"""


class Hooks:
    def __init__(self) -> None:
        self.received: list[tuple[dict[str, Any], str]] = []


@pytest.fixture(scope="module")
def hooks() -> Iterator[tuple[Hooks, str]]:
    box = Hooks()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            box.received.append((json.loads(body), self.headers.get("x-lockgate-signature", "") + "|" + body.decode()))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    port = free_port()
    httpd = HTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield box, f"http://127.0.0.1:{port}/hook"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def gw(
    request: pytest.FixtureRequest, fake: FakeProvider, hooks: tuple[Hooks, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Server, Path, str]]:
    tmp = tmp_path_factory.mktemp(f"audit-{request.param}")
    with open_backend(request.param, tmp) as backend:
        config = gateway_config(fake.url, APPROVALS.format(timeout=2, hook=hooks[1])).replace(
            "[gateway]\n", f'[gateway]\ndatabase = "{backend.database}"\n', 1
        )
        srv = start_server(config, tmp, env={"HOOK_SECRET": "hook-secret"})
        yield srv, tmp, backend.database
        srv.stop()


_OPEN: list[openai.OpenAI] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def _client(url: str, **kw: Any) -> openai.OpenAI:
    client = openai.OpenAI(base_url=url + "/v1", api_key=ADMIN_KEY, max_retries=0, **kw)
    _OPEN.append(client)
    return client


def _admin(srv: Server, method: str, path: str, **kw: Any) -> httpx.Response:
    return httpx.request(method, srv.url + "/admin" + path, headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=10, **kw)


def _cli(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lockgate", *args, "--config", str(tmp / "lockgate.toml")],
        capture_output=True, text=True, cwd=tmp, timeout=60,
        env={"LOCKGATE_ADMIN_KEY": ADMIN_KEY, "HOOK_SECRET": "hook-secret", "PATH": "/usr/bin:/bin"},
    )


def _tamper(database: str) -> int:
    """Edit the newest answered request's event behind the triggers' back; its seq."""
    edit = "UPDATE audit_events SET body = replace(body, '\"status\":200', '\"status\":201') WHERE seq = {}"
    if database.startswith("sqlite"):
        con = sqlite3.connect(database.removeprefix("sqlite:///"))
        con.execute("DROP TRIGGER audit_events_no_update")
        (seq,) = con.execute("SELECT max(seq) FROM audit_events WHERE status = 200").fetchone()
        con.execute(edit.format(seq))
        con.commit()
        con.close()
        return int(seq)
    with psycopg.connect(database) as conn:
        conn.execute("SET session_replication_role = replica")
        row = conn.execute("SELECT max(seq) FROM audit_events WHERE status = 200").fetchone()
        assert row is not None
        conn.execute(edit.format(row[0]))
        return int(row[0])


def _pending(srv: Server, timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = _admin(srv, "GET", "/approvals", params={"status": "pending"}).json()
        if items:
            return items[0]
        time.sleep(0.05)
    raise AssertionError("nothing entered the approval queue")


def test_every_request_is_a_durable_event(gw: tuple[Server, Path, str]) -> None:
    srv, _, _ = gw
    raw = _client(srv.url).chat.completions.with_raw_response.create(
        model="fast", messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-lockgate-reasoning": "plan: greet the user"},
    )
    rid = raw.headers["x-request-id"]
    # Durable before the reply: the event is there the moment the answer is.
    found = _admin(srv, "GET", "/audit", params={"request_id": rid}).json()["data"]
    assert len(found) == 1
    event = found[0]
    assert event["type"] == "gateway.request" and event["status"] == 200
    assert event["target"]["model"] == "fast" and event["target"]["provider"] == "oai"
    assert event["actor"]["kind"] == "operator"
    assert len(event["input_sha256"]) == 64 and len(event["output_sha256"]) == 64
    assert len(event["reasoning_sha256"]) == 64
    full = _admin(srv, "GET", f"/audit/{event['seq']}").json()
    assert full["payload"]["reasoning"] == "plan: greet the user"
    assert full["payload"]["input"]["messages"][0]["content"][0]["text"] == "hi"
    # Reasoning appended afterwards, by the caller, to its request id.
    r = httpx.post(srv.url + "/v1/audit/reasoning", json={"request_id": rid, "reasoning": "follow-up plan"},
                   headers={"authorization": f"Bearer {ADMIN_KEY}"})
    assert r.status_code == 201
    kinds = {e["type"] for e in _admin(srv, "GET", "/audit", params={"request_id": rid}).json()["data"]}
    assert kinds == {"gateway.request", "agent.reasoning"}
    bad = httpx.post(srv.url + "/v1/audit/reasoning", content=b"{not json", headers={"authorization": f"Bearer {ADMIN_KEY}"})
    assert bad.status_code == 400 and bad.json()["error"]["message"]
    assert httpx.post(srv.url + "/v1/audit/reasoning", json={"request_id": rid, "reasoning": "x"}).status_code == 401


def test_refusals_are_events_too(gw: tuple[Server, Path, str]) -> None:
    srv, _, _ = gw
    with pytest.raises(openai.AuthenticationError), openai.OpenAI(
        base_url=srv.url + "/v1", api_key="sk-wrong", max_retries=0
    ) as bad:
        bad.chat.completions.create(model="fast", messages=[{"role": "user", "content": "hi"}])
    refused = _admin(srv, "GET", "/audit", params={"type": "gateway.refused", "limit": 5}).json()["data"]
    assert any(e["error"] == "invalid_api_key" for e in refused)


def test_approval_wait_then_approve(gw: tuple[Server, Path, str], hooks: tuple[Hooks, str]) -> None:
    srv, tmp, _ = gw
    result: dict[str, Any] = {}

    def call() -> None:
        result["answer"] = _client(srv.url, timeout=20).chat.completions.create(
            model="gated", messages=[{"role": "user", "content": "wire 4111 1111 1111 1111 to bob@example.com"}])

    thread = threading.Thread(target=call)
    thread.start()
    item = _pending(srv)
    assert item["reason"] == "approval rule 'gated-model' matched"
    assert "[NUMBER]" in item["summary"]["messages"][0]["content"] and "[EMAIL]" in item["summary"]["messages"][0]["content"]
    assert "estimated_cost_usd" in item["evidence"]
    done = _cli(tmp, "approvals", "approve", item["id"], "--reviewer", "alice", "-m", "looks fine")
    assert done.returncode == 0, done.stderr
    thread.join(15)
    assert result["answer"].choices[0].message.content
    shown = _admin(srv, "GET", f"/approvals/{item['id']}").json()
    assert shown["decided_by"] == "alice" and shown["comment"] == "looks fine" and shown["status"] == "consumed"
    types = {e["type"] for e in _admin(srv, "GET", "/audit", params={"limit": 50}).json()["data"]}
    assert {"approval.requested", "approval.approved"} <= types
    # The webhook fired, signed.
    deadline = time.monotonic() + 5
    while not any(p["approval"]["id"] == item["id"] for p, _ in hooks[0].received) and time.monotonic() < deadline:
        time.sleep(0.05)
    payload, sig_body = next((p, s) for p, s in hooks[0].received if p["approval"]["id"] == item["id"])
    signature, body = sig_body.split("|", 1)
    assert payload["type"] == "approval.requested"
    assert signature == "sha256=" + hmac.new(b"hook-secret", body.encode(), hashlib.sha256).hexdigest()


def test_approval_wait_then_deny(gw: tuple[Server, Path, str]) -> None:
    srv, _, _ = gw
    errors: list[Exception] = []

    def call() -> None:
        try:
            _client(srv.url, timeout=20).chat.completions.create(model="gated", messages=[{"role": "user", "content": "x"}])
        except Exception as exc:
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    item = _pending(srv)
    r = _admin(srv, "POST", f"/approvals/{item['id']}/deny", json={"reviewer": "bob", "comment": "too risky"})
    assert r.status_code == 200
    thread.join(15)
    assert isinstance(errors[0], openai.PermissionDeniedError)
    assert errors[0].code == "approval_denied" and "too risky" in str(errors[0])
    again = _admin(srv, "POST", f"/approvals/{item['id']}/approve", json={"reviewer": "bob"})
    assert again.status_code == 409


def test_approval_timeout_denies(gw: tuple[Server, Path, str]) -> None:
    srv, _, _ = gw
    started = time.monotonic()
    with pytest.raises(openai.PermissionDeniedError) as info:
        _client(srv.url, timeout=20).chat.completions.create(model="gated", messages=[{"role": "user", "content": "x"}])
    assert info.value.code == "approval_timeout"
    assert 1.5 < time.monotonic() - started < 10
    assert any(e["type"] == "approval.expired" for e in _admin(srv, "GET", "/audit", params={"type": "approval.expired"}).json()["data"])


def test_async_mode_202_poll_and_resend(gw: tuple[Server, Path, str]) -> None:
    srv, _, _ = gw
    client = _client(srv.url)
    messages: Any = [{"role": "user", "content": "async please"}]
    raw = client.chat.completions.with_raw_response.create(
        model="gated", messages=messages, extra_headers={"x-lockgate-approval-mode": "async"})
    assert raw.status_code == 202
    approval = json.loads(raw.http_response.content)
    assert approval["status"] == "pending" and raw.headers["location"] == f"/v1/approvals/{approval['id']}"
    poll = httpx.get(srv.url + approval["poll"], headers={"authorization": f"Bearer {ADMIN_KEY}"}).json()
    assert poll["status"] == "pending"
    _admin(srv, "POST", f"/approvals/{approval['id']}/approve", json={"reviewer": "carol"})
    assert httpx.get(srv.url + approval["poll"], headers={"authorization": f"Bearer {ADMIN_KEY}"}).json()["status"] == "approved"
    with pytest.raises(openai.PermissionDeniedError):  # a different request cannot use it
        client.chat.completions.create(model="gated", messages=[{"role": "user", "content": "something else"}],
                                       extra_headers={"x-lockgate-approval": approval["id"]})
    answer = client.chat.completions.create(model="gated", messages=messages, extra_headers={"x-lockgate-approval": approval["id"]})
    assert answer.choices[0].message.content
    with pytest.raises(openai.PermissionDeniedError):  # once only
        client.chat.completions.create(model="gated", messages=messages, extra_headers={"x-lockgate-approval": approval["id"]})


def test_cli_verify_export_and_tamper(gw: tuple[Server, Path, str]) -> None:
    srv, tmp, database = gw
    client = _client(srv.url)
    for i in range(5):
        client.chat.completions.create(model="fast", messages=[{"role": "user", "content": f"n{i}"}])
    cp = _cli(tmp, "audit", "checkpoint")
    assert cp.returncode == 0, cp.stderr
    ok = _cli(tmp, "audit", "verify")
    assert ok.returncode == 0 and "ok: the ledger is intact" in ok.stdout, ok.stdout + ok.stderr
    export = tmp / "export.jsonl"
    assert _cli(tmp, "audit", "export", "-o", str(export)).returncode == 0
    checked = _cli(tmp, "audit", "verify", "--export", str(export))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    proof = json.loads(_cli(tmp, "audit", "proof", "2").stdout)
    assert proof["leaf_index"] == 1 and proof["proof"]
    bad = _cli(tmp, "audit", "verify", "--since", "x")
    assert bad.returncode == 2
    # Tamper with the database directly, as someone with its files or its superuser.
    seq = _tamper(database)
    failed = _cli(tmp, "audit", "verify")
    assert failed.returncode == 1
    assert f"seq {seq}:" in failed.stderr


def test_stream_event_is_durable_before_the_stream_ends(gw: tuple[Server, Path, str]) -> None:
    srv, _, _ = gw
    stream = _client(srv.url).chat.completions.with_raw_response.create(
        model="fast", messages=[{"role": "user", "content": "stream it"}], stream=True)
    rid = stream.headers["x-request-id"]
    text = "".join((c.choices[0].delta.content or "") for c in stream.parse() if c.choices)
    found = _admin(srv, "GET", "/audit", params={"request_id": rid}).json()["data"]
    assert len(found) == 1
    assert found[0]["output_sha256"] == hashlib.sha256(json.dumps(text, ensure_ascii=False).encode()).hexdigest()
