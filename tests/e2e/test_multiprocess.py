"""Three `lockgate serve` processes sharing PostgreSQL and Redis: limits and budgets
hold across them under concurrency, kill switches reach every process in under a
second (and end streams in flight), and an unreachable Redis fails closed (or open,
by configuration) and shows in /healthz and /metrics.

PostgreSQL comes from LOCKGATE_TEST_POSTGRES_URL (a fresh schema, dropped afterwards)
and Redis from LOCKGATE_TEST_REDIS_URL (database 11 of it, flushed before and after);
without them, and with the variables unset, the module is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import anthropic
import httpx
import openai
import psycopg
import pytest
import redis
from psycopg import sql
from sqlalchemy import make_url
from tests.conftest import ADMIN_KEY, Server, free_port, gateway_config, start_server
from tests.e2e.access_support import postgres_base, redis_url

from lockgate.testing import FakeProvider

REDIS_DB = 11
PREFIX = "{lockgate:limits}"

# Polling the control plane is slow here on purpose: changes must arrive by Redis pub/sub.
# $0.001 a token: "hi" with max_tokens 2 reserves ~$0.010 (8 + 2 tokens) and costs ~$0.003
EXTRA = """
[access]
refresh_interval = 5

[models.priced]
routes = [ { provider = "oai", model = "gpt-4o-mini" } ]
price = { input_per_mtok = 1000, output_per_mtok = 1000 }

[models.gapstream]
routes = [ { provider = "oai", model = "fake-gap-0.15" } ]

[models.gapclaude]
routes = [ { provider = "ant", model = "fake-gap-0.15" } ]

