"""Identifiers: UUIDv7 (time-ordered) for requests and records."""

from __future__ import annotations

import random
import re
import time

__all__ = ["is_safe_request_id", "uuid7"]

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def uuid7(ms: int | None = None) -> str:
    """A RFC 9562 version 7 UUID as text: 48 bits of Unix milliseconds, then random bits.

    The random bits make ids unique, not secret (nothing is authorised by knowing an
    id), so they come from `random` (seeded from the OS, reseeded after a fork) rather
    than a system call per id. `ms`: the time to use (now when None)."""
    if ms is None:
        ms = time.time_ns() // 1_000_000
    ms &= 0xFFFFFFFFFFFF
    r = random.getrandbits(74)  # 12 + 62 random bits around the version and variant
    return (
        f"{ms >> 16:08x}-{ms & 0xFFFF:04x}-{0x7000 | r >> 62:04x}-"
        f"{0x8000 | (r >> 48) & 0x3FFF:04x}-{r & 0xFFFFFFFFFFFF:012x}"
    )


def is_safe_request_id(value: str) -> bool:
    """A client-supplied `x-request-id` is kept only if it is short and plain."""
    return bool(_SAFE_ID.match(value))
