"""Errors in the Anthropic dialect: the error body, and request validation told Anthropic's way.

Anthropic words validation errors as `<location>: <problem>`, the location dotted
with indices (`messages.0.content.1.text`), e.g. "max_tokens: Field required" or
"foo: Extra inputs are not permitted"; bad JSON is "The request body is not valid
JSON: ...". All are `invalid_request_error`s (`InvalidRequest`, status 400).
"""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Any, TypeVar

import msgspec

from lockgate.errors import InvalidRequest, LockgateError
from lockgate.gateway.openai_errors import Path, SchemaProblem

__all__ = [
    "anthropic_path",
    "anthropic_problem",
    "decode_anthropic",
    "error_body",
    "error_payload",
]

T = TypeVar("T")

_TYPE_NAMES = MappingProxyType(
    {
        "str": "string",
        "int": "integer",
        "float": "number",
        "bool": "boolean",
        "array": "list",
        "object": "dictionary",
    }
)

_SUPPORTED_BLOCKS = (
    "'text', 'image', 'document', 'tool_use', 'tool_result', 'thinking' and 'redacted_thinking'"
)


def anthropic_path(path: Path) -> str:
    """`messages.0.content` from ("messages", 0, "content")."""
    return ".".join(str(step) for step in path)


def _at(loc: str, message: str) -> str:
    return f"{loc}: {message}" if loc else message


def _value_message(path: Path, value: str) -> str:
    loc = anthropic_path(path)
    pattern = re.sub(r"\.\d+(?=\.|$)", ".*", loc)
    parent = anthropic_path(path[:-1])
    match pattern:
        case "messages.*.role":
            return _at(loc, "Input should be 'user', 'assistant' or 'system'")
        case "tool_choice.type":
            return _at(loc, "Input should be 'auto', 'any', 'tool' or 'none'")
        case "output_config.format.type":
            return _at(loc, "Input should be 'json_schema'")
        case _ if pattern.endswith("source.type"):
            return _at(parent, f"source type {value} is not supported by this gateway")
        case _ if pattern == "system.*.type" or (
            "content" in pattern and pattern.endswith(".type")
        ):
            return _at(
                parent,
                f"content block type {value} is not supported by this gateway "
                f"(supported: {_SUPPORTED_BLOCKS})",
            )
        case _:
            return _at(loc, f"Input should be a valid value, not {value}")


def anthropic_problem(problem: SchemaProblem) -> InvalidRequest:
    """Word a decode problem as Anthropic does; `param` is the dotted location."""
    loc = anthropic_path(problem.path)
    match problem.kind:
        case "type":
            names = " or ".join(_TYPE_NAMES.get(n, n) for n in problem.expected)
            message = _at(loc, f"Input should be a valid {names}")
        case "missing":
            message = _at(loc, "Field required")
        case "unknown":
            message = _at(loc, "Extra inputs are not permitted")
        case "value":
            message = _value_message(problem.path, problem.value)
        case "other":
            message = _at(loc, problem.text)
    return InvalidRequest(message, param=loc or None)


def decode_anthropic(body: bytes, kind: type[T]) -> T:
    """Decode and validate a request body; every failure is an `InvalidRequest`."""
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        raise anthropic_problem(SchemaProblem.parse(exc)) from None
    except msgspec.DecodeError as exc:
        detail = str(exc).removeprefix("JSON is malformed: ")
        raise InvalidRequest(f"The request body is not valid JSON: {detail}") from None
    except UnicodeDecodeError:  # msgspec lets bad UTF-8 inside strings through as this
        raise InvalidRequest("The request body is not valid JSON: invalid UTF-8") from None


def error_payload(err: LockgateError) -> dict[str, Any]:
    """`{"type": "error", "error": {"type", "message"}}`, the body of an `error` event too."""
    return {"type": "error", "error": {"type": err.anthropic_type, "message": err.message}}


def error_body(err: LockgateError, request_id: str | None = None) -> bytes:
    """The error response body, as Anthropic sends it."""
    return msgspec.json.encode({**error_payload(err), "request_id": request_id})
