"""Measure the scanners on the shipped, labelled set (`lockgate guard eval`).

- `pii`: span level, per entity. A predicted span counts as a true positive when it has
  the gold entity and covers at least half of the gold span; precision, recall and F1
  per entity, micro-averaged over the structured entities (email, card, IBAN, SSN,
  phone), and the false-positive rate: the share of texts without PII that get any
  finding.
- `secrets`: per text (a secret found or not): recall on texts with a secret, the
  false-positive rate on texts without; recall per entity.
- `injection`: per text: precision, recall and F1 for direct attacks (user messages)
  and indirect ones (tool results), and the false-positive rate on benign texts.
- `injection_classifier`: the same measures for the classifier alone, and under
  `with_rules` for the two together (a text counts as flagged when either flags it).
  It needs the `classifier` extra; without it, the default run leaves it out.

Every scanner runs with its defaults (all entities, threshold 0.5), exactly as
configured without options. `presidio_baseline()` runs Presidio's own
`AnalyzerEngine` with its default recognizers on the same PII set, for comparison.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

from lockgate.guard.injection import InjectionScanner
from lockgate.guard.pii import STRUCTURED_ENTITIES, PiiScanner
from lockgate.guard.resources import GuardResources
from lockgate.guard.secrets import SecretsScanner
from lockgate.guard.types import Finding, ScanContext

__all__ = ["SCANNERS", "evaluate", "format_report", "load_set", "presidio_baseline"]

SCANNERS = ("pii", "secrets", "injection", "injection_classifier")
THRESHOLD = 0.5


def load_set(name: str) -> Iterator[dict[str, Any]]:
    text = resources.files("lockgate.guard").joinpath("evalset", f"{name}.jsonl").read_text(encoding="utf-8")
    for line in text.splitlines():
        if line.strip():
            yield json.loads(line)


@dataclass(slots=True)
class _Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def row(self) -> dict[str, Any]:
        p = self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0
        r = self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f1, 4),
                "tp": self.tp, "fp": self.fp, "fn": self.fn}


def _covers(pred: Finding, gold: dict[str, Any]) -> bool:
    overlap = min(pred.end, gold["end"]) - max(pred.start, gold["start"])
    return pred.entity == gold["entity"] and overlap * 2 >= gold["end"] - gold["start"]


def evaluate_spans(cases: list[dict[str, Any]], predict: Callable[[str], list[Finding]]) -> dict[str, Any]:
    per: dict[str, _Counts] = {}
    negatives = flagged = 0
    started = time.perf_counter()
    for case in cases:
        preds = [p for p in predict(case["text"]) if p.score >= THRESHOLD]
        gold: list[dict[str, Any]] = case["spans"]
        if not gold:
            negatives += 1
            flagged += bool(preds)
        matched: set[int] = set()
        for g in gold:
            hit = next((i for i, p in enumerate(preds) if i not in matched and _covers(p, g)), None)
            counts = per.setdefault(g["entity"], _Counts())
            if hit is None:
                counts.fn += 1
            else:
                matched.add(hit)
                counts.tp += 1
        for i, p in enumerate(preds):
            if i not in matched:
                per.setdefault(p.entity, _Counts()).fp += 1
    structured = _Counts()
    for e in STRUCTURED_ENTITIES:
        c = per.get(e, _Counts())
        structured.tp, structured.fp, structured.fn = structured.tp + c.tp, structured.fp + c.fp, structured.fn + c.fn
    return {
        "cases": len(cases),
        "entities": {e: c.row() for e, c in sorted(per.items())},
        "structured": structured.row(),
        "fp_rate_benign": round(flagged / negatives, 4) if negatives else 0.0,
        "benign_cases": negatives,
        "seconds": round(time.perf_counter() - started, 3),
    }


def _eval_pii() -> dict[str, Any]:
    scanner = PiiScanner(None, entities=None, resources=GuardResources())
    ctx = ScanContext("user")
    return evaluate_spans(list(load_set("pii")), lambda text: scanner.scan(text, ctx))


def _eval_secrets() -> dict[str, Any]:
    scanner = SecretsScanner(None, entities=None, resources=None)
    ctx = ScanContext("user")
    found = missed = negatives = flagged = 0
    per: dict[str, _Counts] = {}
    started = time.perf_counter()
    cases = list(load_set("secrets"))
    for case in cases:
        preds = [p for p in scanner.scan(case["text"], ctx) if p.score >= THRESHOLD]
        if not case["spans"]:
            negatives += 1
            flagged += bool(preds)
            continue
        entity = case["spans"][0]["entity"]
        counts = per.setdefault(entity, _Counts())
        if preds:
            found += 1
            counts.tp += 1
        else:
            missed += 1
            counts.fn += 1
    recall = found / (found + missed) if found + missed else 1.0
    return {
        "cases": len(cases),
        "recall": round(recall, 4),
        "fp_rate_benign": round(flagged / negatives, 4) if negatives else 0.0,
        "positives": found + missed, "benign_cases": negatives, "false_positives": flagged,
        "entities": {e: {"recall": c.row()["recall"], "tp": c.tp, "fn": c.fn} for e, c in sorted(per.items())},
        "seconds": round(time.perf_counter() - started, 3),
    }


def _injection_counts(cases: list[dict[str, Any]], hits: list[bool], started: float) -> dict[str, Any]:
    splits = {"direct": _Counts(), "indirect": _Counts()}
    negatives = flagged = 0
    for case, hit in zip(cases, hits, strict=True):
        if case["label"]:
            c = splits[case["kind"]]
            c.tp, c.fn = c.tp + hit, c.fn + (not hit)
        else:
            negatives += 1
            flagged += hit
            # a benign text counts against the split of its place: user -> direct, tool -> indirect
            c = splits["indirect" if case["where"] == "tool" else "direct"]
            c.fp += hit
    return {
        "cases": len(cases),
        **{name: c.row() for name, c in splits.items()},
        "fp_rate_benign": round(flagged / negatives, 4) if negatives else 0.0,
        "benign_cases": negatives,
        "seconds": round(time.perf_counter() - started, 3),
    }


def _rule_hits(cases: list[dict[str, Any]]) -> list[bool]:
    scanner = InjectionScanner(None, entities=None, resources=None)
    return [any(f.score >= THRESHOLD for f in scanner.scan(c["text"], ScanContext(c["where"]))) for c in cases]


def _eval_injection() -> dict[str, Any]:
    started = time.perf_counter()
    cases = list(load_set("injection"))
    return _injection_counts(cases, _rule_hits(cases), started)


def _eval_injection_classifier() -> dict[str, Any]:
    from lockgate.guard.classifier import InjectionClassifierScanner

    scanner = InjectionClassifierScanner(None, entities=None, resources=GuardResources())
    scanner.model()  # load it before the clock starts
    cases = list(load_set("injection"))
    started = time.perf_counter()
    hits = [any(f.score >= THRESHOLD for f in scanner.scan(c["text"], ScanContext(c["where"]))) for c in cases]
    report = _injection_counts(cases, hits, started)
    both = [a or b for a, b in zip(hits, _rule_hits(cases), strict=True)]
    combined = _injection_counts(cases, both, started)
    report["with_rules"] = {k: combined[k] for k in ("direct", "indirect", "fp_rate_benign")}
    return report


_RUNNERS: dict[str, Callable[[], dict[str, Any]]] = {
    "pii": _eval_pii, "secrets": _eval_secrets, "injection": _eval_injection,
    "injection_classifier": _eval_injection_classifier,
}


def evaluate(scanners: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """The report for each named scanner (default: all; the classifier only when its extra
    is installed), as `lockgate guard eval --json` prints it."""
    if not scanners:
        from lockgate.guard.classifier import missing_extra

        scanners = [s for s in SCANNERS if s != "injection_classifier" or missing_extra() is None]
    return {name: _RUNNERS[name]() for name in scanners}


def presidio_baseline() -> dict[str, Any]:
    """Presidio's AnalyzerEngine out of the box (default recognizers, default threshold 0)
    on the PII set. Its default spaCy model cannot be installed here, so the NLP engine is a
    blank English pipeline: pattern recognizers work as shipped, NER (PERSON) does not."""
    import spacy
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    class _Blank(SpacyNlpEngine):
        def load(self) -> None:
            self.nlp = {"en": spacy.blank("en")}

    nlp = _Blank(models=[{"lang_code": "en", "model_name": "blank"}])
    nlp.load()
    registry = RecognizerRegistry()
    registry.load_predefined_recognizers(nlp_engine=nlp)
    engine = AnalyzerEngine(nlp_engine=nlp, registry=registry, supported_languages=["en"])

    def predict(text: str) -> list[Finding]:
        results: list[Any] = list(engine.analyze(text, language="en"))
        return [Finding(str(r.entity_type), int(r.start), int(r.end), max(float(r.score), THRESHOLD)) for r in results]

    return evaluate_spans(list(load_set("pii")), predict)


def format_report(report: dict[str, dict[str, Any]]) -> str:
    lines: list[str] = []
    for name, r in report.items():
        lines.append(f"{name} ({r['cases']} cases, {r['seconds']} s)")
        if "entities" in r and "structured" in r:
            lines.append(f"  {'entity':<28} {'precision':>9} {'recall':>7} {'f1':>6} {'tp':>5} {'fp':>4} {'fn':>4}")
            for e, row in r["entities"].items():
                lines.append(f"  {e:<28} {row['precision']:>9.3f} {row['recall']:>7.3f} {row['f1']:>6.3f}"
                             f" {row['tp']:>5} {row['fp']:>4} {row['fn']:>4}")
            s = r["structured"]
            lines.append(f"  {'structured (micro)':<28} {s['precision']:>9.3f} {s['recall']:>7.3f} {s['f1']:>6.3f}")
        elif name == "secrets":
            lines.append(f"  recall {r['recall']:.3f} on {r['positives']} texts with a secret")
            for e, row in r["entities"].items():
                lines.append(f"  {e:<28} recall {row['recall']:.3f} ({row['tp']}/{row['tp'] + row['fn']})")
        else:
            lines += _split_lines(r)
        lines.append(f"  false-positive rate on benign text: {r['fp_rate_benign']:.3f} ({r['benign_cases']} texts)")
        if "with_rules" in r:
            lines.append("  with the injection rules (either flags):")
            lines += _split_lines(r["with_rules"], "  ")
            lines.append(f"    false-positive rate on benign text: {r['with_rules']['fp_rate_benign']:.3f}")
    return "\n".join(lines)


def _split_lines(r: dict[str, Any], indent: str = "") -> list[str]:
    return [f"{indent}  {split:<10} precision {s['precision']:.3f} recall {s['recall']:.3f} f1 {s['f1']:.3f}"
            f" (tp {s['tp']}, fp {s['fp']}, fn {s['fn']})" for split in ("direct", "indirect") for s in (r[split],)]
