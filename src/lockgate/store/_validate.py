"""Input checks shared by the store's methods; each failure is an InvalidRequest
that names the offending field."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime

from lockgate.access.models import Limits
from lockgate.errors import InvalidRequest

__all__ = ["aware", "count", "limits", "money", "names", "text"]

MAX_NAME = 200
MAX_TEXT = 2000
MAX_INT = 2**31 - 1  # the INTEGER columns (limits, a grant's max_requests)


def text(value: str, field: str, *, max_len: int = MAX_NAME) -> str:
    """A non-blank string, stripped, at most `max_len` characters."""
    if not isinstance(value, str) or not value.strip():  # pyright: ignore[reportUnnecessaryIsInstance]
        raise InvalidRequest(f"{field} must be a non-empty string.", param=field)
    value = value.strip()
    if len(value) > max_len:
        raise InvalidRequest(f"{field} must be at most {max_len} characters.", param=field)
    if any(ord(c) < 32 for c in value):
        raise InvalidRequest(f"{field} must not contain control characters.", param=field)
    return value


def names(values: Iterable[str], field: str) -> tuple[str, ...]:
    """A tuple of non-blank names (models, tools), duplicates dropped, order kept."""
    if isinstance(values, str):
        raise InvalidRequest(f"{field} must be a list of names, not one string.", param=field)
    return tuple(dict.fromkeys(text(v, field) for v in values))


def count(value: int | None, field: str, *, maximum: int | None = None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:  # pyright: ignore[reportUnnecessaryIsInstance]
        raise InvalidRequest(f"{field} must be a non-negative integer.", param=field)
    if maximum is not None and value > maximum:
        raise InvalidRequest(f"{field} must be at most {maximum}.", param=field)
    return value


def money(value: float | None, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise InvalidRequest(f"{field} must be a number.", param=field)
    if not math.isfinite(value) or value < 0:
        raise InvalidRequest(f"{field} must be a finite, non-negative amount.", param=field)
    return float(value)


def limits(value: Limits, field: str = "limits") -> Limits:
    return Limits(
        rpm=count(value.rpm, f"{field}.rpm", maximum=MAX_INT),
        tpm=count(value.tpm, f"{field}.tpm", maximum=MAX_INT),
        max_concurrent=count(value.max_concurrent, f"{field}.max_concurrent", maximum=MAX_INT),
        budget_day_usd=money(value.budget_day_usd, f"{field}.budget_day_usd"),
        budget_month_usd=money(value.budget_month_usd, f"{field}.budget_month_usd"),
    )


def aware(value: datetime, field: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidRequest(f"{field} must be a timezone-aware datetime.", param=field)
    return value.astimezone(UTC)
