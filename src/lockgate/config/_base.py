"""What every config section shares: strict models and secrets named by location.

A section that holds secrets lists them in `secret_refs()` (where, reference); the
loader resolves every one it finds, so a new section needs no change to the loader.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["SecretRef", "Strict", "secret"]

_SECRET_PREFIXES = ("env::", "file::")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretRef(str):
    """A secret named by where it lives: `env::NAME` or `file::/path`. The value is
    resolved by the loader into `Config.secrets`; this string is only the name."""

    @classmethod
    def check(cls, value: str) -> SecretRef:
        if not value.startswith(_SECRET_PREFIXES) or len(value.split("::", 1)[1]) == 0:
            raise ValueError(
                "secrets are named by where they live, e.g. \"env::OPENAI_API_KEY\" or "
                "\"file::/run/secrets/key\"; never write the secret itself in the file"
            )
        return cls(value)


def secret(value: Any) -> SecretRef | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("must be a string like \"env::NAME\"")
    return SecretRef.check(value)


