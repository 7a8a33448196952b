"""The shapes every guardrail shares: findings, scan contexts, verdicts, the scanner protocol.

A scanner looks at one text and returns `Finding`s (an entity, a span, a score in
0..1). The engine compares each score with the configured threshold, applies the
configured action, and records a verdict (scanner, version, score, action, where,
entity) — never the matched text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from lockgate.core.types import ResponseFormat

__all__ = [
    "ACTIONS",
    "INPUT_WHERE",
    "OUTPUT_WHERE",
    "Action",
    "Finding",
    "NoOptions",
    "ScanContext",
    "Scanner",
    "Side",
]

Action = Literal["block", "redact", "flag", "needs_approval"]
ACTIONS: tuple[Action, ...] = ("block", "needs_approval", "redact", "flag")  # strongest first
Side = Literal["input", "output"]

# Where a text comes from. Input side: the parts of a chat request by role, and the
# arguments of a tool call (MCP gateway). Output side: the answer, and a tool's result.
INPUT_WHERE = ("system", "user", "assistant", "tool", "tool_arguments")
OUTPUT_WHERE = ("output", "tool_result")


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a scanner found: `text[start:end]` is `entity` with confidence `score`.
    Whole-text findings (a schema violation, a length) span the whole text."""

    entity: str
    start: int
    end: int
    score: float


@dataclass(frozen=True, slots=True)
class ScanContext:
    where: str
    response_format: ResponseFormat | None = None
    final: bool = True  # False: a window of a stream, more text follows
    offset: int = 0  # characters of the same answer before this text (streams)


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Scanner:
    """Base of every scanner; an entry point in the `lockgate.guardrails` group names a
    subclass. `Options` is its strict options model (unknown options are config
    errors); `entities(options)` lists what it can report; `scan` is synchronous and
    CPU-bound: the engine decides whether to run it on the event loop (small texts)
    or in a thread (big ones, and always for a `heavy` scanner)."""

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    sides: ClassVar[frozenset[Side]] = frozenset(("input", "output"))
    redactable: ClassVar[bool] = True  # findings are spans that can be replaced
    heavy: ClassVar[bool] = False  # True: always scanned in a worker thread (a model, not patterns)
    Options: ClassVar[type[BaseModel]] = NoOptions
    max_match: int = 128  # longest span a finding can have: a stream window holds this much

    def __init__(self, options: Any, *, entities: frozenset[str] | None, resources: Any) -> None:
        self.options = options
        self.only = entities  # report only these (None: all)

    @classmethod
    def entities(cls, options: Any) -> frozenset[str]:
        del options
        return frozenset()

    @classmethod
    def unavailable(cls, options: Any) -> str | None:
        """None when the scanner can run here; else why not (a missing extra), which
        `lockgate config check` reports."""
        del options
        return None

    def scan(self, text: str, ctx: ScanContext) -> list[Finding]:
        raise NotImplementedError
