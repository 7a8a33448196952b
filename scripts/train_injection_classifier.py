"""Train the `injection_classifier` guardrail: logistic regression over MiniLM embeddings.

    .venv/bin/python scripts/train_injection_classifier.py

Offline and deterministic (fixed seeds; numpy only, no ML framework). Steps:

1. Build the training split from `injection_train_data.py` (curated attack templates,
   goals, openers, indirect payloads in benign carriers, benign prompts, hard
   negatives, technical text) and Faker prose and tool results with seed 4242 (the
   evaluation set uses 20240517). Texts that occur in the shipped evaluation set
   (`src/lockgate/guard/evalset/injection.jsonl`) are dropped; the script prints how
   close each evaluation text's nearest training text is (cosine of the embeddings),
   so the overlap in phrasing can be judged.
2. Embed every text whole (MiniLM reads up to 256 tokens) and, for a benign text
   longer than one of the scanner's windows (`lockgate.guard.classifier.windows`, 62
   tokens), each window too: the scanner scores windows, and a window of a benign text
   is a benign example. Attacks are embedded whole (the training split does not mark
   which window holds the payload).
3. Pick the L2 penalty by 5-fold cross-validation on the training split only (folds by
   template, so a fold's attacks are phrasings the model has not seen), then fit on all
   of it: class-balanced weights, Newton's method (IRLS), bias unpenalised.
4. Move the decision point for precision: the bias is lowered until at most
   TARGET_FP of the benign texts score >= 0.5 in that cross-validation (out-of-fold
   scores), so the scanner's default threshold 0.5 means "about 2% false positives on
   text like the training split's benign texts", not "balanced classes".
5. Write `src/lockgate/guard/_injection_weights.py` (the weights, the bias, the counts).

The evaluation set is never used to fit or to choose anything.
"""

# pyright: reportUnknownVariableType=false, reportUnknownArgumentType=false
from __future__ import annotations

import hashlib
import json
import random
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from faker import Faker
from injection_train_data import (
    ATTACKS,
    BENIGN,
    CARRIERS,
    GOALS,
    HARD_NEGATIVES,
    INDIRECT_PAYLOADS,
    OPENERS,
    TECHNICAL,
)

from lockgate.evals.embedding import MODEL_ID, MiniLM
from lockgate.guard.classifier import load_tokenizer, windows

ROOT = Path(__file__).resolve().parents[1]
EVALSET = ROOT / "src" / "lockgate" / "guard" / "evalset" / "injection.jsonl"
OUT = ROOT / "src" / "lockgate" / "guard" / "_injection_weights.py"
SEED = 4242
PENALTIES = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
TARGET_FP = 0.02
BENIGN_TASKS = ["Give me the gist of", "Fix the punctuation in", "Make this sound friendlier",
                "Turn this into bullet points", "What is the tone of", "Find the main claim in"]


def build(rnd: random.Random, fake: Faker) -> list[tuple[str, int, str]]:
    """(text, label, group) rows of the training split; the group is the template a
    text comes from (cross-validation keeps a template's texts in one fold)."""
    rows: list[tuple[str, int, str]] = []
    for template in ATTACKS:
        for _ in range(6 if "{g}" in template or "{G}" in template else 2):
            goal = rnd.choice(GOALS)
            text = template.format(g=goal, G=goal[0].upper() + goal[1:])
            rows.append((rnd.choice(OPENERS) + text, 1, template))
    for payload in INDIRECT_PAYLOADS:
        for _ in range(12):
            rows.append((_carry(rnd, fake, payload), 1, payload))
    for text in BENIGN + HARD_NEGATIVES + TECHNICAL:
        rows.append((text, 0, text))
    for text in BENIGN + HARD_NEGATIVES:
        rows.append((f"{text} {fake.sentence()}", 0, text))
    for _ in range(150):
        rows.append((fake.paragraph(nb_sentences=rnd.randint(2, 7)), 0, "prose"))
        rows.append((f"{rnd.choice(BENIGN_TASKS)}: {fake.paragraph(nb_sentences=3)}", 0, "prose"))
    for _ in range(260):  # the carriers with benign text where the payload was
        rows.append((_carry(rnd, fake, rnd.choice([fake.sentence(), fake.paragraph(nb_sentences=2), *HARD_NEGATIVES])),
                     0, "tool"))
    for _ in range(120):
        rows.append((_tool_result(rnd, fake), 0, "tool"))
    return rows


