"""Minting and hashing the bearer secrets: virtual keys and grant tokens."""

from __future__ import annotations

import hashlib
import secrets

__all__ = ["KEY_MARKER", "TOKEN_MARKER", "mint", "secret_hash"]

KEY_MARKER = "lg-"
TOKEN_MARKER = "lgt-"
_RANDOM_BYTES = 30  # 40 URL-safe characters, 240 bits
_VISIBLE = 8  # random characters kept in the stored, displayable prefix


def mint(marker: str) -> tuple[str, str, str]:
    """A new secret: (secret, prefix, hash). Only the prefix and hash are stored."""
    secret = marker + secrets.token_urlsafe(_RANDOM_BYTES)
    return secret, secret[: len(marker) + _VISIBLE], secret_hash(secret)


def secret_hash(secret: str) -> str:
    """Hex SHA-256 of the whole secret: how a presented key or token is looked up."""
    return hashlib.sha256(secret.encode()).hexdigest()
