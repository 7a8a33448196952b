"""The `[guardrails]` section: which scanners run on what, with which threshold and action.

    [guardrails]
    input = [
      { scanner = "pii", entities = ["CREDIT_CARD", "EMAIL_ADDRESS"], action = "redact", restore = true },
      { scanner = "secrets", action = "block" },
      { scanner = "injection", where = ["tool"], action = "flag" },
    ]
    output = [ { scanner = "pii", action = "redact" }, { scanner = "json_schema" } ]

    [guardrails.policies.finance]        # replaces the lists above where it matches
    teams = ["team-id"]
    input = [ { scanner = "pii", action = "block" } ]

Options a scanner has beyond the common ones (`terms` of `denied_terms`, `max_chars` of
`length`) sit in the same table; each scanner validates its own, so an unknown
scanner, option, entity, action or threshold is a config error naming the key.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lockgate.config._base import Strict

__all__ = ["GuardPolicyConfig", "GuardrailsConfig", "ScannerConfig"]

Where = Literal["system", "user", "assistant", "tool", "tool_arguments", "output", "tool_result"]
_INPUT_WHERE = {"system", "user", "assistant", "tool", "tool_arguments"}
_OUTPUT_WHERE = {"output", "tool_result"}


class ScannerConfig(BaseModel):
    """One scanner in an `input` or `output` list; extra keys are the scanner's options."""

    model_config = ConfigDict(extra="allow", frozen=True)

    scanner: str
    action: Literal["block", "redact", "flag", "needs_approval"] = "block"
    threshold: float = Field(default=0.5, ge=0, le=1)
    """A finding counts when its score is at least this."""
    where: list[Where] | None = None
    """Which texts: input side system/user/assistant/tool/tool_arguments, output side output/tool_result."""
    entities: list[str] | None = None
    """Only these entities (default: all the scanner knows)."""
    restore: bool = False
    """Input redaction only: put the original values back into the answer."""

    @model_validator(mode="after")
    def _check_scanner(self) -> ScannerConfig:
        from lockgate.guard.registry import scanner_class, scanner_names

        cls = scanner_class(self.scanner)
        if cls is None:
            raise ValueError(f"scanner: unknown scanner {self.scanner!r} (known: {', '.join(scanner_names())})")
        try:
            options = cls.Options.model_validate(self.model_extra or {})
        except ValidationError as exc:
            first = exc.errors()[0]
            key = ".".join(str(p) for p in first["loc"]) or "(options)"
            why = "unknown option" if first["type"] == "extra_forbidden" else first["msg"]
            raise ValueError(f"{key}: {why} for scanner {self.scanner!r}") from None
        problem = cls.unavailable(options)
        if problem is not None:
            raise ValueError(f"scanner: {problem}")
        if self.entities is not None:
            known = cls.entities(options)
            unknown = [e for e in self.entities if e not in known]
            if unknown:
                raise ValueError(
                    f"entities: unknown entity {unknown[0]!r} for scanner {self.scanner!r} "
                    f"(known: {', '.join(sorted(known))})"
                )
        if self.action == "redact" and not cls.redactable:
            raise ValueError(
                f"action: scanner {self.scanner!r} cannot redact (its findings are not spans); "
                "use block, flag or needs_approval"
            )
        if self.restore and self.action != "redact":
            raise ValueError("restore: only a redact action can restore values")
        return self

    def options(self) -> Any:
        from lockgate.guard.registry import scanner_class

        cls = scanner_class(self.scanner)
        assert cls is not None
        return cls.Options.model_validate(self.model_extra or {})


def _check_side(scanners: list[ScannerConfig], side: Literal["input", "output"]) -> None:
    from lockgate.guard.registry import scanner_class

    allowed = _INPUT_WHERE if side == "input" else _OUTPUT_WHERE
    for i, sc in enumerate(scanners):
        cls = scanner_class(sc.scanner)
        if cls is not None and side not in cls.sides:
            raise ValueError(f"{side}[{i}].scanner: {sc.scanner!r} is an {next(iter(cls.sides))} scanner")
        wrong = [w for w in sc.where or () if w not in allowed]
        if wrong:
            raise ValueError(f"{side}[{i}].where: {wrong[0]!r} is not an {side} text (use {', '.join(sorted(allowed))})")
        if side == "output" and sc.restore:
            raise ValueError(f"output[{i}].restore: only input redaction restores values")


class GuardPolicyConfig(Strict):
    """Scanners for the requests its selectors match; every selector given must match."""

    models: list[str] = Field(default_factory=list)
    """Model names or globs (`gpt-4o*`)."""
    keys: list[str] = Field(default_factory=list)
    """Virtual key ids or prefixes (grants: grant ids or prefixes)."""
    teams: list[str] = Field(default_factory=list)
    agents: list[str] = Field(default_factory=list)
    """Agent names or ids."""
    tools: list[str] = Field(default_factory=list)
    """Tool names or globs, for the MCP gateway's tool checks."""
    input: list[ScannerConfig] = Field(default_factory=lambda: list[ScannerConfig]())
    output: list[ScannerConfig] = Field(default_factory=lambda: list[ScannerConfig]())

    @model_validator(mode="after")
    def _check(self) -> GuardPolicyConfig:
        if not (self.models or self.keys or self.teams or self.agents or self.tools):
            raise ValueError("a policy needs at least one selector: models, keys, teams, agents or tools")
        _check_side(self.input, "input")
        _check_side(self.output, "output")
        return self


class GuardrailsConfig(Strict):
    input: list[ScannerConfig] = Field(default_factory=lambda: list[ScannerConfig]())
    """Scanners on requests (and tool arguments) that no policy matches."""
    output: list[ScannerConfig] = Field(default_factory=lambda: list[ScannerConfig]())
    """Scanners on answers (and tool results) that no policy matches."""
    policies: dict[str, GuardPolicyConfig] = Field(default_factory=dict)
    """Named policies, tried in file order; the first that matches replaces `input`/`output`."""
    stream_window: int = Field(default=128, ge=16, le=65536)
    """Characters of a streamed answer held back so a match split across chunks is still seen."""
    offload_chars: int = Field(default=16384, ge=0)
    """Texts longer than this are scanned in a worker thread, off the event loop."""
    ner_model: str | None = None
    """An installed spaCy package with NER (e.g. en_core_web_sm) for the PERSON entity."""
    approval_timeout: float | None = Field(default=None, gt=0)
    """Seconds a needs_approval hold waits for a reviewer (default: the oversight default)."""

    @model_validator(mode="after")
    def _check(self) -> GuardrailsConfig:
        _check_side(self.input, "input")
        _check_side(self.output, "output")
        if not self.ner_model and any(
            sc.scanner == "pii" and sc.entities and "PERSON" in sc.entities for sc in self.all_scanners()
        ):
            raise ValueError(
                "entities: PERSON needs a named-entity model: set [guardrails] ner_model to an installed "
                "spaCy package (e.g. en_core_web_sm)"
            )
        if self.ner_model:
            from lockgate.guard.resources import ner_available

            problem = ner_available(self.ner_model)
            if problem is not None:
                raise ValueError(problem)
        return self

    def all_scanners(self) -> list[ScannerConfig]:
        found = [*self.input, *self.output]
        for policy in self.policies.values():
            found += [*policy.input, *policy.output]
        return found

    @property
    def configured(self) -> bool:
        """Any scanner anywhere: only then does the pipeline get a guard stage."""
        return bool(self.all_scanners())