def _carry(rnd: random.Random, fake: Faker, payload: str) -> str:
    url = f"https://{fake.domain_name()}/{fake.uri_path()}"
    text = payload.replace("{url}", url).replace("{mail}", fake.free_email())
    carrier = rnd.choice(CARRIERS)
    return carrier.format(payload=text, filler=fake.paragraph(nb_sentences=rnd.randint(1, 4)),
                          title=fake.catch_phrase(), name=fake.name(), mail2=fake.company_email(),
                          n=rnd.randint(100, 99999), city=fake.city())


def _tool_result(rnd: random.Random, fake: Faker) -> str:
    kind = rnd.randrange(5)
    if kind == 0:
        return json.dumps({"orders": [{"id": rnd.randint(1000, 9999), "status": rnd.choice(["shipped", "pending"]),
                                       "customer": fake.name()} for _ in range(rnd.randint(1, 4))]})
    if kind == 1:
        return "date,product,units\n" + "\n".join(
            f"2024-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d},{fake.word()},{rnd.randint(1, 90)}"
            for _ in range(rnd.randint(2, 8)))
    if kind == 2:
        return "\n".join(f"2024-05-{rnd.randint(1, 28):02d}T{rnd.randint(0, 23):02d}:{rnd.randint(0, 59):02d}:00Z "
                         f"{rnd.choice(['INFO', 'WARN', 'DEBUG'])} {fake.sentence()}"
                         for _ in range(rnd.randint(2, 6)))
    if kind == 3:
        return f"Wikipedia: {fake.catch_phrase()}\n\n{fake.paragraph(nb_sentences=5)}\n\nSee also: {fake.word()}"
    return f"Forecast for {fake.city()}: {rnd.randint(-5, 35)}°C, {fake.word()}, wind {rnd.randint(0, 60)} km/h."


def _fit(x: Any, y: Any, penalty: float, iterations: int = 30) -> tuple[Any, float]:
    """L2-penalised logistic regression, class-balanced, by Newton's method."""
    n, d = int(x.shape[0]), int(x.shape[1])
    weight: Any = np.where(y == 1, n / (2 * y.sum()), n / (2 * (n - y.sum())))
    xb: Any = np.hstack([x, np.ones((n, 1))])
    w: Any = np.zeros(d + 1)
    reg: Any = np.full(d + 1, penalty * n)
    reg[-1] = 0.0  # the bias is not penalised
    for _ in range(iterations):
        p: Any = 1 / (1 + np.exp(-(xb @ w)))
        grad: Any = xb.T @ (weight * (p - y)) + reg * w
        hess: Any = (xb * (weight * p * (1 - p))[:, None]).T @ xb + np.diag(reg) + 1e-9 * np.eye(d + 1)
        step: Any = np.linalg.solve(hess, grad)
        w = w - step
        if np.abs(step).max() < 1e-8:
            break
    return w[:-1], float(w[-1])


def _out_of_fold(x: Any, y: Any, groups: Any, penalty: float) -> Any:
    """Each example's logit from the model fitted on the other 4 folds (folds by group:
    a template's texts, and the windows of one text, stay together)."""
    folds = groups % 5
    logits = np.zeros(len(y))
    for k in range(5):
        train, test = folds != k, folds == k
        w, b = _fit(x[train], y[train], penalty)
        logits[test] = x[test] @ w + b
    return logits


def _rates(logits: Any, y: Any, shift: float = 0.0) -> dict[str, float]:
    pred, truth = logits >= shift, y == 1
    tp, fp = int((pred & truth).sum()), int((pred & ~truth).sum())
    fn, tn = int((~pred & truth).sum()), int((~pred & ~truth).sum())
    precision = tp / (tp + fp) if tp + fp else 1.0
    return {"precision": round(precision, 4), "recall": round(tp / (tp + fn), 4), "fp_rate": round(fp / (fp + tn), 4)}


