"""Output checks: `json_schema`, `denied_terms` and `length`.

- `json_schema`: when the request's `response_format` asks for JSON (`json_object`, or
  `json_schema` with a schema), the answer must parse, and match the schema
  (`jsonschema`, the draft the schema names, 2020-12 by default). Checked on the whole
  answer (for a stream: at its end).
- `denied_terms`: words or phrases (`terms`) and topics (`topics`: a name and the
  keywords that signal it); matched case-insensitively on word boundaries. A finding
  is the matched span, so `redact` replaces it.
- `length`: an answer longer than `max_chars` characters. `redact` truncates it.
"""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar

from jsonschema import Draft202012Validator
from jsonschema.validators import validator_for
from pydantic import BaseModel, ConfigDict, Field

from lockgate.guard.types import Finding, ScanContext, Scanner, Side

__all__ = ["DeniedTermsScanner", "JsonSchemaScanner", "LengthScanner"]


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JsonSchemaScanner(Scanner):
    """The answer is JSON, and matches the schema `response_format` gave."""

    name = "json_schema"
    version = "1"
    sides: ClassVar[frozenset[Side]] = frozenset(("output",))
    redactable = False

    @classmethod
    def entities(cls, options: Any) -> frozenset[str]:
        return frozenset(("INVALID_JSON", "SCHEMA_VIOLATION"))

    def scan(self, text: str, ctx: ScanContext) -> list[Finding]:
        fmt = ctx.response_format
        if not ctx.final or fmt is None or fmt.type == "text":
            return []
        try:
            value: Any = json.loads(text)
        except ValueError:
            return [Finding("INVALID_JSON", 0, len(text), 1.0)]
        if fmt.type == "json_object" and not isinstance(value, dict):
            return [Finding("INVALID_JSON", 0, len(text), 1.0)]
        if fmt.type == "json_schema" and fmt.schema is not None:
            cls: Any = validator_for(fmt.schema, default=Draft202012Validator)
            errors: Any = cls(fmt.schema).iter_errors(value)
            if next(iter(errors), None) is not None:
                return [Finding("SCHEMA_VIOLATION", 0, len(text), 1.0)]
        return []


class DeniedTermsOptions(_Options):
    terms: list[str] = Field(default_factory=list)
    topics: dict[str, list[str]] = Field(default_factory=dict)


class DeniedTermsScanner(Scanner):
    """Denied words and phrases, and topics by their keywords."""

    name = "denied_terms"
    version = "1"
    Options: ClassVar[type[BaseModel]] = DeniedTermsOptions

    def __init__(self, options: Any, *, entities: frozenset[str] | None, resources: Any) -> None:
        super().__init__(options, entities=entities, resources=resources)
        opts: DeniedTermsOptions = options
        self._patterns: list[tuple[str, re.Pattern[str]]] = []
        if opts.terms:
            self._patterns.append(("DENIED_TERM", _words(opts.terms)))
        for topic, words in opts.topics.items():
            if words:
                self._patterns.append((f"TOPIC_{topic.upper()}", _words(words)))
        longest = max((len(w) for w in [*opts.terms, *(w for ws in opts.topics.values() for w in ws)]), default=16)
        self.max_match = longest + 8

    @classmethod
    def entities(cls, options: Any) -> frozenset[str]:
        opts: DeniedTermsOptions = options
        return frozenset(("DENIED_TERM", *(f"TOPIC_{t.upper()}" for t in opts.topics)))

    def scan(self, text: str, ctx: ScanContext) -> list[Finding]:
        found: list[Finding] = []
        for entity, pattern in self._patterns:
            if self.only is not None and entity not in self.only:
                continue
            found.extend(Finding(entity, m.start(), m.end(), 1.0) for m in pattern.finditer(text))
        return found


def _words(words: list[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


class LengthOptions(_Options):
    max_chars: int = Field(gt=0)


class LengthScanner(Scanner):
    """An answer longer than `max_chars`; `redact` truncates it there."""

    name = "length"
    version = "1"
    sides: ClassVar[frozenset[Side]] = frozenset(("output",))
    Options: ClassVar[type[BaseModel]] = LengthOptions
    max_match = 0

    def __init__(self, options: Any, *, entities: frozenset[str] | None, resources: Any) -> None:
        super().__init__(options, entities=entities, resources=resources)
        self.max_chars: int = options.max_chars

    @classmethod
    def entities(cls, options: Any) -> frozenset[str]:
        return frozenset(("TOO_LONG",))

    def scan(self, text: str, ctx: ScanContext) -> list[Finding]:
        if ctx.offset + len(text) <= self.max_chars:
            return []
        return [Finding("TOO_LONG", max(0, self.max_chars - ctx.offset), len(text), 1.0)]
