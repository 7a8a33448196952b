"""Heavy things scanners share, loaded once per engine and only when a scanner needs them:
the public-suffix list (offline snapshot), optionally a named-entity model, and models a
scanner builds through `shared` (the injection classifier)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import cached_property
from typing import Any, TypeVar, cast

from lockgate.errors import ConfigError
from lockgate.guard.types import Finding

__all__ = ["GuardResources", "ner_available"]

T = TypeVar("T")


def ner_available(model: str | None) -> str | None:
    """None when `model` names an installed spaCy package with an `ner` pipe; else why not."""
    if not model:
        return "PERSON needs a named-entity model: set [guardrails] ner_model to an installed spaCy package (e.g. en_core_web_sm)"
    import spacy.util

    if not spacy.util.is_package(model):
        return f"ner_model: the spaCy package {model!r} is not installed (pip install it; lockgate never downloads models)"
    return None


class GuardResources:
    def __init__(self, *, ner_model: str | None = None) -> None:
        self.ner_model = ner_model
        self._lock = threading.Lock()
        self._shared: dict[str, Any] = {}

    def shared(self, key: str, build: Callable[[], T]) -> T:
        """The object built once under `key` (by the first caller, others wait): thread-safe."""
        with self._lock:
            found = self._shared.get(key)
            if found is None:
                found = self._shared[key] = build()
            return cast(T, found)

    @cached_property
    def _suffixes(self) -> Any:
        import tldextract

        # The bundled snapshot only: no network fetch, no cache directory.
        return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)

    def email_suffix_known(self, domain: str) -> bool:
        return bool(self._suffixes(domain).suffix)

    def person_recognizer(self) -> Callable[[str], list[Finding]]:
        """Presidio's SpacyRecognizer on the configured spaCy model (PERSON)."""
        problem = ner_available(self.ner_model)
        if problem is not None:
            raise ConfigError(problem)
        from presidio_analyzer.nlp_engine import SpacyNlpEngine
        from presidio_analyzer.predefined_recognizers import SpacyRecognizer

        engine = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": str(self.ner_model)}])
        engine.load()
        recognizer = SpacyRecognizer(supported_entities=["PERSON"])

        def recognize(text: str) -> list[Finding]:
            artifacts = engine.process_text(text, "en")
            results: list[Any] = list(cast(Any, recognizer).analyze(text, ["PERSON"], artifacts))
            return [Finding("PERSON", int(r.start), int(r.end), float(r.score)) for r in results]

        return recognize
