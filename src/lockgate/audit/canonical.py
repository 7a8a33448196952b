"""RFC 8785 (JSON Canonicalization Scheme) bytes for a JSON value, fast.

`rfc8785.dumps` is the reference, in pure Python (about 80 µs for one audit event).
msgspec writes the same bytes in about 2 µs whenever the value holds no float that
the two format differently and no non-ASCII object key (JCS sorts keys by UTF-16 code
units, msgspec by code points; the orders agree on ASCII). One walk over the value
decides: integral floats become ints (JCS writes 1.0 as `1`), floats in the range
where both print the shortest round-trip digits stay, anything else takes the
reference path. A property test holds the two paths equal.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec
import rfc8785

__all__ = ["canonical"]

_encode = msgspec.json.Encoder(order="sorted").encode
_MAX_SAFE = 2.0**53


class _Slow(Exception):
    pass


def canonical(value: Any) -> bytes:
    """The RFC 8785 bytes of `value` (dicts, lists, str, int, float, bool, None)."""
    try:
        return _encode(_prepare(value))
    except _Slow:
        return rfc8785.dumps(value)


def _prepare(value: Any) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():  # pyright: ignore[reportUnknownVariableType]
            if not isinstance(k, str) or not k.isascii():
                raise _Slow
            out[k] = _prepare(v)
        return out
    if isinstance(value, (list, tuple)):
        return [_prepare(v) for v in value]  # pyright: ignore[reportUnknownVariableType]
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Slow  # rfc8785 refuses it with its own error
        if value.is_integer() and abs(value) < _MAX_SAFE:
            return int(value)
        if not 1e-5 <= abs(value) < 1e15:
            raise _Slow
    return value