def main() -> None:
    rnd = random.Random(SEED)
    fake = Faker("en_US")
    fake.seed_instance(SEED)
    evaluation = {json.loads(line)["text"] for line in EVALSET.read_text("utf-8").splitlines() if line.strip()}
    rows: list[tuple[str, int, str]] = []
    seen: set[str] = set()
    for text, label, family in build(rnd, fake):
        if text not in seen and text not in evaluation:
            seen.add(text)
            rows.append((text, label, family))
    embedder, tokenizer = MiniLM(), load_tokenizer()
    vectors: list[list[float]] = []
    labels: list[int] = []
    groups: list[int] = []
    for i, (text, label, group) in enumerate(rows):
        parts = [text]
        if label == 0:
            parts += [w for w in windows(tokenizer, text) if w != text]
        for v in embedder.embed(parts):
            vectors.append(v)
            labels.append(label)
            groups.append(i if group in ("prose", "tool") else zlib.crc32(group.encode()))
    x, y, g = np.asarray(vectors), np.asarray(labels, dtype=np.float64), np.asarray(groups)
    logits = {c: _out_of_fold(x, y, g, c) for c in PENALTIES}
    for c, lg in logits.items():
        print(f"penalty {c:<6} 5-fold CV at 0.5: {_rates(lg, y)}")  # noqa: T201
    best = max(PENALTIES, key=lambda c: (min(_rates(logits[c], y)["precision"], _rates(logits[c], y)["recall"]), -c))
    benign = np.sort(logits[best][y == 0])
    shift = max(0.0, float(benign[int(np.ceil(len(benign) * (1 - TARGET_FP)))]) + 1e-6)
    cv = _rates(logits[best], y, shift)
    print(f"penalty {best}, decision shifted by {shift:.3f}: 5-fold CV {cv}")  # noqa: T201
    w, b = _fit(x, y, best)
    b -= shift
    _overlap(embedder, x, evaluation)
    counts = {"texts": len(rows), "windows": len(labels), "attacks": int(sum(r[1] for r in rows)),
              "benign": int(sum(1 - r[1] for r in rows)), "penalty": best, "shift": round(shift, 4), "cv": cv}
    digest = hashlib.sha256("\n".join(r[0] for r in rows).encode()).hexdigest()[:16]
    _write(w, b, counts, digest)
    print(f"wrote {OUT.relative_to(ROOT)}: {counts}")  # noqa: T201


def _overlap(embedder: MiniLM, x: Any, evaluation: set[str]) -> None:
    """How near each evaluation text's nearest training text is (reported, not used)."""
    ev = np.asarray(embedder.embed(sorted(evaluation)))
    nearest = (ev @ x.T).max(axis=1)
    for t in (0.99, 0.95, 0.9):
        print(f"evaluation texts with a training text at cosine >= {t}: {(nearest >= t).mean():.3f}")  # noqa: T201
    print(f"median nearest cosine: {float(np.median(nearest)):.3f}")  # noqa: T201


def _write(w: Any, b: float, counts: dict[str, Any], digest: str) -> None:
    numbers = [f"{float(v):.7g}" for v in w]
    lines = [", ".join(numbers[i : i + 8]) + "," for i in range(0, len(numbers), 8)]
    body = "\n".join(f"    {line}" for line in lines)
    OUT.write_text(
        f'"""Weights of the `injection_classifier` guardrail (generated by\n'
        f"scripts/train_injection_classifier.py; do not edit): a logistic regression over the\n"
        f'{MODEL_ID} embedding (384 dimensions), p = sigmoid(WEIGHTS . v + BIAS)."""\n\n'
        f'__all__ = ["BIAS", "EMBEDDING", "TRAINING", "WEIGHTS"]\n\n'
        f'EMBEDDING = "{MODEL_ID}"\n'
        f"TRAINING = {counts!r}  # training split sha256 prefix: {digest}\n"
        f"BIAS: float = {b:.7g}\n"
        f"WEIGHTS: tuple[float, ...] = (\n{body}\n)\n",
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
