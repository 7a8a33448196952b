"""Column types that behave the same on SQLite and PostgreSQL.

Migrations import these, so they must stay backwards compatible: change a type by
adding a new one, never by changing what an existing one stores.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Dialect, String
from sqlalchemy.types import TypeDecorator, TypeEngine

__all__ = ["StringTuple", "UTCDateTime"]

SQLITE_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%f+00:00"
_SQLITE_FORMAT = SQLITE_TIME_FORMAT  # fixed width, so text order is time order


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime, always returned in UTC.

    PostgreSQL: `timestamp with time zone`. SQLite: fixed-width ISO-8601 text in UTC,
    which compares (and sorts) correctly as text. Naive datetimes are refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(32))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: lockgate stores aware UTC times only")
        value = value.astimezone(UTC)
        return value.strftime(_SQLITE_FORMAT) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            return datetime.fromisoformat(value).astimezone(UTC)
        if isinstance(value, datetime):
            return value.astimezone(UTC)
        raise TypeError(f"unexpected stored time {value!r}")


class StringTuple(TypeDecorator[tuple[str, ...]]):
    """A tuple of strings, stored as a JSON list."""

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value: tuple[str, ...] | None, dialect: Dialect) -> Any:
        return None if value is None else list(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> tuple[str, ...] | None:
        if value is None:
            return None
        return tuple(str(v) for v in value)
