"""Support for the access-control e2e tests: a control-plane backend (a SQLite file, or
a fresh PostgreSQL schema with Redis), `lockgate serve` on it, the admin API, the CLI,
and polling for changes that propagate (refresh interval, usage flushes).

PostgreSQL comes from LOCKGATE_TEST_POSTGRES_URL and Redis from LOCKGATE_TEST_REDIS_URL
(defaults: the local test services); the PostgreSQL backend is skipped only when they
are unreachable and the variables are unset.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
import redis
from psycopg import sql
from sqlalchemy import make_url
from tests.conftest import ADMIN_KEY, Server, gateway_config, start_server

__all__ = [
    "BACKENDS",
    "Backend",
    "Gateway",
    "eventually",
    "gateways",
    "open_backend",
    "postgres_base",
    "redis_url",
    "start_gateway",
]

T = TypeVar("T")

PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_DEFAULT = "redis://127.0.0.1:6379/0"
BACKENDS = ["sqlite", "postgres"]
MESSAGES = [{"role": "user", "content": "hello"}]


@dataclass(frozen=True)
class Backend:
    name: str
    database: str
    redis: str | None


def postgres_base() -> str:
    """The test PostgreSQL URL; skips when unreachable unless the variable is set."""
    configured = os.environ.get("LOCKGATE_TEST_POSTGRES_URL")
    url = make_url(configured or PG_DEFAULT).set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        if configured:
            pytest.fail(f"LOCKGATE_TEST_POSTGRES_URL is set but unreachable: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {PG_DEFAULT}")
    return url


def redis_url(db: int | None = None) -> str:
    """The test Redis URL (on database `db` when given); skips when unreachable unless
    the variable is set."""
    configured = os.environ.get("LOCKGATE_TEST_REDIS_URL")
    url = configured or REDIS_DEFAULT
    if db is not None:
        url = urlunsplit(urlsplit(url)._replace(path=f"/{db}"))
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        if configured:
            pytest.fail(f"LOCKGATE_TEST_REDIS_URL is set but unreachable: {exc}")
        pytest.skip(f"Redis not reachable at {REDIS_DEFAULT}")
    finally:
        client.close()
    return url


@contextlib.contextmanager
def open_backend(kind: str, tmp: Path) -> Generator[Backend]:
    """SQLite: a file in `tmp`. PostgreSQL: a fresh schema, dropped afterwards, and Redis."""
    if kind == "sqlite":
        yield Backend("sqlite", f"sqlite:///{tmp / 'lockgate.db'}", None)
        return
    redis_address = redis_url()
    with postgres_schema("lge2e") as url:
        yield Backend("postgres", url, redis_address)


@contextlib.contextmanager
def postgres_schema(prefix: str) -> Generator[str]:
    """A fresh PostgreSQL schema (named `prefix_<random>`), dropped afterwards; its URL."""
    base = postgres_base()
    schema = f"{prefix}_{uuid.uuid4().hex}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        yield make_url(base).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False
        )
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def eventually(check: Callable[[], T | None], *, timeout: float = 6.0, interval: float = 0.05,
               what: str = "condition") -> T:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Gateway:
    """One `lockgate serve` process on a backend, with helpers for the admin API, the
    gateway API and the CLI (which reads the same config file)."""

    def __init__(self, server: Server, config: Path, backend: Backend) -> None:
        self.server = server
        self.url = server.url
        self.config = config
        self.backend = backend
        self.http = httpx.Client(base_url=server.url, timeout=30)

    def close(self) -> None:
        self.http.close()
        self.server.stop()

    # --- admin API -------------------------------------------------------------------

    def admin(self, method: str, path: str, *, key: str | None = ADMIN_KEY, **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}) or {})
        if key is not None:
            headers["authorization"] = f"Bearer {key}"
        return self.http.request(method, "/admin" + path, headers=headers, **kw)

    def admin_ok(self, method: str, path: str, *, status: int = 200, **kw: Any) -> Any:
        r = self.admin(method, path, **kw)
        assert r.status_code == status, f"{method} {path}: {r.status_code} {r.text}"
        return r.json()

    def agent(self, name: str, models: list[str], *, risk: str = "low", **extra: Any) -> dict[str, Any]:
        body = {"name": name, "owner": "alice@acme.example", "purpose": f"e2e {name}", "risk_tier": risk,
                "allowed_models": models, **extra}
        return self.admin_ok("POST", "/agents", status=201, json=body)

    def key(self, name: str, **extra: Any) -> tuple[str, dict[str, Any]]:
        data = self.admin_ok("POST", "/keys", status=201, json={"name": name, **extra})
        return data["key"], data

    # --- gateway API -----------------------------------------------------------------

    def chat(self, credential: str | None, model: str, headers: dict[str, str] | None = None) -> httpx.Response:
        h = dict(headers or {})
        if credential is not None:
            h["authorization"] = f"Bearer {credential}"
        return self.http.post("/v1/chat/completions", headers=h,
                              json={"model": model, "messages": MESSAGES, "max_tokens": 20})

    def wait_status(self, credential: str | None, model: str, status: int, *,
                    headers: dict[str, str] | None = None, timeout: float = 6.0) -> httpx.Response:
        """Poll until a chat request answers `status` (a change has reached the gateway)."""
        last: list[httpx.Response] = []

        def check() -> httpx.Response | None:
            r = self.chat(credential, model, headers)
            last[:] = [r]
            return r if r.status_code == status else None

        try:
            return eventually(check, timeout=timeout, what=f"{model} -> {status}")
        except AssertionError:
            r = last[0]
            raise AssertionError(f"{model}: wanted {status}, still {r.status_code} {r.text}") from None

    # --- CLI -------------------------------------------------------------------------

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.cli_many(args)[0]

    def cli_many(self, *commands: tuple[str, ...]) -> list[subprocess.CompletedProcess[str]]:
        """Run independent `lockgate ... --config PATH` commands at once (each is a
        Python start-up: running them together keeps the suite fast)."""
        env = {**os.environ, "LOCKGATE_ADMIN_KEY": ADMIN_KEY}
        procs: list[tuple[list[str], subprocess.Popen[str]]] = []
        try:
            for args in commands:
                argv = [sys.executable, "-m", "lockgate", *args, "--config", str(self.config)]
                procs.append((argv, subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                                     text=True, env=env, cwd=self.config.parent)))
            results: list[subprocess.CompletedProcess[str]] = []
            for argv, proc in procs:
                out, err = proc.communicate(timeout=60)
                results.append(subprocess.CompletedProcess(argv, proc.returncode, out, err))
            return results
        finally:
            for _, proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(5)


def access_config(fake_url: str, backend: Backend, access: str = "") -> str:
    gateway = f'database = "{backend.database}"\n'
    if backend.redis:
        gateway += f'redis = "{backend.redis}"\n'
    text = gateway_config(fake_url).replace("[gateway]\n", "[gateway]\n" + gateway, 1)
    return text + f"\n[access]\nrefresh_interval = 0.1\n{access}\n"


@contextlib.contextmanager
def gateways(fake_url: str, backend: Backend, specs: list[dict[str, Any]]) -> Generator[list[Gateway]]:
    """Several gateways on one backend (each spec: `start_gateway`'s `tmp`, `access`,
    `files`), started at once and all stopped at the end."""
    with ThreadPoolExecutor(len(specs)) as pool:
        futures = [pool.submit(start_gateway, fake_url, backend, **spec) for spec in specs]
        wait(futures)
    started = [f.result() for f in futures if f.exception() is None]
    try:
        for f in futures:
            f.result()  # raise the first start-up failure, if any
        yield started
    finally:
        for g in started:
            g.close()


def start_gateway(fake_url: str, backend: Backend, tmp: Path, access: str = "",
                  files: dict[str, str] | None = None) -> Gateway:
    """`lockgate serve` with `[access]` settings `access`; `files` are written next to
    the config (e.g. policy files it names)."""
    for name, text in (files or {}).items():
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    server = start_server(access_config(fake_url, backend, access), tmp)
    return Gateway(server, tmp / "lockgate.toml", backend)
