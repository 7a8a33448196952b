"""Redaction with placeholders, reversible within one request.

Each redacted value becomes `<ENTITY_N>` (`<CREDIT_CARD_1>`, `<EMAIL_ADDRESS_2>`); the
same value gets the same placeholder throughout the request, so the model can still
tell two people's e-mail addresses apart and refer back to them. When the scanner
that redacted a value has `restore = true`, the vault keeps the original in this
request's memory only, and the answer's placeholders are swapped back before it
leaves the gateway. Nothing else sees the originals: the provider, the logs, traces
and the audit ledger get the redacted request; the vault dies with the request.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from lockgate.guard.types import Finding

__all__ = ["PLACEHOLDER", "Vault", "redact_spans"]

PLACEHOLDER = re.compile(r"<([A-Z][A-Z0-9_]*?)_(\d{1,4})>")
_PARTIAL = re.compile(r"<[A-Z0-9_]{0,40}$")  # the start of a placeholder cut by a stream chunk


class Vault:
    __slots__ = ("_counts", "_originals", "_placeholders")

    def __init__(self) -> None:
        self._placeholders: dict[tuple[str, str], str] = {}
        self._originals: dict[str, str] = {}
        self._counts: dict[str, int] = {}

    def __bool__(self) -> bool:
        return bool(self._originals)

    def placeholder(self, entity: str, value: str, *, keep: bool) -> str:
        found = self._placeholders.get((entity, value))
        if found is None:
            n = self._counts.get(entity, 0) + 1
            self._counts[entity] = n
            found = f"<{entity}_{n}>"
            self._placeholders[(entity, value)] = found
        if keep:
            self._originals[found] = value
        return found

    def restore(self, text: str) -> str:
        if not self._originals or "<" not in text:
            return text
        return PLACEHOLDER.sub(lambda m: self._originals.get(m.group(0), m.group(0)), text)

    def unrestore(self, text: str) -> str:
        """Put the placeholders back over the original values (for what is recorded)."""
        for placeholder, original in self._originals.items():
            text = text.replace(original, placeholder)
        return text

    @staticmethod
    def partial_tail(text: str) -> int:
        """How many characters at the end of `text` may be the start of a placeholder."""
        m = _PARTIAL.search(text)
        return len(text) - m.start() if m else 0


def redact_spans(text: str, spans: Iterable[tuple[Finding, bool]], vault: Vault) -> str:
    """Replace each finding's span (keep=True: remember the original for restoring)."""
    out: list[str] = []
    last = 0
    for finding, keep in sorted(spans, key=lambda s: s[0].start):
        if finding.start < last:
            continue  # overlaps one already replaced
        out.append(text[last : finding.start])
        if finding.entity == "TOO_LONG":  # the length check redacts by truncating
            return "".join(out)
        value = text[finding.start : finding.end]
        out.append(vault.placeholder(finding.entity, value, keep=keep))
        last = finding.end
    out.append(text[last:])
    return "".join(out)
