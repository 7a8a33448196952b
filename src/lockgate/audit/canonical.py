"""RFC 8785 (JSON Canonicalization Scheme) bytes for a JSON value, fast.

`rfc8785.dumps` is the reference, in pure Python (about 80 µs for one audit event).
msgspec, with sorted keys, writes byte-identical output (same string escaping, same
shortest round-trip digits) in about 2 µs, except in two cases, which a scan of its
output detects, falling back to the reference:

- floats that msgspec writes with an exponent or as integral (`1e16`, `1.5e-6`,
  `100.0`) where JCS writes plain digits (`10000000000000000`, `0.0000015`, `100`):
  caught by looking for number tokens (after `:`, `,` or `[`) with an exponent or a
  `.0` ending; text inside strings can only cause a needless fallback, never a miss;
- characters outside the Basic Multilingual Plane (4-byte UTF-8), where JCS's key
  order (UTF-16 code units) can differ from msgspec's (code points).

A property test holds the two paths byte-equal.
"""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec
import rfc8785

__all__ = ["Canonical", "canonical", "is_plain_float", "json_number", "number", "payload_bytes"]

_encode = msgspec.json.Encoder(order="sorted").encode
# Where msgspec and JCS could differ: an exponent or an integral ".0" ending (checked
# below to be inside a number token, not text), or a 4-byte UTF-8 lead byte. The pattern
# starts with a character set, so `re` skips ahead quickly (about 1 ns a byte).
_CANDIDATE = re.compile(rb"[eE][-+]?\d|\.0[,\]}]|\.0$|[\xf0-\xf4]")
_NUMBER_CHARS = frozenset(b"0123456789.-")
_TOKEN_START = frozenset(b":,[")


class Canonical(bytes):
    """Bytes already in RFC 8785 form (a caller that knows its value's shape made them
    without the scan); `canonical()` and digests take them as they are."""


def canonical(value: Any) -> bytes:
    """The RFC 8785 bytes of `value` (dicts, lists, str, int, float, bool, None)."""
    if isinstance(value, Canonical):
        return value
    if isinstance(value, str):  # msgspec escapes strings exactly as JCS does
        return _encode(value)
    try:
        out = _encode(value)
    except (TypeError, ValueError, OverflowError):
        return rfc8785.dumps(value)  # raises the reference's own error
    if _needs_reference(out):
        return rfc8785.dumps(value)
    return out


def payload_bytes(value: Any) -> bytes:
    """A payload's bytes for its digest and storage: RFC 8785 when the value is in its
    domain; otherwise (an integer beyond 2^53, which JSON allows and RFC 8785 does not,
    in a request a client sent) msgspec's sorted JSON, and failing that Python's. A
    payload's digest never fails the request it records."""
    try:
        return canonical(value)
    except (ValueError, TypeError, OverflowError):
        pass
    try:
        return _encode(value)
    except (ValueError, TypeError, OverflowError):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def _needs_reference(out: bytes) -> bool:
    for match in _CANDIDATE.finditer(out):
        at = match.start()
        if out[at] >= 0xF0:
            return True
        i = at - 1
        if i < 0 or not 48 <= out[i] <= 57:  # not preceded by a digit: text, not a number
            continue
        while i >= 0 and out[i] in _NUMBER_CHARS:
            i -= 1
        if i < 0 or out[i] in _TOKEN_START:  # the digits begin a number token
            return True
    return False


def is_plain_float(x: float) -> bool:
    """True when msgspec writes this float exactly as JCS does (no scan needed)."""
    return not x.is_integer() and (1e-5 <= abs(x) < 1e15)


def json_number(x: float) -> bytes:
    """A float as RFC 8785 writes it (ECMAScript's Number::toString): the shortest
    round-trip digits (Python's `repr` has the same), placed by ECMA-262 7.1.12.1."""
    if x != x or x in (_INF, -_INF):
        raise ValueError("NaN and infinities are not JSON numbers")
    if x == 0:
        return b"0"
    if x < 0:
        return b"-" + json_number(-x)
    mantissa, _, exp = repr(x).partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    trimmed = digits.rstrip("0")
    k = len(trimmed)
    # x = 0.<trimmed> x 10^n
    n = k + (int(exp) if exp else 0) - len(frac) + (len(digits) - k)
    if k <= n <= 21:
        text = trimmed + "0" * (n - k)
    elif 0 < n <= 21:
        text = trimmed[:n] + "." + trimmed[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * -n + trimmed
    else:
        e = n - 1
        head = trimmed[0] + ("." + trimmed[1:] if k > 1 else "")
        text = f"{head}e{'+' if e >= 0 else '-'}{abs(e)}"
    return text.encode()


def number(x: float | None) -> float | msgspec.Raw | None:
    """`x` ready for msgspec to write in RFC 8785 form: itself when msgspec already
    writes it so, else its exact bytes as `msgspec.Raw`."""
    if x is None or isinstance(x, int) or is_plain_float(x):
        return x
    return msgspec.Raw(json_number(x))


_INF = float("inf")
