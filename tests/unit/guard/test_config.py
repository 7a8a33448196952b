"""`[guardrails]` validation and the pipeline it builds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from lockgate.cli.main import cli
from lockgate.config.loader import parse_config
from lockgate.errors import ConfigError


def problems(guardrails: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config({"guardrails": guardrails}, {})
    return info.value.problems


@pytest.mark.parametrize(("guardrails", "expected"), [
    ({"input": [{"scanner": "nope"}]}, "guardrails.input[0]: scanner: unknown scanner 'nope'"),
    ({"input": [{"scanner": "pii", "action": "shred"}]}, "guardrails.input[0].action: Input should be"),
    ({"input": [{"scanner": "pii", "threshold": -0.1}]}, "guardrails.input[0].threshold"),
    ({"input": [{"scanner": "pii", "entities": ["SHOE_SIZE"]}]}, "entities: unknown entity 'SHOE_SIZE'"),
    ({"input": [{"scanner": "injection", "action": "redact"}]}, "action: scanner 'injection' cannot redact"),
    ({"input": [{"scanner": "length", "max_chars": 5}]}, "input[0].scanner: 'length' is an output scanner"),
    ({"input": [{"scanner": "denied_terms", "termz": ["x"]}]}, "termz: unknown option for scanner 'denied_terms'"),
    ({"output": [{"scanner": "length"}]}, "max_chars: Field required for scanner 'length'"),
    ({"output": [{"scanner": "pii", "where": ["user"]}]}, "output[0].where: 'user' is not an output text"),
    ({"output": [{"scanner": "pii", "action": "redact", "restore": True}]}, "restore"),
    ({"input": [{"scanner": "pii", "restore": True}]}, "restore: only a redact action"),
    ({"policies": {"x": {"input": [{"scanner": "pii"}]}}}, "a policy needs at least one selector"),
    ({"input": [{"scanner": "pii", "entities": ["PERSON"]}]}, "PERSON needs a named-entity model"),
    ({"ner_model": "en_core_web_nonexistent"}, "is not installed"),
])
def test_bad_guardrails_are_refused_naming_the_key(guardrails: dict[str, Any], expected: str) -> None:
    assert any(expected in p for p in problems(guardrails)), problems(guardrails)


def test_config_check_exits_2_naming_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "lockgate.toml"
    cfg.write_text('[guardrails]\ninput = [ { scanner = "secrets", action = "block", threshold = 3 } ]\n')
    result = CliRunner().invoke(cli, ["config", "check", str(cfg)])
    assert result.exit_code == 2
    assert "guardrails.input[0].threshold" in result.output


def test_no_guardrails_no_stage() -> None:
    from lockgate.app import pipeline_stage_names

    loaded = parse_config({}, {})
    assert "guardrails" not in pipeline_stage_names(loaded)
    assert not loaded.config.guardrails.configured


async def test_printed_pipeline_is_the_built_one_with_guardrails(tmp_path: Path) -> None:
    from lockgate.app import create_app, pipeline_stage_names

    loaded = parse_config({
        "gateway": {"database": f"sqlite:///{tmp_path}/db.sqlite"},
        "guardrails": {"input": [{"scanner": "secrets"}]},
    }, {})
    app = create_app(loaded)
    async with app.router.lifespan_context(app):
        built = app.state.gateway.pipeline.describe()
    names = pipeline_stage_names(loaded)
    assert built == names
    assert names.index("guardrails") == names.index("limits") + 1


def test_cli_scanner_names_match_the_evaluator() -> None:
    from lockgate.cli.guard import SCANNERS as CLI_SCANNERS
    from lockgate.guard.evaluate import SCANNERS

    assert CLI_SCANNERS == SCANNERS
