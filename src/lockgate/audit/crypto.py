"""Payload encryption per data subject, and crypto-shredding.

Each data subject (an end user, a customer) gets a random 256-bit key, stored wrapped
(AES-256-GCM) by the master key from `[audit] encryption_key`. A payload is sealed
with AES-256-GCM under its subject's key, bound to its event id as associated data,
so a payload moved to another event fails to open. Deleting the subject's key row
(`lockgate audit shred SUBJECT`) makes every payload of that subject unreadable; the
event bodies hold only digests, so the chain, the tree and every proof stay valid.

Keys are cached in memory for `cache_seconds`: a shred reaches a running gateway's
cache within that time (new payloads sealed meanwhile are unreadable too: the key
they used is gone from the database).
"""

from __future__ import annotations

import base64
import binascii
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from lockgate.errors import ConfigError

__all__ = ["PayloadCipher", "SubjectKeys", "parse_master_key"]

_NONCE = 12


class SubjectKeys(Protocol):
    """Where wrapped subject keys live (the store's audit mixin)."""

    async def subject_key(self, subject: str, make: Callable[[], bytes], now: datetime) -> bytes: ...
    async def find_subject_key(self, subject: str) -> bytes | None: ...


def parse_master_key(value: str) -> bytes:
    try:
        key = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise ConfigError("audit.encryption_key: must be the base64 of exactly 32 random bytes")
    return key


class PayloadCipher:
    def __init__(self, master_key: bytes, store: SubjectKeys, *, cache_seconds: float = 60.0) -> None:
        self._master = AESGCM(master_key)
        self._store = store
        self._cache: dict[str, tuple[float, AESGCM]] = {}
        self._cache_seconds = cache_seconds

    def _wrap(self, subject: str) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._master.encrypt(nonce, AESGCM.generate_key(bit_length=256), subject.encode())

    def _unwrap(self, subject: str, wrapped: bytes) -> AESGCM:
        return AESGCM(self._master.decrypt(wrapped[:_NONCE], wrapped[_NONCE:], subject.encode()))

    async def _key(self, subject: str, *, create: bool) -> AESGCM | None:
        now = time.monotonic()
        hit = self._cache.get(subject)
        if hit is not None and now - hit[0] < self._cache_seconds:
            return hit[1]
        store = self._store
        wrapped: bytes | None
        if create:
            wrapped = await store.subject_key(subject, lambda: self._wrap(subject), datetime.now(UTC))
        else:
            wrapped = await store.find_subject_key(subject)
        if wrapped is None:
            self._cache.pop(subject, None)
            return None
        key = self._unwrap(subject, wrapped)
        self._cache[subject] = (now, key)
        return key

    async def seal(self, subject: str, event_id: str, plaintext: bytes) -> tuple[bytes, bytes]:
        """(nonce, ciphertext) of the payload under the subject's key (created if new)."""
        key = await self._key(subject, create=True)
        assert key is not None
        nonce = os.urandom(_NONCE)
        return nonce, key.encrypt(nonce, plaintext, event_id.encode())

    async def open(self, subject: str, event_id: str, nonce: bytes, data: bytes) -> bytes | None:
        """The plaintext, or None when the subject's key was shredded."""
        key = await self._key(subject, create=False)
        if key is None:
            return None
        return key.decrypt(nonce, data, event_id.encode())

    def forget(self, subject: str) -> None:
        self._cache.pop(subject, None)
