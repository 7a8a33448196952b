"""Identifiers: UUIDv7 (time-ordered) for requests and records."""

from __future__ import annotations

import random
import re
import time

__all__ = ["is_safe_request_id", "uuid7"]

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def uuid7() -> str:
    """A RFC 9562 version 7 UUID as text: 48 bits of Unix milliseconds, then random bits.

    The random bits make ids unique, not secret (nothing is authorised by knowing an
    id), so they come from `random` (seeded from the OS, reseeded after a fork) rather
    than a system call per id."""
    ms = time.time_ns() // 1_000_000
    rand = random.getrandbits(80)
    value = (ms & 0xFFFFFFFFFFFF) << 80 | rand
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # variant
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def is_safe_request_id(value: str) -> bool:
    """A client-supplied `x-request-id` is kept only if it is short and plain."""
    return bool(_SAFE_ID.match(value))
