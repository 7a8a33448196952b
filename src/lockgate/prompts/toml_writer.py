"""A small TOML writer for prompt files (reading is the standard library's `tomllib`).

It writes what a prompt file holds: strings (multi-line ones as `\"\"\"` blocks, so a
template reads as it was written), numbers, booleans, arrays, tables and arrays of
tables. Keys are written in the order given, top-level values before tables. `None`
values are left out (TOML has no null). `tomllib.loads(dumps(d)) == d` for every such
`d` (a unit test checks it).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, cast

__all__ = ["dumps"]

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def dumps(data: Mapping[str, Any]) -> str:
    lines: list[str] = []
    _table(lines, [], data)
    return "\n".join(lines).strip("\n") + "\n"


def _table(lines: list[str], path: list[str], data: Mapping[str, Any]) -> None:
    tables: list[tuple[str, Any]] = []
    for key, value in data.items():
        if value is None:
            continue
        if _is_table(value) or _is_table_array(value):
            tables.append((key, value))
        else:
            lines.append(f"{_key(key)} = {_value(value, multiline=True)}")
    for key, value in tables:
        sub = [*path, key]
        header = ".".join(_key(k) for k in sub)
        if isinstance(value, Mapping):
            table = cast(Mapping[str, Any], value)
            if _has_plain(table):
                lines += ["", f"[{header}]"]
            _table(lines, sub, table)
        else:
            for item in cast(list[Mapping[str, Any]], value):
                lines += ["", f"[[{header}]]"]
                _table(lines, sub, item)


def _has_plain(data: Mapping[str, Any]) -> bool:
    """Whether a table holds values of its own (else its header is implied by its sub-tables)."""
    return any(v is not None and not (_is_table(v) or _is_table_array(v)) for v in data.values())


def _is_table(value: Any) -> bool:
    """A non-empty mapping: written as a `[table]` (an empty one inline, as `{}`)."""
    return isinstance(value, Mapping) and len(cast(Mapping[str, Any], value)) > 0


def _is_table_array(value: Any) -> bool:
    if not isinstance(value, list):
        return False
    items = cast(list[Any], value)
    return bool(items) and all(isinstance(v, Mapping) for v in items)


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _string(key)


def _value(value: Any, *, multiline: bool = False) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _multiline(value) if multiline and "\n" in value else _string(value)
    if isinstance(value, Mapping):
        pairs = cast(Mapping[str, Any], value).items()
        items = ", ".join(f"{_key(str(k))} = {_value(v)}" for k, v in pairs if v is not None)
        return "{ " + items + " }" if items else "{}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value if v is not None) + "]"  # pyright: ignore[reportUnknownVariableType]
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _escape(char: str) -> str:
    if char in _ESCAPES:
        return _ESCAPES[char]
    if ord(char) < 0x20 or ord(char) == 0x7F:
        return f"\\u{ord(char):04x}"
    return char


def _string(text: str) -> str:
    return '"' + "".join(_escape(c) for c in text) + '"'


def _multiline(text: str) -> str:
    """A multi-line basic string; the newline right after the opening quotes is dropped
    by TOML readers, so the text starts on its own line."""
    body = "".join("\n" if c == "\n" else ("\t" if c == "\t" else _escape(c)) for c in text)
    return '"""\n' + body + '"""'
