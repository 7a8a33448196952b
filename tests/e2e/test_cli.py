"""The CLI contract: --version, config check, serve defaults."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import lockgate


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lockgate", *args], capture_output=True, text=True, cwd=cwd, timeout=60)


def test_version() -> None:
    r = run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"lockgate {lockgate.__version__}"


def test_config_check_ok(tmp_path: Path) -> None:
    cfg = tmp_path / "lockgate.toml"
    cfg.write_text('[providers.p]\ntype = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n\n[models.m]\nroutes = [ { provider = "p", model = "x" } ]\n')
    r = run("config", "check", str(cfg))
    assert r.returncode == 0, r.stderr
    assert "ok" in r.stdout


def test_config_check_names_key_and_line(tmp_path: Path) -> None:
    cfg = tmp_path / "lockgate.toml"
    cfg.write_text(
        "[gateway]\nport = 4000\n\n[providers.p]\ntype = \"openai\"\nbase_urll = \"http://x\"\n"
        "\n[models.m]\nroutes = [ { provider = \"missing\", model = \"x\" } ]\n"
    )
    r = run("config", "check", str(cfg))
    assert r.returncode == 2
    assert f"{cfg}:6: providers.p.base_urll: unknown key" in r.stderr


def test_config_check_names_unknown_provider(tmp_path: Path) -> None:
    cfg = tmp_path / "lockgate.toml"
    cfg.write_text('[models.m]\nroutes = [ { provider = "missing", model = "x" } ]\n')
    r = run("config", "check", str(cfg))
    assert r.returncode == 2
    assert "models.m.routes[0].provider: unknown provider 'missing'" in r.stderr


def test_config_check_rejects_literal_secret(tmp_path: Path) -> None:
    cfg = tmp_path / "lockgate.toml"
    cfg.write_text('[providers.p]\ntype = "openai"\napi_key = "sk-live-secret"\n')
    r = run("config", "check", str(cfg))
    assert r.returncode == 2
    assert "providers.p.api_key" in r.stderr and ":3:" in r.stderr
    assert "sk-live-secret" not in r.stderr


def test_config_check_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[gateway\n")
    assert run("config", "check", str(cfg)).returncode == 2
    missing = run("config", "check", str(tmp_path / "none.toml"))
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_config_show_pipeline(tmp_path: Path) -> None:
    r = run("config", "show", "--pipeline", cwd=tmp_path)
    assert r.returncode == 0
    assert [line.split(". ", 1)[1] for line in r.stdout.splitlines()] == [
        "record", "audit", "trace", "usage", "identify", "resolve", "kill switch", "authorize", "limits", "route+provider"
    ]


def test_unknown_command_exits_2() -> None:
    assert run("frobnicate").returncode == 2
