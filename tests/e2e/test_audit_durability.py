"""No request is answered before its audit event is durable: a gateway killed with
SIGKILL under load has lost no event of any request it answered (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from tests.conftest import ADMIN_KEY, gateway_config, start_server
from tests.e2e.access_support import open_backend

from lockgate.audit.verify import verify_database
from lockgate.testing import FakeProvider


@pytest.mark.parametrize("backend_kind", ["sqlite", "postgres"])
def test_sigkill_under_load_loses_no_answered_event(fake: FakeProvider, tmp_path: Path, backend_kind: str) -> None:
    with open_backend(backend_kind, tmp_path) as backend:
        config = gateway_config(fake.url).replace(
            'admin_key = "env::LOCKGATE_ADMIN_KEY"',
            f'admin_key = "env::LOCKGATE_ADMIN_KEY"\ndatabase = "{backend.database}"',
        )
        srv = start_server(config, tmp_path)
        answered: list[str] = []
        lock = threading.Lock()
        stop = threading.Event()

        def load() -> None:
            with httpx.Client(base_url=srv.url, headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=10) as client:
                while not stop.is_set():
                    try:
                        r = client.post("/v1/chat/completions", json={"model": "fast", "messages": [{"role": "user", "content": "x"}]})
                    except httpx.HTTPError:
                        continue  # the gateway died mid-request: not answered
                    if r.status_code == 200:
                        with lock:
                            answered.append(r.headers["x-request-id"])

        threads = [threading.Thread(target=load) for _ in range(12)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while len(answered) < 300 and time.monotonic() < deadline:
            time.sleep(0.02)
        srv.proc.send_signal(signal.SIGKILL)
        srv.proc.wait(10)
        stop.set()
        for t in threads:
            t.join(15)
        assert len(answered) >= 100, "the load did not get going"
        # On SQLite the newest events may still be in the dead gateway's journal: the
        # next `lockgate audit` command (or gateway start) stores them first.
        verified = subprocess.run(
            [sys.executable, "-m", "lockgate", "audit", "verify", "--config", str(tmp_path / "lockgate.toml")],
            capture_output=True, text=True, env={**os.environ, "LOCKGATE_ADMIN_KEY": ADMIN_KEY}, cwd=tmp_path, timeout=120,
        )
        assert verified.returncode == 0, verified.stdout + verified.stderr
        if backend_kind == "sqlite":
            assert not list(Path(backend.database.removeprefix("sqlite:///") + "-audit-journal").glob("*.journal"))
        engine = create_engine(backend.database.replace("postgresql://", "postgresql+psycopg://"))
        with engine.connect() as conn:
            stored = {row[0] for row in conn.execute(text("SELECT request_id FROM audit_events"))}
        engine.dispose()
        lost = [rid for rid in answered if rid not in stored]
        assert lost == [], f"{len(lost)} answered requests have no audit event"
        report = verify_database(backend.database)
        assert report.ok, report.problems
