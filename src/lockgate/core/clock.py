"""Time stamps in UTC, made cheaply on hot paths (the access log, the audit ledger)."""

from __future__ import annotations

import time

__all__ = ["UtcSeconds"]


class UtcSeconds:
    """`YYYY-MM-DDTHH:MM:SS` (UTC) of a Unix second, formatted once per second: a caller
    stamping many events a second appends only its fraction."""

    __slots__ = ("_second", "_text")

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def __call__(self, second: int) -> str:
        if second != self._second:
            self._second, self._text = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return self._text
