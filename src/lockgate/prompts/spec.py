"""What one prompt version holds, validated and in one canonical form.

A version's content is a `PromptSpec`: a chat template (a list of `{role, content}`
messages) or a text template (one string, sent as one `user` message), the declared
variables with their types, the model, the parameters and an optional response schema.
`canonical()` is its one JSON form (defaults filled in, variables spelled out), and
`content_hash()` the SHA-256 of that form as RFC 8785 JSON: two specs that mean the same
hash the same, however they were written, which is how `prompts push` knows a file did
not change.
"""

from __future__ import annotations

import hashlib
import keyword
import re
from collections.abc import Mapping
from typing import Any, Literal, Self, cast

import rfc8785
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lockgate.errors import InvalidRequest

__all__ = [
    "PARAM_NAMES",
    "PromptParams",
    "PromptSpec",
    "TemplateMessage",
    "VarType",
    "Variable",
    "check_prompt_name",
    "matches",
    "parse_spec",
]

VarType = Literal["string", "number", "integer", "boolean", "array", "object", "any"]
Kind = Literal["chat", "text"]

_PROMPT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_LIMIT = 200_000  # characters of one template


def check_prompt_name(name: str, field: str = "name") -> str:
    if not isinstance(name, str) or not _PROMPT_NAME.match(name):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise InvalidRequest(
            f"{field}: a prompt name is 1-100 letters, digits, '_', '.' or '-', starting with "
            f"a letter or digit (got {name!r}).",
            param=field,
        )
    return name


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Variable(_Model):
    type: VarType = "string"
    default: Any = None
    """A default makes the variable optional."""
    description: str | None = None

    @model_validator(mode="after")
    def _default_has_the_type(self) -> Self:
        if self.default is not None and not matches(self.type, self.default):
            raise ValueError(f"the default {self.default!r} is not of type {self.type}")
        return self


class TemplateMessage(_Model):
    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=_LIMIT)


class PromptParams(_Model):
    """Sampling parameters the version pins; a request's own values fill only the ones left unset."""

    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    max_tokens: int | None = Field(default=None, ge=1)
    stop: list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)


PARAM_NAMES = tuple(PromptParams.model_fields)


class PromptSpec(_Model):
    kind: Kind = "chat"
    model: str = Field(min_length=1, max_length=200)
    """A model name the gateway serves (`[models.NAME]`)."""
    description: str | None = Field(default=None, max_length=2000)
    messages: list[TemplateMessage] = Field(default_factory=lambda: list[TemplateMessage]())
    template: str | None = Field(default=None, max_length=_LIMIT)
    variables: dict[str, Variable] = Field(default_factory=lambda: dict[str, Variable]())
    params: PromptParams = Field(default_factory=PromptParams)
    response_schema: dict[str, Any] | None = None

    @field_validator("variables", mode="before")
    @classmethod
    def _spell_out(cls, value: Any) -> Any:
        """`["a", "b"]` and `{a = "string"}` are shorthands for `{a = {type = "string"}}`."""
        if isinstance(value, list):
            return {str(v): {"type": "string"} for v in cast(list[Any], value)}
        if isinstance(value, Mapping):
            items = cast(Mapping[str, Any], value).items()
            return {k: ({"type": v} if isinstance(v, str) else v) for k, v in items}
        return value

    @field_validator("variables")
    @classmethod
    def _names(cls, value: dict[str, Variable]) -> dict[str, Variable]:
        for name in value:
            if not _VARIABLE_NAME.match(name) or keyword.iskeyword(name) or name in ("true", "false", "none"):
                raise ValueError(f"{name!r} is not a usable variable name (letters, digits, '_')")
        return value

    @field_validator("response_schema")
    @classmethod
    def _no_nulls(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        """TOML has no null: nulls are dropped, so a schema survives `pull` then `push`."""
        return None if value is None else _drop_nulls(value)

    @model_validator(mode="after")
    def _shape(self) -> Self:
        if self.kind == "chat":
            if not self.messages:
                raise ValueError("a chat prompt has at least one message")
            if self.template is not None:
                raise ValueError("a chat prompt has `messages`, not `template`")
        else:
            if self.template is None:
                raise ValueError("a text prompt has a `template`")
            if self.messages:
                raise ValueError("a text prompt has a `template`, not `messages`")
        return self

    def templates(self) -> list[tuple[str, str]]:
        """(role, template source) in order; a text prompt is one user message."""
        if self.kind == "text":
            return [("user", self.template or "")]
        return [(m.role, m.content) for m in self.messages]

    def canonical(self) -> dict[str, Any]:
        """The one JSON form: what is stored, hashed and written back by `pull`."""
        data = self.model_dump(mode="json", exclude_none=True)
        data["params"] = self.params.model_dump(mode="json", exclude_none=True)
        data["variables"] = {
            name: var.model_dump(mode="json", exclude_none=True) for name, var in sorted(self.variables.items())
        }
        return data

    def content_hash(self) -> str:
        return "sha256:" + hashlib.sha256(rfc8785.dumps(self.canonical())).hexdigest()


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _drop_nulls(v) for k, v in cast(dict[Any, Any], value).items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in cast(list[Any], value) if v is not None]
    return value


def matches(kind: VarType, value: Any) -> bool:
    """Whether `value` (decoded JSON) is of the declared variable type."""
    match kind:
        case "string":
            return isinstance(value, str)
        case "integer":
            return isinstance(value, int) and not isinstance(value, bool)
        case "number":
            return isinstance(value, int | float) and not isinstance(value, bool)
        case "boolean":
            return isinstance(value, bool)
        case "array":
            return isinstance(value, list)
        case "object":
            return isinstance(value, dict)
        case "any":
            return True


def parse_spec(data: Mapping[str, Any], *, where: str = "prompt") -> PromptSpec:
    """A `PromptSpec` from decoded TOML or JSON; InvalidRequest naming each problem."""
    try:
        return PromptSpec.model_validate(dict(data))
    except ValidationError as exc:
        problems: list[str] = []
        param: str | None = None
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()))
            param = param or loc or None
            msg = "unknown key" if err.get("type") == "extra_forbidden" else str(err.get("msg", "invalid"))
            problems.append(f"{loc or '(top level)'}: {msg.removeprefix('Value error, ')}")
        raise InvalidRequest(f"{where}: invalid prompt: " + "; ".join(problems), param=param) from None