[models.latestream]
routes = [ { provider = "oai", model = "fake-slow-2-gap-0.1" } ]
"""
LONG = " ".join(f"word{i}" for i in range(60))  # ~60 stream events, 0.15 s apart


@dataclass
class Cluster:
    servers: list[Server]
    config: Path
    redis: redis.Redis
    clients: list[httpx.Client] = field(default_factory=list[httpx.Client])

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.servers]

    def admin(self, i: int, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        r = self.clients[i].request(method, "/admin" + path, json=body, headers={"authorization": f"Bearer {ADMIN_KEY}"})
        assert r.status_code < 300, r.text
        return r.json()

    def chat(self, i: int, key: str, model: str = "fast") -> httpx.Response:
        return self.clients[i].post(
            "/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
            json={"model": model, "messages": [{"role": "user", "content": "ping"}], "max_tokens": 5},
        )

    def new_key(self, **body: Any) -> tuple[str, str]:
        """A key created on process 0, once every process knows it: (key, prefix)."""
        created = self.admin(0, "POST", "/keys", {"name": f"k-{uuid.uuid4().hex[:8]}", **body})
        for client in self.clients:
            deadline = time.monotonic() + 8  # pub/sub: at once; the 5 s poll is the fallback
            while client.get("/v1/models", headers={"authorization": f"Bearer {created['key']}"}).status_code != 200:
                assert time.monotonic() < deadline, "a new key did not reach every process"
                time.sleep(0.02)
        return created["key"], created["prefix"]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "lockgate", *args, "--config", str(self.config)], capture_output=True, text=True,
            timeout=60, env={**os.environ, "LOCKGATE_ADMIN_KEY": ADMIN_KEY}, cwd=self.config.parent,
        )


@pytest.fixture(scope="module")
def cluster(fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    base, redis_address = postgres_base(), redis_url(REDIS_DB)
    schema = f"lgmp_{uuid.uuid4().hex}"
    db = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    tmp = tmp_path_factory.mktemp("cluster")
    text = gateway_config(fake.url, EXTRA).replace("[gateway]\n", f'[gateway]\ndatabase = "{db}"\nredis = "{redis_address}"\n', 1)
    r = redis.Redis.from_url(redis_address)
    r.flushdb()
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    servers: list[Server] = []
    c = Cluster(servers, tmp / "lockgate.toml", r)
    try:
        for _ in range(3):
            servers.append(start_server(text, tmp))
        c.clients.extend(httpx.Client(base_url=s.url, timeout=10) for s in servers)
        yield c
    finally:
        for client in c.clients:
            client.close()
        for s in servers:
            s.stop()
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
        r.flushdb()
        r.close()


async def _burst(urls: list[str], key: str, n: int, body: dict[str, Any]) -> list[httpx.Response]:
    """`n` requests at once, spread round-robin over the processes."""
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        return list(await asyncio.gather(*(
            client.post(f"{urls[i % len(urls)]}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"})
            for i in range(n)
        )))


def _away_from_minute_boundary(margin: float = 6.0) -> None:
    """Per-minute windows slide: keep a burst inside one minute so the count is exact."""
    into = time.time() % 60
    if into > 60 - margin:
        time.sleep(60 - into + 0.05)


def test_rpm_holds_exactly_across_three_processes(cluster: Cluster) -> None:
    key, prefix = cluster.new_key(limits={"rpm": 30})
    _away_from_minute_boundary()
    body = {"model": "fast", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    responses = asyncio.run(_burst(cluster.urls, key, 100, body))
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 30, statuses
    assert statuses.count(429) == 70, statuses
    for r in responses:
        if r.status_code == 429:
            assert r.json()["error"]["code"] == "rate_limit_exceeded"
            assert f"key {prefix}" in r.json()["error"]["message"]
            assert int(r.headers["retry-after"]) >= 1
    # every process refused some: each counted against the shared window
    assert {i % 3 for i, r in enumerate(responses) if r.status_code == 429} == {0, 1, 2}


def test_concurrency_holds_across_three_processes(cluster: Cluster, fake: FakeProvider) -> None:
    key, prefix = cluster.new_key(limits={"max_concurrent": 5})
    fake.set_delay(2.0)  # longer than the burst takes to arrive: the first five hold their slots
    body = {"model": "fast", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    try:
        responses = asyncio.run(_burst(cluster.urls, key, 100, body))
    finally:
        fake.set_delay(0)
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 5, statuses
    assert statuses.count(429) == 95, statuses
    for r in responses:
        if r.status_code == 429:
            assert r.json()["error"]["code"] == "rate_limit_exceeded"
            assert f"Concurrency limit reached for key {prefix}" in r.json()["error"]["message"]
            assert r.headers["retry-after"] == "1"
    _eventually(lambda: cluster.redis.zcard(f"{PREFIX}:c:key:{prefix}") == 0)  # every slot freed


def test_budget_overshoot_stays_within_one_reservation(cluster: Cluster) -> None:
    budget = 0.1
    key, prefix = cluster.new_key(limits={"budget_day_usd": budget})
    body = {"model": "priced", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    reservation = (len("hi") // 3 + 8 + 2) * 0.001  # the limits stage's estimate at $0.001 a token

    def cost(r: httpx.Response) -> float:
        return (r.json()["usage"]["prompt_tokens"] + r.json()["usage"]["completion_tokens"]) * 0.001

    def counted() -> int:  # the shared counter, in micro-dollars
        keys = cast("list[bytes]", cluster.redis.keys(f"{PREFIX}:d:key:{prefix}:*"))
        return sum(int(cast("bytes | None", cluster.redis.get(k)) or 0) for k in keys)

    responses = asyncio.run(_burst(cluster.urls, key, 100, body))
    ok = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code != 200]
    assert all(r.status_code == 429 and r.json()["error"]["code"] == "budget_exceeded" for r in refused)
    assert refused
    assert len(ok) >= round(budget / reservation)  # the reservations in flight never exceed the budget
    spent = sum(map(cost, ok))
    assert spent <= budget + reservation + 1e-9, (spent, len(ok))
    # the shared counter agrees with what was served once settlements are flushed
    # (they ride on the next reservation, or go alone within the limiter's flush interval)
    _eventually(lambda: counted() == round(spent * 1_000_000))
    # under concurrency, reservations in flight refuse some that would have fitted once
    # settled; one by one, requests pass until the next estimate no longer fits
    auth = {"authorization": f"Bearer {key}"}
    for n in range(60):
        time.sleep(0.02)  # longer than the flush interval: the other processes' settlements are in
        r = cluster.clients[n % 3].post("/v1/chat/completions", json=body, headers=auth)
        if r.status_code != 200:
            break
        spent += cost(r)
    else:
        raise AssertionError("the budget never filled")
    assert budget - reservation < spent <= budget + reservation + 1e-9, spent
    _eventually(lambda: counted() == round(spent * 1_000_000))

    for i in range(3):  # refused on every process, with a Retry-After until midnight UTC
        r = cluster.clients[i].post("/v1/chat/completions", json=body, headers=auth)
        assert r.status_code == 429 and r.json()["error"]["code"] == "budget_exceeded", r.text
        assert f"Budget exhausted for key {prefix}" in r.json()["error"]["message"]
        assert 1 <= int(r.headers["retry-after"]) <= 86_400


def _eventually(check: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.01)


# --- kill switches ----------------------------------------------------------------------


class InFlight:
    """A slow stream read in a thread with the official SDK; records how it ended."""

    def __init__(self, url: str, key: str, model: str, dialect: str = "openai") -> None:
        self.url, self.key, self.model, self.dialect = url, key, model, dialect
        self.started = threading.Event()
        self.events = 0
        self.error: Exception | None = None
        self.ended_at: float | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.started.wait(10) and self.error is None, self.error

    def _run(self) -> None:
        try:
            if self.dialect == "anthropic":
                with anthropic.Anthropic(base_url=self.url, api_key=self.key, max_retries=0) as ac:
                    for _ in ac.messages.create(
                        model=self.model, max_tokens=500, messages=[{"role": "user", "content": LONG}], stream=True
                    ):
                        self.events += 1
                        self.started.set()
            else:
                with openai.OpenAI(base_url=self.url + "/v1", api_key=self.key, max_retries=0) as oc:
                    for _ in oc.chat.completions.create(
                        model=self.model, messages=[{"role": "user", "content": LONG}], stream=True
                    ):
                        self.events += 1
                        self.started.set()
        except Exception as exc:
            self.error = exc
        finally:
            self.ended_at = time.monotonic()
            self.started.set()

    def ended_with(self, t0: float) -> tuple[float, str]:
        """Seconds from t0 to the stream's end, and the error's message."""
        self.thread.join(10)
        assert not self.thread.is_alive(), "the stream in flight did not end"
        assert self.ended_at is not None and self.events > 0
        if self.dialect == "anthropic":
            assert isinstance(self.error, anthropic.APIStatusError), repr(self.error)
            body: Any = self.error.body
            assert body["type"] == "error" and body["error"]["type"] == "permission_error", body
            message = body["error"]["message"]
        else:  # an error event mid-stream: the SDK raises a plain APIError
            assert type(self.error) is openai.APIError, repr(self.error)
            assert self.error.code == "kill_switch_engaged", self.error.body
            message = self.error.message
        return self.ended_at - t0, message


def _until_all(cluster: Cluster, t0: float, probe: Callable[[int], httpx.Response],
               done: Callable[[httpx.Response], bool], timeout: float = 3.0) -> list[float]:
    """Poll every process every 20 ms until `done`; seconds from t0 for each process."""
    took: dict[int, float] = {}
    last: dict[int, httpx.Response] = {}
    deadline = t0 + timeout
    while len(took) < 3:
        for i in range(3):
            if i not in took:
                r = last[i] = probe(i)
                if done(r):
                    took[i] = time.monotonic() - t0
        if len(took) < 3:
            assert time.monotonic() < deadline, {i: (r.status_code, r.text) for i, r in last.items()}
            time.sleep(0.02)
    return [took[i] for i in range(3)]


def _refused_by(reason: str, named: str) -> Callable[[httpx.Response], bool]:
    def check(r: httpx.Response) -> bool:
        if r.status_code == 200:
            return False
        assert r.status_code == 403, r.text
        error = r.json()["error"]
        assert error["code"] == "kill_switch_engaged", error
        assert reason in error["message"] and named in error["message"], error
        return True

    return check


def _ok(r: httpx.Response) -> bool:
    if r.status_code == 200:
        return True
    assert r.status_code == 403, r.text  # still the switch, nothing else
    return False


LATENCIES: dict[str, float] = {}


def _kill_and_lift(
    cluster: Cluster,
    *,
    scope: str,
    target: str,
    named: str,
    probe: Callable[[int], httpx.Response],
    stream: InFlight | None,
    unaffected: Callable[[int], httpx.Response] | None = None,
) -> None:
    reason = f"e2e {scope} stop {uuid.uuid4().hex[:6]}"
    t0 = time.monotonic()
    switch = cluster.admin(1, "POST", "/kill", {"scope": scope, "target": target, "reason": reason})
    took = _until_all(cluster, t0, probe, _refused_by(reason, named))
    LATENCIES[scope] = max(took)
    assert max(took) < 1.0, took
    if stream is not None:
        ended, message = stream.ended_with(t0)
        LATENCIES[f"{scope} stream"] = ended
        assert ended < 1.0, ended
        assert reason in message and named in message and "kill switch" in message, message
    if unaffected is not None:
        for i in range(3):
            assert unaffected(i).status_code == 200
    t1 = time.monotonic()
    cluster.admin(2, "DELETE", f"/kill/{switch['id']}")
    lifted = _until_all(cluster, t1, probe, _ok)
    assert max(lifted) < 1.0, lifted


def test_kill_switch_on_a_key_reaches_every_process_and_ends_its_stream(cluster: Cluster) -> None:
    key, prefix = cluster.new_key(limits={"max_concurrent": 10})
    other, _ = cluster.new_key()
    stream = InFlight(cluster.urls[0], key, "gapstream")
    assert cluster.redis.zcard(f"{PREFIX}:c:key:{prefix}") == 1  # the stream holds a shared slot
    _kill_and_lift(
        cluster, scope="key", target=prefix, named=f"key {prefix}",
        probe=lambda i: cluster.chat(i, key), stream=stream, unaffected=lambda i: cluster.chat(i, other),
    )
    _eventually(lambda: cluster.redis.zcard(f"{PREFIX}:c:key:{prefix}") == 0)  # ... and the ended stream freed it
    print(f"\nkill switch latency (s): {LATENCIES}")


def test_kill_switch_on_a_model(cluster: Cluster) -> None:
    stream = InFlight(cluster.urls[2], ADMIN_KEY, "gapstream")
    _kill_and_lift(
        cluster, scope="model", target="gapstream", named="model gapstream",
        probe=lambda i: cluster.chat(i, ADMIN_KEY, "gapstream"), stream=stream,
        unaffected=lambda i: cluster.chat(i, ADMIN_KEY, "fast"),
    )


def test_kill_switch_on_a_provider(cluster: Cluster) -> None:
    key, _ = cluster.new_key()
    stream = InFlight(cluster.urls[1], key, "gapstream")
    _kill_and_lift(
        cluster, scope="provider", target="oai", named="provider oai",
        probe=lambda i: cluster.chat(i, key, "fast"), stream=stream,
        unaffected=lambda i: cluster.chat(i, key, "claude"),
    )


def test_kill_switch_stops_a_stream_still_waiting_for_its_first_byte(cluster: Cluster, fake: FakeProvider) -> None:
    key, prefix = cluster.new_key()
    ended: dict[str, Any] = {}

    def run() -> None:
        try:
            with openai.OpenAI(base_url=cluster.urls[2] + "/v1", api_key=key, max_retries=0) as oc:
                for _ in oc.chat.completions.create(
                    model="latestream", messages=[{"role": "user", "content": LONG}], stream=True
                ):
                    pass
        except Exception as exc:
            ended["error"] = exc
        finally:
            ended["at"] = time.monotonic()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while not any(r.json.get("model") == "fake-slow-2-gap-0.1" for r in fake.requests):  # admitted, upstream
        assert time.monotonic() < deadline, "the stream never reached the upstream"
        time.sleep(0.01)
    reason = f"stop it {uuid.uuid4().hex[:6]}"
    t0 = time.monotonic()
    switch = cluster.admin(0, "POST", "/kill", {"scope": "key", "target": prefix, "reason": reason})
    thread.join(5)
    assert not thread.is_alive()
    LATENCIES["key, stream before its first byte"] = ended["at"] - t0
    assert ended["at"] - t0 < 1.0, ended
    error = ended.get("error")
    assert isinstance(error, openai.PermissionDeniedError), repr(error)
    assert error.code == "kill_switch_engaged" and reason in error.message and f"key {prefix}" in error.message
    cluster.admin(1, "DELETE", f"/kill/{switch['id']}")


@pytest.mark.parametrize("scope", ["user", "team", "agent"])
def test_kill_switch_on_a_principal(cluster: Cluster, scope: str) -> None:
    name = f"{scope}-{uuid.uuid4().hex[:8]}"
    if scope == "agent":
        cluster.admin(0, "POST", "/agents", {
            "name": name, "owner": "alice@example.com", "purpose": "e2e", "risk_tier": "low", "allowed_models": ["fast"],
        })
    else:
        cluster.admin(0, "POST", f"/{scope}s", {"name": name})
    key, _ = cluster.new_key(**{scope: name})
    other, _ = cluster.new_key()
    _kill_and_lift(
        cluster, scope=scope, target=name, named=f"{scope} {name}",
        probe=lambda i: cluster.chat(i, key), stream=None, unaffected=lambda i: cluster.chat(i, other),
    )


def test_global_kill_switch_with_the_cli(cluster: Cluster) -> None:
    key, _ = cluster.new_key()
    stream = InFlight(cluster.urls[0], key, "gapclaude", dialect="anthropic")
    reason = f"incident {uuid.uuid4().hex[:6]}"
    done = cluster.cli("kill", "set", "global", "--reason", reason)
    t0 = time.monotonic()
    assert done.returncode == 0, done.stderr
    took = _until_all(cluster, t0, lambda i: cluster.chat(i, ADMIN_KEY, "claude"), _refused_by(reason, "everything"))
    LATENCIES["global (after the CLI returned)"] = max(took)
    assert max(took) < 1.0, took
    ended, message = stream.ended_with(t0)
    assert ended < 1.0 and reason in message, (ended, message)
    for i in range(3):  # every principal, the operator included
        assert _refused_by(reason, "everything")(cluster.chat(i, key, "fast"))
    lifted = cluster.cli("kill", "lift", "global")
    assert lifted.returncode == 0, lifted.stderr
    t1 = time.monotonic()
    assert max(_until_all(cluster, t1, lambda i: cluster.chat(i, key, "fast"), _ok)) < 1.0
    print(f"\nkill switch latency (s): {LATENCIES}")


def test_the_cluster_reports_healthy(cluster: Cluster) -> None:
    for client in cluster.clients:
        assert client.get("/healthz").json() == {"status": "ok", "limits": "up", "control_plane": "up", "audit": "up"}
        metrics = client.get("/metrics").text
        assert re.search(r"^lockgate_limiter_up 1\.0$", metrics, re.M)
        assert re.search(r"^lockgate_control_plane_up 1\.0$", metrics, re.M)


# --- Redis unreachable ------------------------------------------------------------------


@pytest.mark.parametrize("fail_open", [False, True], ids=["fail-closed", "fail-open"])
def test_redis_unreachable(fake: FakeProvider, tmp_path: Path, fail_open: bool) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"
    extra = "\n[access]\nrefresh_interval = 0.05\n" + ("fail_open = true\n" if fail_open else "")
    text = gateway_config(fake.url, extra).replace("[gateway]\n", f'[gateway]\nredis = "{closed}"\n', 1)
    srv = start_server(text, tmp_path)
    try:
        with httpx.Client(base_url=srv.url, timeout=10) as client:
            auth = {"authorization": f"Bearer {ADMIN_KEY}"}
            limited = client.post("/admin/keys", headers=auth, json={"name": "limited", "limits": {"rpm": 100}}).json()
            free = client.post("/admin/keys", headers=auth, json={"name": "free"}).json()
            body = {"model": "fast", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
            deadline = time.monotonic() + 5
            while client.get("/v1/models", headers={"authorization": f"Bearer {free['key']}"}).status_code != 200:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            for _ in range(3):
                r = client.post("/v1/chat/completions", json=body, headers={"authorization": f"Bearer {limited['key']}"})
                if fail_open:
                    assert r.status_code == 200, r.text
                else:
                    assert r.status_code == 503, r.text
                    assert r.json()["error"]["code"] == "limits_unavailable"
                    assert r.headers["retry-after"] == "1"
            # a key with no limits needs no counters
            r = client.post("/v1/chat/completions", json=body, headers={"authorization": f"Bearer {free['key']}"})
            assert r.status_code == 200, r.text
            ar = client.post(
                "/v1/messages", json={"model": "claude", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
                headers={"x-api-key": limited["key"], "anthropic-version": "2023-06-01"},
            )
            if fail_open:
                assert ar.status_code == 200, ar.text
            else:
                assert ar.status_code == 503 and ar.json()["error"]["type"] == "overloaded_error", ar.text
            assert client.get("/healthz").json() == {"status": "degraded", "limits": "down", "control_plane": "up", "audit": "up"}
            metrics = client.get("/metrics").text
            assert re.search(r"^lockgate_limiter_up 0\.0$", metrics, re.M), metrics
            assert re.search(r"^lockgate_control_plane_up 1\.0$", metrics, re.M)
    finally:
        srv.stop()


class CuttableProxy:
    """A TCP proxy to Redis that can be cut (every connection closed, new ones closed at
    once: Redis is unreachable) and restored."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = int(self.listener.getsockname()[1])
        self.up = True
        self.closed = False
        self.lock = threading.Lock()
        self.socks: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self.up:
                conn.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                conn.close()
                continue
            conn.settimeout(None)
            upstream.settimeout(None)
            with self.lock:
                self.socks += [conn, upstream]
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.up = False
        with self.lock:
            socks, self.socks = self.socks, []
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self.closed = True
        self.cut()
        self.thread.join(2)
        self.listener.close()


