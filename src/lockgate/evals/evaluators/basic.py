"""Deterministic evaluators: exact match, contains, regex, JSON-schema validity, numeric
tolerance. Each scores in [0, 1]; an item they cannot judge (no expected output, no
pattern, no number) scores None.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any, cast

from lockgate.errors import InvalidRequest
from lockgate.evals.evaluator import Case, EvaluatorEnv, Score, expected_text, known_options, option

__all__ = ["Contains", "ExactMatch", "JsonSchema", "Numeric", "Regex", "strip_fences"]

_FENCE = re.compile(r"^\s*```[A-Za-z0-9_-]*\s*\n(.*?)\n?\s*```\s*$", re.DOTALL)
_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+(?:[eE][-+]?\d+)?")


def strip_fences(text: str) -> str:
    """The text inside a Markdown code fence, if the whole answer is one."""
    match = _FENCE.match(text)
    return match.group(1) if match else text


class ExactMatch:
    """1 when the answer equals the expected output. Options: `case_sensitive` (true),
    `strip` (true: ignore surrounding whitespace), `collapse_whitespace` (false)."""

    def __init__(self, name: str, options: Mapping[str, Any], env: EvaluatorEnv) -> None:
        self.name = name
        self.case_sensitive = option(options, "case_sensitive", bool, True, evaluator=name)
        self.strip = option(options, "strip", bool, True, evaluator=name)
        self.collapse = option(options, "collapse_whitespace", bool, False, evaluator=name)
        known_options(name, options, {"case_sensitive", "strip", "collapse_whitespace"})

    def spec(self) -> dict[str, Any]:
        return {"type": "exact_match", "case_sensitive": self.case_sensitive, "strip": self.strip,
                "collapse_whitespace": self.collapse}

    def _norm(self, text: str) -> str:
        text = text.strip() if self.strip else text
        text = " ".join(text.split()) if self.collapse else text
        return text if self.case_sensitive else text.casefold()

    async def evaluate(self, case: Case) -> Score:
        expected = expected_text(case.item)
        if expected is None:
            return Score(None, {"reason": "the item has no expected output"})
        return Score(1.0 if self._norm(case.output) == self._norm(expected) else 0.0)


class Contains:
    """The share of expected substrings found in the answer. The substrings: option
    `substrings`, else the item's expected output (a string, or a list of strings).
    Option `case_sensitive` (false)."""

    def __init__(self, name: str, options: Mapping[str, Any], env: EvaluatorEnv) -> None:
        self.name = name
        self.case_sensitive = option(options, "case_sensitive", bool, False, evaluator=name)
        raw = options.get("substrings")
        if raw is not None and not _is_str_list(raw):
            raise InvalidRequest(f"evaluator {name}: option 'substrings' must be a list of strings.", param="substrings")
        self.substrings: list[str] | None = cast("list[str]", raw)
        known_options(name, options, {"case_sensitive", "substrings"})

    def spec(self) -> dict[str, Any]:
        return {"type": "contains", "case_sensitive": self.case_sensitive, "substrings": self.substrings}

    async def evaluate(self, case: Case) -> Score:
        wanted = self.substrings
        if wanted is None:
            expected: Any = case.item.expected
            wanted = [expected] if isinstance(expected, str) else cast("list[str]", expected) if _is_str_list(expected) else None
        if not wanted:
            return Score(None, {"reason": "no substrings: set option 'substrings' or the item's expected output"})
        def fold(text: str) -> str:
            return text if self.case_sensitive else text.casefold()

        output = fold(case.output)
        missing = [s for s in wanted if fold(s) not in output]
        return Score((len(wanted) - len(missing)) / len(wanted), {"missing": missing} if missing else {})


class Regex:
    """1 when the pattern is found in the answer (`re.search`; option `full` for a full
    match). The pattern: option `pattern`, else the item's expected output. Option
    `ignore_case` (false)."""

    def __init__(self, name: str, options: Mapping[str, Any], env: EvaluatorEnv) -> None:
        self.name = name
        self.ignore_case = option(options, "ignore_case", bool, False, evaluator=name)
        self.full = option(options, "full", bool, False, evaluator=name)
        self.pattern: str | None = options.get("pattern")
        if self.pattern is not None:
            self._compile(self.pattern)
        known_options(name, options, {"ignore_case", "full", "pattern"})

    def _compile(self, pattern: Any) -> re.Pattern[str]:
        if not isinstance(pattern, str):
            raise InvalidRequest(f"evaluator {self.name}: the pattern must be a string.", param="pattern")
        try:
            return re.compile(pattern, re.IGNORECASE if self.ignore_case else 0)
        except re.error as exc:
            raise InvalidRequest(f"evaluator {self.name}: invalid pattern {pattern!r}: {exc}", param="pattern") from None

    def spec(self) -> dict[str, Any]:
        return {"type": "regex", "pattern": self.pattern, "ignore_case": self.ignore_case, "full": self.full}

    async def evaluate(self, case: Case) -> Score:
        pattern = self.pattern if self.pattern is not None else case.item.expected
        if pattern is None:
            return Score(None, {"reason": "no pattern: set option 'pattern' or the item's expected output"})
        try:
            compiled = self._compile(pattern)
        except InvalidRequest as exc:
            return Score(None, {"reason": exc.message})
        found = compiled.fullmatch(case.output.strip()) if self.full else compiled.search(case.output)
        return Score(1.0 if found else 0.0)


class JsonSchema:
    """1 when the answer is JSON (a Markdown code fence around it is allowed) that is
    valid against the schema: option `schema`, else the item's `metadata.schema`; with
    neither, any JSON value passes."""

    def __init__(self, name: str, options: Mapping[str, Any], env: EvaluatorEnv) -> None:
        self.name = name
        schema = options.get("schema")
        if isinstance(schema, str):
            try:
                schema = json.loads(schema)
            except ValueError:
                raise InvalidRequest(f"evaluator {name}: option 'schema' is not JSON.", param="schema") from None
        self.schema: dict[str, Any] | None = schema
        if schema is not None:
            self._validator(schema)
        known_options(name, options, {"schema"})

    def _validator(self, schema: Any) -> Any:
        from jsonschema import validators
        from jsonschema.exceptions import SchemaError

        if not isinstance(schema, dict):
            raise InvalidRequest(f"evaluator {self.name}: the schema must be a JSON object.", param="schema")
        checked = cast("dict[str, Any]", schema)
        cls = validators.validator_for(checked)
        try:
            cls.check_schema(checked)
        except SchemaError as exc:
            raise InvalidRequest(f"evaluator {self.name}: invalid JSON schema: {exc.message}", param="schema") from None
        return cls(checked)

    def spec(self) -> dict[str, Any]:
        return {"type": "json_schema", "schema": self.schema}

    async def evaluate(self, case: Case) -> Score:
        try:
            value = json.loads(strip_fences(case.output))
        except ValueError as exc:
            return Score(0.0, {"error": f"not JSON: {exc}"})
        schema = self.schema if self.schema is not None else case.item.metadata.get("schema")
        if schema is None:
            return Score(1.0)
        try:
            validator = self._validator(schema)
        except InvalidRequest as exc:
            return Score(None, {"reason": exc.message})
        errors: list[Any] = sorted(validator.iter_errors(value), key=lambda e: list(e.path))
        if errors:
            first = errors[0]
            where = "/".join(str(p) for p in first.path) or "(root)"
            return Score(0.0, {"error": f"{where}: {first.message}", "errors": len(errors)})
        return Score(1.0)


class Numeric:
    """1 when the number in the answer is within tolerance of the expected number:
    |a - e| <= max(abs_tol, rel_tol * |e|). Options `abs_tol` (0), `rel_tol` (1e-9),
    `pick`: which number of the answer counts when it is not just a number, `last`
    (default) or `first`. Thousands separators (1,234.5) are understood."""

    def __init__(self, name: str, options: Mapping[str, Any], env: EvaluatorEnv) -> None:
        self.name = name
        self.abs_tol = option(options, "abs_tol", float, 0.0, evaluator=name)
        self.rel_tol = option(options, "rel_tol", float, 1e-9, evaluator=name)
        self.pick = option(options, "pick", str, "last", evaluator=name)
        if self.pick not in ("first", "last") or self.abs_tol < 0 or self.rel_tol < 0:
            raise InvalidRequest(f"evaluator {name}: pick is first|last and tolerances are >= 0.", param="pick")
        known_options(name, options, {"abs_tol", "rel_tol", "pick"})

    def spec(self) -> dict[str, Any]:
        return {"type": "numeric", "abs_tol": self.abs_tol, "rel_tol": self.rel_tol, "pick": self.pick}

    def number_in(self, text: str) -> float | None:
        stripped = text.strip()
        try:
            return float(stripped)
        except ValueError:
            pass
        found = _NUMBER.findall(stripped)
        if not found:
            return None
        return float((found[0] if self.pick == "first" else found[-1]).replace(",", ""))

    async def evaluate(self, case: Case) -> Score:
        expected: Any = case.item.expected
        want = float(expected) if isinstance(expected, int | float) and not isinstance(expected, bool) else (
            self.number_in(expected) if isinstance(expected, str) else None
        )
        if want is None or not math.isfinite(want):
            return Score(None, {"reason": "the item's expected output is not a number"})
        got = self.number_in(case.output)
        if got is None:
            return Score(0.0, {"error": "no number in the answer"})
        ok = abs(got - want) <= max(self.abs_tol, self.rel_tol * abs(want))
        return Score(1.0 if ok else 0.0, {"got": got, "expected": want})


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in cast("list[Any]", value))
