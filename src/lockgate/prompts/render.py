"""Templates: Jinja2 in its sandbox, with strict undefined names.

Why Jinja2 (`jinja2.sandbox.SandboxedEnvironment`, `StrictUndefined`): it is the
template language prompt authors already know (it is what Hugging Face chat templates
use), it has loops and conditionals for few-shot lists, and its sandbox refuses access
to Python internals (`{{ ''.__class__ }}` is a `SecurityError`). On top of the sandbox
we cap `range()` (Jinja's own 100 000), string and list repetition and powers, and the
size of what one message renders to, so that a template cannot make the gateway build a
huge string. Autoescaping is off: prompts are not HTML.

Variables are checked before rendering: a missing one (without a default), an
undeclared one, or one of the wrong type is an `InvalidRequest` (400) naming each
problem, so a caller never gets a silently half-rendered prompt. Templates are checked
when a version is created: a syntax error or a name that is not declared is refused.
Caller-supplied values are data, never template source, so they cannot inject template
code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, UndefinedError, meta
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

from lockgate.core.types import Message, TextPart
from lockgate.errors import InvalidRequest
from lockgate.prompts.spec import PromptSpec, matches

__all__ = ["MAX_RENDERED_CHARS", "CompiledPrompt", "check_templates", "compile_prompt", "make_environment"]

MAX_RENDERED_CHARS = 1_000_000  # of one rendered message
_MAX_REPEAT = 100_000  # items or characters a `*` may build
_MAX_BITS = 4096  # of an integer a `*` or `**` may build


class _Sandbox(SandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and _is_number(left) and _is_number(right) and abs(right) > 64:
            raise SecurityError("exponent too large in a prompt template")
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(n, int) and len(seq) * n > _MAX_REPEAT:  # pyright: ignore[reportUnknownArgumentType]
                    raise SecurityError("repetition too large in a prompt template")
        result = super().call_binop(context, operator, left, right)
        if isinstance(result, int) and result.bit_length() > _MAX_BITS:
            raise SecurityError("number too large in a prompt template")
        return result


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def make_environment() -> SandboxedEnvironment:
    """The one environment a process compiles templates with (built by its owner, not here)."""
    return _Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


def check_templates(env: SandboxedEnvironment, spec: PromptSpec) -> None:
    """Refuse a syntax error or a name the template uses but the spec does not declare."""
    declared = set(spec.variables)
    for i, (_, source) in enumerate(spec.templates()):
        where = "template" if spec.kind == "text" else f"messages[{i}].content"
        try:
            used = meta.find_undeclared_variables(env.parse(source))
        except TemplateSyntaxError as exc:
            raise InvalidRequest(f"{where}: template syntax error on line {exc.lineno}: {exc.message}", param=where) from None
        unknown = sorted(used - declared - set(env.globals))
        if unknown:
            raise InvalidRequest(
                f"{where}: the template uses {', '.join(unknown)}, which {'is' if len(unknown) == 1 else 'are'} "
                "not declared under `variables`.",
                param=where,
            )


@dataclass(frozen=True, slots=True)
class CompiledPrompt:
    """One prompt version, its templates compiled: what the gateway renders per request."""

    name: str
    version: int
    content_hash: str
    spec: PromptSpec
    templates: tuple[tuple[str, Template], ...]

    def check_variables(self, given: Mapping[str, Any] | None) -> dict[str, Any]:
        """The variables to render with (defaults filled in); InvalidRequest naming each problem."""
        values = dict(given or {})
        declared = self.spec.variables
        problems: list[str] = []
        missing = [n for n, v in declared.items() if n not in values and v.default is None]
        if missing:
            problems.append(f"missing {', '.join(sorted(missing))}")
        extra = sorted(set(values) - set(declared))
        if extra:
            problems.append(f"not declared by the prompt: {', '.join(extra)}")
        for name, value in values.items():
            var = declared.get(name)
            if var is not None and not matches(var.type, value):
                problems.append(f"{name} must be of type {var.type}, got {_json_type(value)}")
        if problems:
            names = ", ".join(f"{n} ({v.type})" for n, v in declared.items()) or "none"
            raise InvalidRequest(
                f"Invalid prompt_variables for prompt '{self.name}' version {self.version}: "
                + "; ".join(problems) + f". Declared variables: {names}.",
                param="prompt_variables",
            )
        for name, var in declared.items():
            values.setdefault(name, var.default)
        return values

    def render(self, given: Mapping[str, Any] | None) -> list[Message]:
        values = self.check_variables(given)
        messages: list[Message] = []
        for role, template in self.templates:
            try:
                text = template.render(values)
            except SecurityError as exc:
                raise InvalidRequest(f"Prompt '{self.name}' version {self.version} could not be rendered: {exc}", param="prompt_variables") from None
            except (UndefinedError, TemplateError, TypeError, ValueError, ArithmeticError) as exc:
                raise InvalidRequest(
                    f"Prompt '{self.name}' version {self.version} could not be rendered with these "
                    f"prompt_variables: {exc}",
                    param="prompt_variables",
                ) from None
            if len(text) > MAX_RENDERED_CHARS:
                raise InvalidRequest(
                    f"Prompt '{self.name}' version {self.version} rendered to more than {MAX_RENDERED_CHARS} characters.",
                    param="prompt_variables",
                )
            messages.append(Message(role=role, content=[TextPart(text=text)]))  # type: ignore[arg-type]
        return messages


def compile_prompt(env: SandboxedEnvironment, name: str, version: int, content_hash: str, spec: PromptSpec) -> CompiledPrompt:
    templates = tuple((role, env.from_string(source)) for role, source in spec.templates())
    return CompiledPrompt(name=name, version=version, content_hash=content_hash, spec=spec, templates=templates)


def _json_type(value: Any) -> str:
    match value:
        case bool():
            return "boolean"
        case int():
            return "integer"
        case float():
            return "number"
        case str():
            return "string"
        case list():
            return "array"
        case dict():
            return "object"
        case None:
            return "null"
        case _:
            return type(value).__name__