def test_a_redis_outage_shows_in_health_and_recovery_too(fake: FakeProvider, tmp_path: Path) -> None:
    target = urlsplit(redis_url(REDIS_DB))
    proxy = CuttableProxy((target.hostname or "127.0.0.1", target.port or 6379))
    url = f"redis://127.0.0.1:{proxy.port}/{REDIS_DB}"
    text = gateway_config(fake.url, "\n[access]\nrefresh_interval = 0.05\n").replace(
        "[gateway]\n", f'[gateway]\nredis = "{url}"\n', 1
    )
    srv = start_server(text, tmp_path)
    try:
        with httpx.Client(base_url=srv.url, timeout=10) as client:
            auth = {"authorization": f"Bearer {ADMIN_KEY}"}
            limited = client.post("/admin/keys", headers=auth, json={"name": "limited", "limits": {"rpm": 1000}}).json()
            body = {"model": "fast", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}

            def chat() -> httpx.Response:
                return client.post("/v1/chat/completions", json=body, headers={"authorization": f"Bearer {limited['key']}"})

            deadline = time.monotonic() + 5
            while (r := chat()).status_code == 401:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            assert r.status_code == 200, r.text
            assert client.get("/healthz").json()["limits"] == "up"

            proxy.cut()
            r = chat()
            assert r.status_code == 503 and r.json()["error"]["code"] == "limits_unavailable", r.text
            assert client.get("/healthz").json() == {"status": "degraded", "limits": "down", "control_plane": "up", "audit": "up"}
            assert "\nlockgate_limiter_up 0.0\n" in client.get("/metrics").text

            proxy.up = True  # Redis is back: the gateway notices without any request
            deadline = time.monotonic() + 3
            while client.get("/healthz").json()["limits"] != "up":
                assert time.monotonic() < deadline, "the limiter never noticed that Redis was back"
                time.sleep(0.05)
            assert "\nlockgate_limiter_up 1.0\n" in client.get("/metrics").text
            assert chat().status_code == 200
    finally:
        srv.stop()
        proxy.close()
