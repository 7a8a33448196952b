"""The `pii` scanner: personal data, on Presidio's recognizers without its NLP step.

Presidio's `AnalyzerEngine` runs a spaCy pipeline over every text before its
recognizers; with no downloadable model here (and ~8 ms per 2 KB even with a blank
one) we call Presidio's pattern recognizers directly instead: their regexes and their
checksum validators (Luhn for cards, mod-97 for IBANs, the check characters of the
Spanish NIF, Italian codice fiscale, Polish PESEL and Finnish HETU). Where Presidio's
own recognizer is weak or slow we subclass `PatternRecognizer` with our own patterns
(phone numbers: Presidio's `phonenumbers` matcher costs 4 ms per 2 KB; US SSN; date of
birth; e-mail, whose Presidio validator looks the suffix list up over the network).

Context, the way Presidio's context enhancer does it but without lemmas: a context
word shortly before a match raises its score (an SSN after "SSN:"), a negative word
lowers it (a card-shaped number after "order #"). Cheap prefilters skip recognizers
whose shape cannot occur in the text (no `@`, no digits), so prose costs microseconds.

Person names need a named-entity model: with `[guardrails] ner_model` naming an
installed spaCy package (e.g. `en_core_web_sm`), `PERSON` runs Presidio's
`SpacyRecognizer` on it; without one, asking for `PERSON` is a config error.
"""

from __future__ import annotations

import contextlib
import re
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import phonenumbers
from presidio_analyzer import EntityRecognizer, Pattern, PatternRecognizer
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    EsNifRecognizer,
    FiPersonalIdentityCodeRecognizer,
    IbanRecognizer,
    IpRecognizer,
    ItFiscalCodeRecognizer,
    PlPeselRecognizer,
)

from lockgate.guard.types import Finding, ScanContext, Scanner

__all__ = ["STRUCTURED_ENTITIES", "PiiScanner"]

STRUCTURED_ENTITIES = ("EMAIL_ADDRESS", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "PHONE_NUMBER")


class _Email(PatternRecognizer):
    PATTERNS: ClassVar[list[Pattern]] = [
        Pattern(
            "email",
            r"(?<![\w.+-])[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
            r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-])",
            0.6,
        )
    ]

    def __init__(self, suffixes: Callable[[str], bool]) -> None:
        super().__init__(supported_entity="EMAIL_ADDRESS", patterns=self.PATTERNS, context=["email", "mail"])
        self._known_suffix = suffixes

    def validate_result(self, pattern_text: str) -> bool | None:
        return self._known_suffix(pattern_text.rsplit("@", 1)[-1])


class _Phone(PatternRecognizer):
    PATTERNS: ClassVar[list[Pattern]] = [
        Pattern(
            "international",
            r"(?<![\w+])\+\d{1,3}(?:\s?\(0\))?(?:[ .-]?\(\d{1,4}\)|[ .-]?\d{1,4})(?:[ .-]?\d{2,4}){1,4}"
            r"(?:\s?(?:x|ext\.?)\s?\d{1,5})?(?![\w-]|\.\d)",
            0.7,
        ),
        Pattern(
            "north-american",
            r"(?<![\w-])(?:001[ .-])?(?:\(\d{3}\)\s?|\d{3}[.-])\d{3}[.-]\d{4}(?:\s?(?:x|ext\.?)\s?\d{1,5})?(?![\w-]|\.\d)",
            0.6,
        ),
        Pattern("national", r"(?<![\w.-])0\d{1,4}(?:[ /.-]?\d{2,4}){2,4}(?![\w-]|\.\d)", 0.35),
        Pattern("national-parenthesised", r"(?<![\w.-])\(0\d{1,4}\)\s?\d{3,8}(?:[ -]\d{2,4}){0,2}(?![\w-]|\.\d)", 0.35),
        Pattern("ten-digits", r"(?<![\w.+-])[2-9]\d{9}(?![\w-]|\.\d)", 0.3),
    ]

    def __init__(self) -> None:
        super().__init__(supported_entity="PHONE_NUMBER", patterns=self.PATTERNS, context=[])

    def validate_result(self, pattern_text: str) -> bool | None:
        digits = re.sub(r"(?:x|ext\.?)\s?\d+$", "", pattern_text)
        digits = re.sub(r"\D", "", digits)
        if not 7 <= len(digits) <= 15:
            return False
        if pattern_text.startswith("+"):
            try:
                number = phonenumbers.parse(pattern_text.split("x")[0], None)
            except phonenumbers.NumberParseException:
                return False
            return bool(phonenumbers.is_possible_number(number))
        return None  # keep the pattern's score


