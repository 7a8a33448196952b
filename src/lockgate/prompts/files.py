"""Prompts as code: one TOML file a prompt (`NAME.toml`), read with `tomllib` and
written with our small writer.

    # support-reply.toml
    description = "First answer to a support ticket"
    model = "fast"

    [params]
    temperature = 0.2

    [variables]
    customer = "string"
    tier = { type = "string", default = "free" }

    [[messages]]
    role = "system"
    content = "You are a support agent for ACME. Customer tier: {{ tier }}."

    [[messages]]
    role = "user"
    content = "Hello, I am {{ customer }}."

The prompt's name is the file's stem, or its `name` key. TOML, not YAML: the
standard library reads it, it has no implicit typing surprises, and multi-line
strings keep a template exactly as written. `pull` writes the canonical form, so
pull-then-push creates no version, and a push only creates versions for files whose
content (hashed in canonical form, see `spec.py`) changed.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from lockgate.errors import InvalidRequest
from lockgate.prompts.spec import check_prompt_name
from lockgate.prompts.toml_writer import dumps

__all__ = ["SUFFIX", "dumps_prompt", "read_prompt_dir", "write_prompt"]

SUFFIX = ".toml"
_ORDER = ("description", "kind", "model", "template", "params", "variables", "response_schema", "messages")


def dumps_prompt(name: str, content: dict[str, Any]) -> str:
    """A prompt file's text for a version's canonical content."""
    data: dict[str, Any] = {"name": name}
    for key in _ORDER:
        value = content.get(key)
        if key == "kind" and value == "chat":
            continue  # the default
        if key == "variables" and isinstance(value, dict):
            value = {n: _short(v) for n, v in value.items()}  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]
        if key in ("messages", "params", "variables") and not value:
            continue  # empty: the default
        if value is not None:
            data[key] = value
    return dumps(data)


def _short(variable: dict[str, Any]) -> Any:
    """`{type = "string"}` is written `"string"`."""
    return variable["type"] if set(variable) == {"type"} else variable


def write_prompt(directory: Path, name: str, content: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}{SUFFIX}"
    path.write_text(dumps_prompt(name, content), encoding="utf-8")
    return path


def read_prompt_dir(directory: Path) -> dict[str, dict[str, Any]]:
    """name -> the file's content (without `name`), for every `*.toml` in `directory`
    (not its subfolders); InvalidRequest naming the file on a problem."""
    if not directory.is_dir():
        raise InvalidRequest(f"{directory}: not a folder")
    found: dict[str, dict[str, Any]] = {}
    where: dict[str, Path] = {}
    for path in sorted(directory.glob(f"*{SUFFIX}")):
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidRequest(f"{path}: cannot read: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise InvalidRequest(f"{path}: invalid TOML: {exc}") from None
        name = data.pop("name", path.stem)
        if not isinstance(name, str):
            raise InvalidRequest(f"{path}: name must be a string")
        check_prompt_name(name, f"{path}: name")
        if name in found:
            raise InvalidRequest(f"{path}: prompt {name!r} is also defined in {where[name]}")
        found[name], where[name] = data, path
    return found
