"""Evaluators that use a model: embedding similarity (offline MiniLM), LLM-as-judge with
a rubric, and groundedness against supplied context (token overlap, or the judge).

The judge is called through the gateway (so its calls are authorised, limited, priced
and traced like any other) with a pinned model: a model name or `prompt:NAME@VERSION`,
never a label, which could move between two runs. It is asked `trials` times; each
answer must end with `VERDICT: PASS|FAIL` (or `SCORE: N` on a numeric scale). Answers
that say neither are counted as unparseable, never guessed; the item's score is the
mean of the parsed verdicts, or None if there were none.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping
from typing import Any, cast

from lockgate.config.evals import split_pinned
from lockgate.errors import InvalidRequest, LockgateError
from lockgate.evals.embedding import MODEL_ID, cosine
from lockgate.evals.evaluator import Case, EvaluatorEnv, Score, expected_text, known_options, option
from lockgate.evals.models import DatasetItem

__all__ = ["EmbeddingSimilarity", "Groundedness", "Judge", "context_of", "overlap_support", "parse_verdict"]

_VERDICT = re.compile(r"VERDICT\s*[:=]\s*\**\s*(PASS|FAIL)\b", re.IGNORECASE)
_SCORE = re.compile(r"SCORE\s*[:=]\s*\**\s*(-?\d+(?:\.\d+)?)", re.IGNORECASE)
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_STOPWORDS = frozenset(
    ["a", "an", "the", "and", "or", "but", "if", "of", "to", "in", "on", "at", "by", "for", "with", "from", "as", "is", "are", "was", "were", "be", "been", "being", "it", "its", "this", "that", "these", "those", "there", "their", "they", "them", "he", "she", "his", "her", "we", "our", "you", "your", "i", "me", "my", "not", "no", "so", "do", "does", "did", "has", "have", "had", "will", "would", "can", "could", "should", "may", "might", "must", "also", "than", "then", "which", "who", "whom", "what", "when", "where", "why", "how"]
)

JUDGE_SYSTEM = (
    "You are a strict, impartial evaluator. Judge the RESPONSE against the RUBRIC only. "
    "Reason briefly, then end with exactly one line: {instruction}"
)
GROUNDED_RUBRIC = (
    "Every factual claim in the RESPONSE is supported by the CONTEXT. PASS if all claims are "
    "supported by the context; FAIL if any claim is missing from or contradicts the context."
)


def context_of(item: DatasetItem) -> str | None:
    """The item's supplied context: `metadata.context`, else the `context` variable;
    a list of passages is joined."""
    raw: Any = item.metadata.get("context")
    if raw is None and item.variables:
        raw = item.variables.get("context")
    if isinstance(raw, list):
        raw = "\n".join(str(p) for p in cast("list[Any]", raw))
    return raw if isinstance(raw, str) and raw.strip() else None


def _words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS]


def overlap_support(output: str, context: str, *, threshold: float) -> tuple[float, list[str]]:
    """(share of the answer's sentences whose content words are mostly in the context,
    the unsupported sentences). A sentence is supported when at least `threshold` of its
    content words (stop words dropped) occur in the context."""
    known = set(_words(context))
    sentences = [s.strip() for s in _SENTENCE.split(output) if _words(s)]
    if not sentences:
        return 1.0, []
    unsupported = [s for s in sentences if sum(w in known for w in _words(s)) / len(_words(s)) < threshold]
    return (len(sentences) - len(unsupported)) / len(sentences), unsupported


def parse_verdict(text: str, scale: tuple[float, float] | None) -> float | None:
    """A judge answer's verdict in [0, 1]: the last `VERDICT:` (PASS 1, FAIL 0), or with a
    scale the last `SCORE:` mapped onto [0, 1]; None when there is none (or out of range)."""
    if scale is None:
        found = _VERDICT.findall(text)
        if found:
            return 1.0 if found[-1].upper() == "PASS" else 0.0
        bare = text.strip().strip(".*").upper()
        return 1.0 if bare == "PASS" else 0.0 if bare == "FAIL" else None
    scores = _SCORE.findall(text)
    if not scores:
        return None
    low, high = scale
    value = float(scores[-1])
    return (value - low) / (high - low) if low <= value <= high else None


def _render_input(item: DatasetItem) -> str:
    parts: list[str] = []
    if item.variables:
        parts.append(json.dumps(item.variables, ensure_ascii=False, indent=1, default=str))
    for message in item.messages or []:
        content: Any = message.get("content")
        text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
        parts.append(f"{message.get('role', 'user')}: {text}")
    return "\n".join(parts) or "(none)"


class EmbeddingSimilarity:
    """The cosine similarity of the answer's and the expected output's MiniLM embeddings
    (clipped to [0, 1]). Option `threshold` (0.8) only marks `passed` in the detail."""

    def __init__(self, name: str, options: Mapping[str, Any], env: EvaluatorEnv) -> None:
        self.name = name
        self.env = env
        self.threshold = option(options, "threshold", float, 0.8, evaluator=name)
        known_options(name, options, {"threshold"})

    def spec(self) -> dict[str, Any]:
        return {"type": "embedding_similarity", "model": MODEL_ID}

    async def evaluate(self, case: Case) -> Score:
        expected = expected_text(case.item)
        if expected is None:
            return Score(None, {"reason": "the item has no expected output"})
        answer, reference = await self.env.embed([case.output, expected])
        similarity = cosine(answer, reference)
        return Score(max(0.0, min(1.0, similarity)), {"cosine": round(similarity, 6), "passed": similarity >= self.threshold})


class Judge:
    """LLM-as-judge. Options: `rubric` (required), `model` (default `[evals] judge_model`),
    `trials` (default `[evals] judge_trials`), `scale` (absent: PASS/FAIL; `[low, high]`:
    a numeric score), `temperature` (0), `max_tokens` (512)."""

    kind = "judge"

    def __init__(self, name: str, options: Mapping[str, Any], env: EvaluatorEnv) -> None:
        self.name = name
        self.env = env
        known_options(name, options, {"rubric", "model", "trials", "scale", "temperature", "max_tokens"})
        self.rubric = option(options, "rubric", str, self.default_rubric(), evaluator=name)
        if not self.rubric.strip():
            raise InvalidRequest(f"evaluator {name}: option 'rubric' is required.", param="rubric")
        model = options.get("model", env.config.judge_model)
        if not isinstance(model, str) or not model:
            raise InvalidRequest(
                f"evaluator {name}: no judge model: set [evals] judge_model or the option 'model'.", param="model"
            )
        if model.startswith("prompt:"):
            try:
                split_pinned(model.partition(":")[2])
            except ValueError:
                raise InvalidRequest(f"evaluator {name}: the judge must be pinned: {model!r} is a label.",
                                     param="model") from None
        self.model = model
        self.trials = option(options, "trials", int, env.config.judge_trials, evaluator=name)
        self.temperature = option(options, "temperature", float, 0.0, evaluator=name)
        self.max_tokens = option(options, "max_tokens", int, 512, evaluator=name)
        self.scale = self._scale(options.get("scale"))
        if not 1 <= self.trials <= 20:
            raise InvalidRequest(f"evaluator {name}: trials must be 1 to 20.", param="trials")

    def default_rubric(self) -> str:
        return ""

    def _scale(self, raw: Any) -> tuple[float, float] | None:
        if raw is None:
            return None
        values = cast("list[Any]", raw) if isinstance(raw, list) else []
        if len(values) != 2 or not all(isinstance(v, int | float) for v in values) or values[0] >= values[1]:
            raise InvalidRequest(f"evaluator {self.name}: scale is [low, high], e.g. [1, 5].", param="scale")
        return float(values[0]), float(values[1])

    def spec(self) -> dict[str, Any]:
        return {"type": self.kind, "rubric": self.rubric, "model": self.model, "trials": self.trials,
                "scale": self.scale, "temperature": self.temperature}

    def messages(self, case: Case) -> list[dict[str, str]]:
        if self.scale is None:
            instruction = "VERDICT: PASS or VERDICT: FAIL"
        else:
            instruction = f"SCORE: N, where N is a number from {self.scale[0]:g} to {self.scale[1]:g}"
        parts = [f"RUBRIC:\n{self.rubric}", f"INPUT:\n{_render_input(case.item)}"]
        context = context_of(case.item)
        if context is not None:
            parts.append(f"CONTEXT:\n{context}")
        expected = expected_text(case.item)
        if expected is not None:
            parts.append(f"REFERENCE ANSWER:\n{expected}")
        parts.append(f"RESPONSE:\n{case.output}")
        return [
            {"role": "system", "content": JUDGE_SYSTEM.format(instruction=instruction)},
            {"role": "user", "content": "\n\n".join(parts)},
        ]

    async def evaluate(self, case: Case) -> Score:
        chat = self.env.chat
        if chat is None:
            return Score(None, {"reason": "no gateway to call the judge through"})
        messages = self.messages(case)

        async def trial() -> tuple[str | None, str | None]:
            try:
                text = await chat(self.model, messages, temperature=self.temperature, max_tokens=self.max_tokens)
                return text, None
            except LockgateError as exc:
                return None, exc.message

        answers = await asyncio.gather(*(trial() for _ in range(self.trials)))
        verdicts = [parse_verdict(text, self.scale) if text is not None else None for text, _ in answers]
        failed = [err for _, err in answers if err is not None]
        parsed = [v for v in verdicts if v is not None]
        detail: dict[str, Any] = {
            "model": self.model, "trials": self.trials, "verdicts": verdicts,
            "unparseable": sum(1 for (text, _), v in zip(answers, verdicts, strict=True) if text is not None and v is None),
            "failed": len(failed),
        }
        if failed:
            detail["errors"] = sorted(set(failed))[:3]
        unparsed = [text[:200] for (text, _), v in zip(answers, verdicts, strict=True) if text is not None and v is None]
        if unparsed:
            detail["unparsed_answers"] = unparsed[:3]
        return Score(sum(parsed) / len(parsed) if parsed else None, detail)


class Groundedness(Judge):
    """Is the answer supported by the item's context (`metadata.context`, or the
    `context` variable)? Option `method`: `overlap` (default; no model: the share of the
    answer's sentences whose content words are at least `threshold` (0.6) in the
    context) or `judge` (the judge with a groundedness rubric; the judge's options apply)."""

    kind = "groundedness"

    def __init__(self, name: str, options: Mapping[str, Any], env: EvaluatorEnv) -> None:
        self.method = option(options, "method", str, "overlap", evaluator=name)
        self.threshold = option(options, "threshold", float, 0.6, evaluator=name)
        rest = {k: v for k, v in options.items() if k not in ("method", "threshold")}
        if self.method == "judge":
            super().__init__(name, rest, env)
        elif self.method == "overlap":
            known_options(name, rest, set())
            self.name, self.env = name, env
        else:
            raise InvalidRequest(f"evaluator {name}: method is 'overlap' or 'judge'.", param="method")

    def default_rubric(self) -> str:
        return GROUNDED_RUBRIC

    def spec(self) -> dict[str, Any]:
        if self.method == "judge":
            return {**super().spec(), "method": "judge"}
        return {"type": self.kind, "method": "overlap", "threshold": self.threshold}

    async def evaluate(self, case: Case) -> Score:
        context = context_of(case.item)
        if context is None:
            return Score(None, {"reason": "the item has no context (metadata.context or the context variable)"})
        if self.method == "judge":
            return await super().evaluate(case)
        share, unsupported = overlap_support(case.output, context, threshold=self.threshold)
        return Score(share, {"unsupported": unsupported[:5]} if unsupported else {})