class _Card(CreditCardRecognizer):
    """Presidio's card recognizer (Luhn), plus Mastercard's 2221-2720 range its pattern lacks."""

    def __init__(self) -> None:
        super().__init__()
        series2 = r"\b2(?:2[2-9]\d|[3-6]\d\d|7[01]\d|720)[- ]?\d{4}[- ]?\d{4}[- ]?\d{4}\b"
        # A new list: Presidio's is its class attribute, shared by every instance.
        self.patterns = [*self.patterns, Pattern("mastercard-2-series", series2, 0.3)]


class _Ssn(PatternRecognizer):
    PATTERNS: ClassVar[list[Pattern]] = [
        Pattern("dashed", r"(?<![\w-])(?!000|666|9\d\d)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}(?![\w-])", 0.6),
        Pattern("plain", r"(?<![\w-])(?!000|666|9\d\d)\d{3}(?!00)\d{2}(?!0000)\d{4}(?![\w-])", 0.2),
    ]

    def __init__(self) -> None:
        super().__init__(supported_entity="US_SSN", patterns=self.PATTERNS, context=[])

    def invalidate_result(self, pattern_text: str) -> bool | None:
        digits = re.sub(r"\D", "", pattern_text)
        return len(set(digits)) == 1 or digits in ("123456789", "078051120", "219099999")


_MONTHS = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"


class _Birth(PatternRecognizer):
    """A date; only counts as a date of birth next to words that say so (context)."""

    PATTERNS: ClassVar[list[Pattern]] = [
        Pattern("numeric", r"(?<![\w/.-])(?:\d{1,2}[/.-]\d{1,2}[/.-](?:19|20)\d{2}|(?:19|20)\d{2}-\d{2}-\d{2})(?![\w/-]|\.\d)", 0.2),
        Pattern("words", rf"(?i)\b(?:\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTHS},?\s+(?:19|20)\d{{2}}|{_MONTHS}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+(?:19|20)\d{{2}})\b", 0.2),
    ]

    def __init__(self) -> None:
        super().__init__(supported_entity="DATE_OF_BIRTH", patterns=self.PATTERNS, context=[])


@dataclass(frozen=True, slots=True)
class _Rule:
    entity: str
    recognizer: EntityRecognizer
    gate: str  # a cheap shape the text must have for the recognizer to run (see _GATES)
    context: tuple[str, ...] = ()
    negative: tuple[str, ...] = ()
    boost: float = 0.35
    max_len: int = 64


_NEG_NUMBER = ("order", "invoice", "tracking", "ref", "reference", "sku", "serial", "part", "ticket",
               "transaction", "confirmation", "isbn", "version", "build", "shipment", "#")


# One search per shape, shared by every recognizer that needs it: prose without a run
# of seven digits skips all the number-shaped recognizers for ~25 µs per 2 KB.
_DIGITS7 = re.compile(r"[0-9](?:[^0-9]{0,2}[0-9]){6}")
_IP = re.compile(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]|[0-9a-fA-F]{1,4}:[0-9a-fA-F]{0,4}:")
_BIRTH_WORDS = ("born", "birth", "dob", "d.o.b")


def _gates(text: str, lowered: str) -> dict[str, list[tuple[int, int]]]:
    """Where each family of recognizers must look: the whole text, or (for numbers) only
    windows around runs of digits, so 2 KB of prose with two numbers costs two windows."""
    whole = [(0, len(text))]
    return {
        "@": whole if "@" in text else [],
        "digits": _windows(text),
        "ip": whole if _IP.search(text) else [],
        "birth": whole if any(w in lowered for w in _BIRTH_WORDS) else [],
    }


