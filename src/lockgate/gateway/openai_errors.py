"""Errors in the OpenAI dialect: the error body, and request validation told the OpenAI way.

`error_body` renders any `LockgateError` as OpenAI's `{"error": {...}}` object.
`decode_openai` decodes a body into a wire Struct and words every failure as OpenAI
does; `check_range` words out-of-range numbers the same way.

`SchemaProblem.parse` reads a `msgspec.ValidationError` into its parts (what went
wrong, and where). It knows nothing of a dialect, so the Anthropic dialect uses it
too; `openai_problem` words one the way OpenAI's API does, e.g.
"Invalid type for 'messages[0].content': expected one of a string or an array, but
got an integer instead." (param `messages[0].content`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from types import MappingProxyType
from typing import Any, Literal, NamedTuple, TypeVar

import msgspec

from lockgate.errors import InvalidRequest, LockgateError

__all__ = [
    "JSON_PARSE_MESSAGE",
    "Path",
    "SchemaProblem",
    "check_range",
    "decode_openai",
    "error_body",
    "error_payload",
    "openai_path",
    "openai_problem",
    "openai_supported_values",
]

Path = tuple[str | int, ...]
T = TypeVar("T")

JSON_PARSE_MESSAGE = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
    "sent was not valid JSON. If you have trouble figuring out how to fix this, please "
    "contact the administrator of this gateway.)"
)

_AT = re.compile(r"^(?P<head>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_STEP = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")
_EXPECTED = re.compile(r"^Expected `(?P<expected>[^`]+)`, got `(?P<got>[^`]+)`$")
_FIELD = re.compile(
    r"^Object (?P<what>missing required|contains unknown) field `(?P<field>[^`]+)`$"
)
_VALUE = re.compile(r"^Invalid (?:enum )?value (?P<value>.+)$")

_OPENAI_TYPE_NAMES = MappingProxyType(
    {
        "str": "a string",
        "int": "an integer",
        "float": "a decimal",
        "bool": "a boolean",
        "array": "an array",
        "object": "an object",
        "null": "null",
    }
)


class SchemaProblem(NamedTuple):
    """One msgspec validation error, taken apart.

    kind: `type` (wrong JSON type), `missing` / `unknown` (a field; `path` ends with
    it), `value` (not one of the allowed literals or union tags), `other`.
    """

    kind: Literal["type", "missing", "unknown", "value", "other"]
    path: Path
    expected: tuple[str, ...] = ()  # msgspec type names, without "null"
    got: str = ""
    value: str = ""  # as msgspec shows it: 'text' (quoted) or 3
    text: str = ""  # msgspec's own words

    @classmethod
    def parse(cls, exc: msgspec.ValidationError) -> SchemaProblem:
        match = _AT.match(str(exc))
        assert match is not None  # the pattern matches any string
        head = match["head"]
        path = _parse_path(match["path"] or "")
        if m := _EXPECTED.match(head):
            expected = tuple(t for t in m["expected"].split(" | ") if t != "null")
            return cls("type", path, expected=expected, got=m["got"], text=head)
        if m := _FIELD.match(head):
            kind = "missing" if m["what"] == "missing required" else "unknown"
            return cls(kind, (*path, m["field"]), text=head)
        if m := _VALUE.match(head):
            return cls("value", path, value=m["value"], text=head)
        return cls("other", path, text=head)


def _parse_path(text: str) -> Path:
    steps: list[str | int] = []
    for key, index in _STEP.findall(text):
        if key:
            steps.append(key)
        else:
            steps.append("*" if index == "..." else int(index))
    return tuple(steps)


def openai_path(path: Path) -> str:
    """`messages[0].content` from ("messages", 0, "content")."""
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else step)
    return out


def _openai_types(names: tuple[str, ...]) -> str:
    words = [_OPENAI_TYPE_NAMES.get(n, n) for n in names]
    if len(words) == 1:
        return words[0]
    return "one of " + ", ".join(words[:-1]) + " or " + words[-1]


def openai_problem(
    problem: SchemaProblem,
    supported: Callable[[str], tuple[str, ...] | None] = lambda _: None,
) -> InvalidRequest:
    """Word a decode problem as OpenAI does. `supported(pattern)` may name the allowed
    values at a path pattern such as `messages[].role` (indices dropped)."""
    param = openai_path(problem.path) or None
    match problem.kind:
        case "type" if param is None:
            message = f"Invalid type for request body: expected an object, but got {_openai_types((problem.got,))} instead."
        case "type":
            expected = _openai_types(problem.expected)
            message = f"Invalid type for '{param}': expected {expected}, but got {_openai_types((problem.got,))} instead."
        case "missing" if param == "model":
            message = "you must provide a model parameter"
        case "missing":
            message = f"Missing required parameter: '{param}'."
        case "unknown":
            message = f"Unrecognized request argument supplied: {param}"
        case "value":
            message = _openai_value_message(param or "", problem.value, supported)
        case "other":
            where = f"'{param}'" if param else "request body"
            message = f"Invalid value for {where}: {problem.text}."
    return InvalidRequest(message, param=param)


def _openai_value_message(
    param: str, value: str, supported: Callable[[str], tuple[str, ...] | None]
) -> str:
    allowed = supported(re.sub(r"\[\d+\]", "[]", param))
    if not allowed:
        return f"Invalid value for '{param}': {value}."
    quoted = [f"'{a}'" for a in allowed]
    if len(quoted) <= 2:
        listed = " and ".join(quoted)
    else:
        listed = ", ".join(quoted[:-1]) + ", and " + quoted[-1]
    return f"Invalid value: {value}. Supported values are: {listed}."


def error_payload(err: LockgateError) -> dict[str, Any]:
    """The inner `error` object: message, type, param, code."""
    return {"message": err.message, "type": err.openai_type, "param": err.param, "code": err.code}


def error_body(err: LockgateError) -> bytes:
    """`{"error": {"message", "type", "param", "code"}}`, as OpenAI sends it."""
    return msgspec.json.encode({"error": error_payload(err)})


def openai_supported_values(pattern: str) -> tuple[str, ...] | None:
    """The allowed values at a path pattern, for "Supported values are: ..." messages."""
    match pattern:
        case "messages[].role":
            return ("system", "assistant", "user", "function", "tool", "developer")
        case "messages[].content[].type":
            return ("text", "image_url", "input_audio", "refusal", "file")
        case "messages[].tool_calls[].type" | "tools[].type":
            return ("function", "custom")
        case "tool_choice":
            return ("none", "auto", "required")
        case "tool_choice.type":
            return ("function", "custom", "allowed_tools")
        case "tool_choice.allowed_tools.mode":
            return ("auto", "required")
        case "response_format.type":
            return ("text", "json_object", "json_schema")
        case "function_call":
            return ("none", "auto")
        case "encoding_format":
            return ("float", "base64")
        case _:
            return None


def decode_openai(body: bytes, kind: type[T]) -> T:
    """Decode and validate a request body; every failure is an `InvalidRequest`."""
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        raise openai_problem(SchemaProblem.parse(exc), openai_supported_values) from None
    except (msgspec.DecodeError, UnicodeDecodeError):  # msgspec lets bad UTF-8 in strings through
        raise InvalidRequest(JSON_PARSE_MESSAGE) from None


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def check_range(
    name: str, value: float | None, low: float | None, high: float | None = None
) -> None:
    """OpenAI's words for a number out of range, e.g. "Invalid 'n': integer above maximum
    value. Expected a value <= 128, but got 129 instead." """
    if value is None:
        return
    kind = "integer" if isinstance(value, int) else "decimal"
    if low is not None and value < low:
        raise InvalidRequest(
            f"Invalid '{name}': {kind} below minimum value. "
            f"Expected a value >= {_number(low)}, but got {_number(value)} instead.",
            param=name,
        )
    if high is not None and value > high:
        raise InvalidRequest(
            f"Invalid '{name}': {kind} above maximum value. "
            f"Expected a value <= {_number(high)}, but got {_number(value)} instead.",
            param=name,
        )
