"""Load `lockgate.toml`: parse, apply environment overrides, validate, resolve secrets.

Precedence for a setting: command-line argument > environment (`LOCKGATE_*`) > file >
default. Problems are collected and reported together, each naming its key and,
where the file has it, its line (`ConfigError.problems`).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from pydantic import ValidationError

from lockgate.config.schema import Config, GatewayConfig
from lockgate.errors import ConfigError

__all__ = ["ENV_OVERRIDES", "LoadedConfig", "default_config", "load_config", "parse_config"]

# Environment variables that override [gateway] keys (documented in docs/configuration.md).
ENV_OVERRIDES: dict[str, str] = {
    "LOCKGATE_HOST": "host",
    "LOCKGATE_PORT": "port",
    "LOCKGATE_DATABASE": "database",
    "LOCKGATE_REDIS": "redis",
    "LOCKGATE_MAX_BODY_BYTES": "max_body_bytes",
}

_PROVIDER_TAGS = {"openai", "azure_openai", "anthropic", "local"}


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """A validated config, the secrets it names resolved, and what could not be resolved."""

    config: Config
    source: str  # a path, or "<default>"
    secrets: Mapping[str, str] = field(default_factory=lambda: {})
    missing_secrets: list[str] = field(default_factory=lambda: [])

    def secret(self, ref: str | None) -> str | None:
        return None if ref is None else self.secrets.get(ref)


def default_config() -> dict[str, Any]:
    """The embedded default: the bundled local model, served as the model `local`."""
    return {
        "providers": {"local": {"type": "local"}},
        "models": {"local": {"routes": [{"provider": "local", "model": "smollm2"}]}},
    }


def load_config(
    path: str | Path | None,
    env: Mapping[str, str],
    overrides: Mapping[str, Any] | None = None,
) -> LoadedConfig:
    """Load from `path`; with None, `./lockgate.toml` if present, else the embedded default."""
    if path is None:
        candidate = Path("lockgate.toml")
        if not candidate.exists():
            return parse_config(default_config(), env, overrides=overrides, source="<default>")
        path = candidate
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return parse_config(data, env, overrides=overrides, source=str(path), text=text)


def parse_config(
    data: dict[str, Any],
    env: Mapping[str, str],
    *,
    overrides: Mapping[str, Any] | None = None,
    source: str = "<memory>",
    text: str | None = None,
) -> LoadedConfig:
    data = _apply_overrides(data, env, overrides or {})
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems = [_describe(err, source, text) for err in exc.errors()]
        raise ConfigError(f"{source}: invalid configuration", problems) from None
    references = config.reference_problems()
    if references:
        problems = [_describe({"loc": loc, "msg": msg}, source, text) for loc, msg in references]
        raise ConfigError(f"{source}: invalid configuration", problems)
    secrets, missing = _resolve_secrets(config, env)
    return LoadedConfig(config=config, source=source, secrets=secrets, missing_secrets=missing)


def _apply_overrides(
    data: dict[str, Any], env: Mapping[str, str], overrides: Mapping[str, Any]
) -> dict[str, Any]:
    gateway = dict(data.get("gateway") or {}) if isinstance(data.get("gateway", {}), dict) else None
    if gateway is None:
        return data  # let validation report the wrong type
    for var, key in ENV_OVERRIDES.items():
        if var in env and env[var] != "":
            gateway[key] = _coerce(key, env[var])
    for key, value in overrides.items():
        if value is not None:
            gateway[key] = value
    return {**data, "gateway": gateway}


def _coerce(key: str, value: str) -> Any:
    annotation = GatewayConfig.model_fields[key].annotation
    if annotation is int:
        try:
            return int(value)
        except ValueError:
            return value  # validation names the key
    return value


def _resolve_secrets(config: Config, env: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    refs: list[tuple[str, str]] = []
    if config.gateway.admin_key:
        refs.append(("gateway.admin_key", config.gateway.admin_key))
    for name, provider in config.providers.items():
        key = getattr(provider, "api_key", None)
        if isinstance(key, str):
            refs.append((f"providers.{name}.api_key", key))
    for section_name in type(config).model_fields:
        section = getattr(config, section_name)
        listed = getattr(section, "secret_refs", None)
        if callable(listed):
            pairs = cast("list[tuple[str, str]]", listed())
            refs += [(f"{section_name}.{where}", ref) for where, ref in pairs]
    secrets: dict[str, str] = {}
    missing: list[str] = []
    for where, ref in refs:
        kind, _, target = ref.partition("::")
        value: str | None
        if kind == "env":
            value = env.get(target) or None
        else:
            try:
                value = Path(target).read_text(encoding="utf-8").strip() or None
            except OSError:
                value = None
        if value is None:
            missing.append(f"{where}: {ref} is not set")
        else:
            secrets[ref] = value
    return secrets, missing


def _describe(err: Any, source: str, text: str | None) -> str:
    loc = _clean_loc(tuple(err.get("loc", ())))
    dotted = _dotted(loc)
    message = str(err.get("msg", "invalid"))
    if err.get("type") == "extra_forbidden":
        message = "unknown key"
    message = message.removeprefix("Value error, ")
    line = _locate(text, loc) if text else None
    where = f"{source}:{line}" if line else source
    return f"{where}: {dotted or '(top level)'}: {message}"


def _clean_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    # Pydantic puts the tag of a discriminated union in the path: providers.x.openai.key.
    if len(loc) >= 3 and loc[0] == "providers" and loc[2] in _PROVIDER_TAGS:
        return loc[:2] + loc[3:]
    return loc


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*(\"[^\"]+\"|'[^']+'|[A-Za-z0-9_.-]+)\s*=")


def _split_key(raw: str) -> list[str]:
    return [p.strip().strip("\"'") for p in raw.split(".")]


def _locate(text: str, loc: tuple[Any, ...]) -> int | None:
    """The line of `loc` in the TOML text: the key's own line if found, else its table's."""
    keys = [str(p) for p in loc if not isinstance(p, int)]
    table: list[str] = []
    best: tuple[int, int] | None = None  # (matched depth, line)
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            table = _split_key(header.group(1))
            depth = _prefix_len(table, keys)
            if depth == len(table) and (best is None or depth > best[0]):
                best = (depth, number)
            continue
        key = _KEY.match(line)
        if key:
            full = table + _split_key(key.group(1))
            depth = _prefix_len(full, keys)
            if depth == len(full) and depth > len(table) and (best is None or depth > best[0]):
                best = (depth, number)
    return best[1] if best else None


def _prefix_len(path: list[str], keys: list[str]) -> int:
    n = 0
    for a, b in zip(path, keys, strict=False):
        if a != b:
            break
        n += 1
    return n
