"""Config loading: strictness, precedence, secrets, line numbers, documentation."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from lockgate.config import schema
from lockgate.config.loader import ENV_OVERRIDES, load_config, parse_config
from lockgate.errors import ConfigError

DOCS = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"


def _models() -> list[type[BaseModel]]:
    """Every section model reachable from the root `Config`, nested ones included."""
    found: list[type[BaseModel]] = []

    def walk(tp: object) -> None:
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if tp in found:
                return
            found.append(tp)
            for field in tp.model_fields.values():
                walk(field.annotation)
        for arg in typing.get_args(tp):
            walk(arg)

    walk(schema.Config)
    return [m for m in found if m is not schema.Config]


def test_every_setting_is_documented() -> None:
    text = DOCS.read_text()
    for model in _models():
        for name in model.model_fields:
            assert f"`{name}`" in text, f"{model.__name__}.{name} is not in docs/configuration.md"
    for var in ENV_OVERRIDES:
        assert f"`{var}`" in text


def test_default_config_serves_local_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    loaded = load_config(None, {})
    assert loaded.source == "<default>"
    assert list(loaded.config.models) == ["local"]
    assert loaded.config.providers["local"].type == "local"


def test_precedence_argument_over_env_over_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[gateway]\nport = 5000\nhost = \"0.0.0.0\"\n")
    assert load_config(cfg, {}).config.gateway.port == 5000
    assert load_config(cfg, {"LOCKGATE_PORT": "6000"}).config.gateway.port == 6000
    assert load_config(cfg, {"LOCKGATE_PORT": "6000"}, {"port": 7000}).config.gateway.port == 7000
    assert load_config(cfg, {}).config.gateway.host == "0.0.0.0"


def test_bad_env_override_is_reported() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({}, {"LOCKGATE_PORT": "eighty"})
    assert any("gateway.port" in p for p in info.value.problems)


def test_secrets_resolve_from_env_and_file(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("file-secret\n")
    loaded = parse_config(
        {
            "gateway": {"admin_key": "env::ADMIN"},
            "providers": {"p": {"type": "openai", "api_key": f"file::{key_file}"},
                          "q": {"type": "anthropic", "api_key": "env::UNSET"}},
        },
        {"ADMIN": "admin-secret"},
    )
    assert loaded.secret("env::ADMIN") == "admin-secret"
    assert loaded.secret(f"file::{key_file}") == "file-secret"
    assert loaded.missing_secrets == ["providers.q.api_key: env::UNSET is not set"]


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('[gateway]\nbogus = 1\n', "c.toml:2: gateway.bogus: unknown key"),
        ('[providers.p]\ntype = "nope"\n', "c.toml:1: providers.p"),
        ('[providers.p]\ntype = "openai"\napi_key = "sk-123"\n', "c.toml:3: providers.p.api_key: secrets are named"),
        ('[models.m]\nroutes = []\n', "c.toml:2: models.m.routes"),
        ('[routing]\nretries = -1\n', "c.toml:2: routing.retries"),
        ('[models.m]\nroutes = [ { provider = "p", model = "x", weight = 0 } ]\n', "models.m.routes[0].weight"),
        ('[providers.p]\ntype = "openai"\n[models.m]\nroutes = [ { provider = "p", model = "x" } ]\nfallbacks = ["m"]\n',
         "c.toml:5: models.m.fallbacks: a model cannot fall back to itself"),
    ],
)
def test_problems_name_key_and_line(tmp_path: Path, toml: str, expected: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_config(cfg, {})
    assert any(expected in p for p in info.value.problems), info.value.problems


def test_literal_secret_value_is_not_echoed(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[providers.p]\ntype = "openai"\napi_key = "sk-very-secret"\n')
    with pytest.raises(ConfigError) as info:
        load_config(cfg, {})
    assert not any("sk-very-secret" in p for p in info.value.problems)
