"""Shared fixtures: a fake upstream over real HTTP, lockgate as a real process, and
lockgate in-process (ASGI) for app tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lockgate.testing import FakeProvider

ADMIN_KEY = "sk-admin-test-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as provider:
        yield provider


@pytest.fixture(autouse=True)
def _reset_fake(request: pytest.FixtureRequest) -> None:
    if "fake" in request.fixturenames:
        request.getfixturevalue("fake").reset()


class Server:
    def __init__(self, proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.proc = proc
        self.url = url
        self.log = log

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_server(config_text: str | None, tmp: Path, env: dict[str, str] | None = None,
                 ready_timeout: float = 30.0) -> Server:
    port = free_port()
    args = [sys.executable, "-m", "lockgate", "serve", "--port", str(port)]
    if config_text is not None:
        cfg = tmp / "lockgate.toml"
        cfg.write_text(config_text)
        args += ["--config", str(cfg)]
    log = tmp / f"server-{port}.log"
    full_env = {**os.environ, "LOCKGATE_ADMIN_KEY": ADMIN_KEY, **(env or {})}
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=full_env, cwd=tmp)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"lockgate exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return Server(proc, url, log)
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"lockgate did not become ready:\n{log.read_text()}")


def gateway_config(fake_url: str, extra: str = "") -> str:
    return f"""
[gateway]
admin_key = "env::LOCKGATE_ADMIN_KEY"

[routing]
backoff_base = 0.01
backoff_max = 0.05
breaker_failures = 3
breaker_cooldown = 1.0

[providers.oai]
type = "openai"
base_url = "{fake_url}/v1"

[providers.ant]
type = "anthropic"
base_url = "{fake_url}"

[providers.az]
type = "azure_openai"
base_url = "{fake_url}"
api_version = "2024-10-21"

[models.fast]
routes = [ {{ provider = "oai", model = "gpt-4o-mini" }} ]
price = {{ input_per_mtok = 0.15, output_per_mtok = 0.60 }}

[models.claude]
routes = [ {{ provider = "ant", model = "claude-3-5-haiku-latest" }} ]

[models.azure]
routes = [ {{ provider = "az", model = "my-deployment" }} ]

[models.embed]
routes = [ {{ provider = "oai", model = "text-embedding-3-small" }} ]
{extra}
"""


@pytest.fixture(scope="session")
def server(fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("server")
    srv = start_server(gateway_config(fake.url, EXTRA_MODELS.format(url=fake.url)), tmp)
    yield srv
    srv.stop()


# Models whose routes script the fake through its model-name directives.
EXTRA_MODELS = """
[models.flaky]
routes = [ {{ provider = "oai", model = "fake-fail-503" }} ]
fallbacks = ["fast"]

[models.ratelimited]
routes = [ {{ provider = "oai", model = "fake-fail-429" }} ]
retries = 0

[models.rejected]
routes = [ {{ provider = "oai", model = "fake-400" }} ]
fallbacks = ["fast"]

[models.cut]
routes = [ {{ provider = "oai", model = "fake-cut-3" }} ]

[models.dropped]
routes = [ {{ provider = "oai", model = "fake-drop" }} ]
retries = 1
fallbacks = ["claude"]

[models.slow]
routes = [ {{ provider = "oai", model = "fake-slow-3" }} ]
timeout = 0.3
retries = 1
fallbacks = ["fast"]

[models.slowonly]
routes = [ {{ provider = "oai", model = "fake-slow-3" }} ]
timeout = 0.2
retries = 0

[models.split]
routes = [ {{ provider = "oai", model = "gpt-4o-mini", weight = 3 }}, {{ provider = "ant", model = "claude-3-5-haiku-latest", weight = 1 }} ]
"""
