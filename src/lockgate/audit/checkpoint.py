"""Signed checkpoints: the ledger's tree size and Merkle root, signed with Ed25519.

The signed statement is the RFC 8785 form of
`{"ledger": "lockgate-audit/v1", "root_hash": HEX, "time": RFC3339, "tree_size": N}`.
A checkpoint also stores the compact tree's right edge (`frontier`), so the next one
hashes only the events added since.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from lockgate.audit.canonical import canonical
from lockgate.errors import ConfigError

__all__ = ["LEDGER_ID", "Signer", "checkpoint_statement", "load_signer", "rfc3339", "verify_signature"]

LEDGER_ID = "lockgate-audit/v1"


def rfc3339(when: datetime) -> str:
    """UTC with microseconds and "Z" (fixed width)."""
    if when.tzinfo is not UTC:
        when = when.astimezone(UTC)
    return when.isoformat(timespec="microseconds")[:-6] + "Z"


def checkpoint_statement(tree_size: int, root_hash: str, time: str) -> bytes:
    return canonical({"ledger": LEDGER_ID, "root_hash": root_hash, "time": time, "tree_size": tree_size})


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id_of(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Signer:
    private: Ed25519PrivateKey

    @property
    def public_raw(self) -> bytes:
        return _raw_public(self.private.public_key())

    @property
    def public_b64(self) -> str:
        return base64.b64encode(self.public_raw).decode()

    @property
    def key_id(self) -> str:
        return key_id_of(self.public_raw)

    def checkpoint(self, size: int, root: bytes, nodes: tuple[bytes, ...], when: datetime) -> dict[str, Any]:
        time = rfc3339(when)
        statement = checkpoint_statement(size, root.hex(), time)
        return {
            "tree_size": size,
            "root_hash": root.hex(),
            "time": when,
            "key_id": self.key_id,
            "public_key": self.public_b64,
            "signature": base64.b64encode(self.private.sign(statement)).decode(),
            "frontier": json.dumps([n.hex() for n in nodes]),
        }


def verify_signature(row: dict[str, Any], trusted: set[str] | None = None) -> str | None:
    """None when the checkpoint's signature is good (by a trusted key, if any are
    given, as base64 raw public keys); otherwise what is wrong."""
    public_b64 = str(row["public_key"])
    if trusted is not None and public_b64 not in trusted:
        return f"signed by key {row['key_id']}, which is not a trusted key"
    try:
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_b64))
        when = row["time"]  # a datetime, or text as a database or an export holds it
        time = rfc3339(when if isinstance(when, datetime) else datetime.fromisoformat(str(when)))
        public.verify(base64.b64decode(str(row["signature"])), checkpoint_statement(int(row["tree_size"]), str(row["root_hash"]), time))
    except (InvalidSignature, ValueError):
        return "bad signature"
    return None


def parse_private_key(text: str) -> Ed25519PrivateKey:
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode(), password=None)
            if not isinstance(key, Ed25519PrivateKey):
                raise ValueError("not an Ed25519 key")
            return key
        return Ed25519PrivateKey.from_private_bytes(base64.b64decode(text, validate=True))
    except ValueError as exc:
        raise ConfigError(f"audit.signing_key: not an Ed25519 private key (PEM or base64 seed): {exc}") from None


def load_signer(secret: str | None, key_file: Path | None) -> Signer:
    """The configured key; else the key in `key_file` (generated there on first use,
    mode 0600); else, with no file, an ephemeral key (tests, in-memory databases)."""
    if secret:
        return Signer(parse_private_key(secret))
    if key_file is None:
        return Signer(Ed25519PrivateKey.generate())
    if key_file.exists():
        return Signer(parse_private_key(key_file.read_text()))
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    return Signer(key)