class _View:
    """The windows of a text joined by blank lines (no pattern crosses three newlines), so
    each recognizer runs once per text; `original` maps a span back."""

    __slots__ = ("starts", "text", "windows")
    SEP = "\n\n\n"

    def __init__(self, text: str, windows: list[tuple[int, int]]) -> None:
        self.windows = windows
        self.text = text if windows == [(0, len(text))] else self.SEP.join(text[a:b] for a, b in windows)
        self.starts: list[int] = []
        at = 0
        for a, b in windows:
            self.starts.append(at)
            at += b - a + len(self.SEP)

    def original(self, start: int, end: int) -> tuple[int, int] | None:
        i = bisect_right(self.starts, start) - 1
        a, b = self.windows[i]
        offset = a - self.starts[i]
        if end + offset > b:
            return None
        return start + offset, end + offset


def _windows(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for m in _DIGITS7.finditer(text):
        start, end = max(0, m.start() - 48), min(len(text), m.end() + 16)
        if spans and start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
    return spans


def _rules(suffixes: Callable[[str], bool]) -> list[_Rule]:
    return [
        _Rule("EMAIL_ADDRESS", _Email(suffixes), "@", max_len=254),
        _Rule("CREDIT_CARD", _Card(), "digits",
              ("card", "visa", "mastercard", "amex", "credit", "debit", "cc", "payment"), _NEG_NUMBER, 0.2, 24),
        _Rule("IBAN_CODE", IbanRecognizer(), "digits",
              ("iban", "account", "bank", "transfer"), max_len=42),
        _Rule("US_SSN", _Ssn(), "digits",
              ("ssn", "social security", "social-security", "ss#", "ss number"),
              (*_NEG_NUMBER, "zip", "phone", "tel"), 0.4, 11),
        _Rule("PHONE_NUMBER", _Phone(), "digits",
              ("phone", "call", "tel", "mobile", "cell", "fax", "reach", "contact", "number", "text",
               "whatsapp", "dial", "ring"), (*_NEG_NUMBER, "ssn", "iban", "card"), 0.3, 32),
        _Rule("IP_ADDRESS", IpRecognizer(), "ip",
              ("ip", "ipv4", "ipv6", "address", "host", "server"), ("version", "v", "release"), 0.2, 45),
        _Rule("DATE_OF_BIRTH", _Birth(), "birth",
              ("born", "birth", "dob", "d.o.b", "birthday", "b."), (), 0.6, 24),
        _Rule("ES_NIF", EsNifRecognizer(), "digits",
              ("dni", "nif", "documento", "identidad"), _NEG_NUMBER, 0.35, 10),
        _Rule("IT_FISCAL_CODE", ItFiscalCodeRecognizer(), "digits",
              ("codice fiscale", "fiscal code", "cf"), (), 0.35, 16),
        _Rule("PL_PESEL", PlPeselRecognizer(), "digits", ("pesel",), _NEG_NUMBER, 0.35, 11),
        _Rule("FI_PERSONAL_IDENTITY_CODE", FiPersonalIdentityCodeRecognizer(), "digits",
              ("hetu", "henkilötunnus", "personal identity code", "identity code"), (), 0.35, 11),
    ]


ALL_ENTITIES = (
    "EMAIL_ADDRESS", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "PHONE_NUMBER", "IP_ADDRESS", "DATE_OF_BIRTH",
    "ES_NIF", "IT_FISCAL_CODE", "PL_PESEL", "FI_PERSONAL_IDENTITY_CODE",
)


class PiiScanner(Scanner):
    """Personal data: e-mail, phone, card (Luhn), IBAN (mod 97), US SSN, IP address, date
    of birth, ES/IT/PL/FI national ids, and PERSON with a named-entity model."""

    name = "pii"
    version = "1"
    max_match = 254

    def __init__(self, options: Any, *, entities: frozenset[str] | None, resources: Any) -> None:
        super().__init__(options, entities=entities, resources=resources)
        wanted = entities if entities is not None else frozenset(ALL_ENTITIES)
        self._rules = [r for r in _rules(resources.email_suffix_known) if r.entity in wanted]
        self._ner: Any = resources.person_recognizer() if "PERSON" in wanted else None
        self._compiled: dict[str, list[tuple[re.Pattern[str], float]]] = {}
        for rule in self._rules:
            recognizer: Any = rule.recognizer
            flags = int(getattr(recognizer, "global_regex_flags", 0) or 0)
            # A pattern only the `regex` module understands is left to Presidio's analyze.
            with contextlib.suppress(re.error):
                self._compiled[rule.entity] = [(re.compile(p.regex, flags), float(p.score)) for p in recognizer.patterns]
        self.max_match = max((r.max_len for r in self._rules), default=64)

    @classmethod
    def entities(cls, options: Any) -> frozenset[str]:
        return frozenset((*ALL_ENTITIES, "PERSON"))

    def _analyze(self, rule: _Rule, text: str) -> list[tuple[int, int, float]]:
        """The recognizer's patterns and validators, the way Presidio's `analyze` applies
        them, without its per-match bookkeeping (explanations, timing, the `regex`
        module's timeouts): 3-10x cheaper. IBAN keeps Presidio's own `analyze`."""
        recognizer: Any = rule.recognizer
        compiled = self._compiled.get(rule.entity)
        if compiled is None or isinstance(recognizer, IbanRecognizer):
            results: list[Any] = list(recognizer.analyze(text, [rule.entity], cast(Any, None)))
            return [(int(r.start), int(r.end), float(r.score)) for r in results]
        out: list[tuple[int, int, float]] = []
        for pattern, score in compiled:
            for m in pattern.finditer(text):
                value = m.group(0)
                if not value:
                    continue
                valid = recognizer.validate_result(value)
                if valid is False or recognizer.invalidate_result(value):
                    continue
                out.append((m.start(), m.end(), 1.0 if valid else score))
        return out

    def scan(self, text: str, ctx: ScanContext) -> list[Finding]:
        found: list[Finding] = []
        lowered = text.lower()
        gates = _gates(text, lowered)
        views = {name: _View(text, windows) for name, windows in gates.items() if windows}
        for rule in self._rules:
            view = views.get(rule.gate)
            if view is None:
                continue
            for start, end, base in self._analyze(rule, view.text):
                span = view.original(start, end)
                if span is None or not _bounded(text, *span):
                    continue  # across two windows, or inside a longer token (a PESEL-shaped run in an IBAN)
                score = _with_context(rule, lowered, span[0], span[1], base)
                found.append(Finding(rule.entity, span[0], span[1], score))
        if self._ner is not None:
            found.extend(self._ner(text))
        return resolve_overlaps(found)


def _with_context(rule: _Rule, lowered: str, start: int, end: int, score: float) -> float:
    if score >= 1.0 and not rule.negative:
        return 1.0
    before = lowered[max(0, start - 40) : start]
    positive = bool(rule.context) and _has_word(before + " " + lowered[end : end + 12], rule.context)
    if rule.negative and _has_word(before[-24:], rule.negative) and not (
        positive and _has_word(before[-16:], rule.context)
    ):
        return max(0.0, score - 0.6)
    return min(1.0, score + rule.boost) if positive else score


def _bounded(text: str, start: int, end: int) -> bool:
    return (start == 0 or not text[start - 1].isalnum()) and (end >= len(text) or not text[end].isalnum())


def _word_char(c: str) -> bool:
    return c.isalnum() or c == "_"


def _has_word(window: str, words: Sequence[str]) -> bool:
    for word in words:
        i = window.find(word)
        while i >= 0:
            before_ok = i == 0 or not _word_char(window[i - 1]) or not _word_char(word[0])
            j = i + len(word)
            after_ok = j >= len(window) or not _word_char(window[j]) or not _word_char(word[-1])
            if before_ok and after_ok:
                return True
            i = window.find(word, i + 1)
    return False


def resolve_overlaps(found: list[Finding]) -> list[Finding]:
    """Keep the best of overlapping findings (highest score, then longest), in text order."""
    if len(found) < 2:
        return found
    kept: list[Finding] = []
    for f in sorted(found, key=lambda f: (-f.score, -(f.end - f.start), f.start)):
        if all(f.end <= k.start or f.start >= k.end for k in kept):
            kept.append(f)
    return sorted(kept, key=lambda f: f.start)
