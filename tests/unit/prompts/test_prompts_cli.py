"""The CLI in process (click's CliRunner) with a fake quality gate: a failing gate exits 1
naming the failing metrics, an override reason is recorded, other mistakes exit 2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result
from tests.unit.prompts.conftest import FakeGate

from lockgate.cli.main import cli as root
from lockgate.cli.prompts import register
from lockgate.prompts import gate as gate_module


@pytest.fixture
def lockgate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    config = tmp_path / "lockgate.toml"
    config.write_text(
        f'[gateway]\ndatabase = "sqlite:///{tmp_path / "db.sqlite"}"\n'
        '[providers.oai]\ntype = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n'
        '[models.fast]\nroutes = [ { provider = "oai", model = "gpt-4o-mini" } ]\n'
    )
    fake = FakeGate(failing={2: ["exact_match 0.60 < 0.80", "contains 0.10 < 0.50"]})
    monkeypatch.setattr(gate_module, "find_gatekeeper", lambda **_: fake)
    group = click.Group(commands=dict(root.commands))
    register(group)
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(group, [*args, "--config", str(config)], catch_exceptions=False)

    return run


def test_gate_failure_exits_1_naming_the_metrics(lockgate: Any) -> None:
    for user in ("Hello {{ name }}", "Hi {{ name }}"):
        result = lockgate("prompts", "create", "greet", "--model", "fast", "--user", user, "--var", "name:string",
                          "--param", "temperature=0.3", "-m", "a message", "--author", "ada")
        assert result.exit_code == 0, result.output
    assert lockgate("prompts", "promote", "greet", "1", "--label", "production").exit_code == 0
    refused = lockgate("prompts", "promote", "greet", "2", "--label", "production")
    assert refused.exit_code == 1
    assert "quality gate failed" in refused.stderr
    assert "failing: exact_match 0.60 < 0.80" in refused.stderr and "failing: contains 0.10 < 0.50" in refused.stderr
    forced = lockgate("prompts", "label", "set", "greet", "production", "2", "--override-reason", "reviewed by hand")
    assert forced.exit_code == 0 and "FAILED, overridden: reviewed by hand" in forced.output
    history = json.loads(lockgate("prompts", "label", "list", "greet", "--json").output)
    assert history["history"][0]["reason"] == "reviewed by hand" and history["history"][0]["gate"]["passed"] is False
    assert lockgate("prompts", "label", "remove", "greet", "production").exit_code == 0


def test_user_mistakes_exit_2(lockgate: Any) -> None:
    bad = lockgate("prompts", "create", "greet", "--model", "fast", "--user", "Hello {{ name }}")
    assert bad.exit_code == 2 and "uses name, which is not declared" in bad.stderr
    assert lockgate("prompts", "show", "nope").exit_code == 2
    assert lockgate("prompts", "push").exit_code == 2  # no folder, none configured
    unknown = lockgate("prompts", "create", "x", "--model", "gpt-9", "--user", "hi")
    assert unknown.exit_code == 0 and "warning: model 'gpt-9' is not in this config" in unknown.stderr
    arm = lockgate("experiments", "create", "e", "--prompt", "x", "--arm", "a:lots", "--arm", "b:1")
    assert arm.exit_code == 2 and "is not a number" in arm.output


def test_render_preview_and_experiment_commands(lockgate: Any) -> None:
    lockgate("prompts", "create", "greet", "--model", "fast", "--system", "Be brief with {{ name }}.", "--var", "name")
    preview = lockgate("prompts", "render", "greet", "--vars", '{"name": "Ada"}')
    assert preview.exit_code == 0 and preview.output == "[system]\nBe brief with Ada.\n"
    lockgate("prompts", "create", "greet", "--model", "fast", "--system", "Be warm with {{ name }}.", "--var", "name")
    created = lockgate("experiments", "create", "warmth", "--prompt", "greet", "--arm", "a:1:version=1",
                       "--arm", "b:1:version=2:model=fast", "--sticky", "session")
    assert created.exit_code == 0, created.output
    assert "prompt:greet@production split a 1, b 1, sticky by session" in created.output
    scored = lockgate("experiments", "score", "req-1", "helpful", "0.5")
    assert scored.exit_code == 0 and "req-1: helpful = 0.5" in scored.output
    report = lockgate("experiments", "report", "warmth")
    assert report.exit_code == 0 and "0 requests" in report.output and "not enough traffic" in report.output
    assert "stopped" in lockgate("experiments", "stop", "warmth").output
