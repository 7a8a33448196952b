"""Shadow-agent sightings, counted in memory and flushed to the store in batches."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["ShadowRecorder", "Sighting"]


@dataclass(slots=True)
class Sighting:
    name: str
    first_seen: datetime
    last_seen: datetime
    count: int
    last_key_prefix: str | None


class ShadowRecorder:
    def __init__(self) -> None:
        self._pending: dict[str, Sighting] = {}

    def saw(self, name: str, key_prefix: str | None, when: datetime) -> None:
        s = self._pending.get(name)
        if s is None:
            self._pending[name] = Sighting(name, when, when, 1, key_prefix)
        else:
            s.last_seen = when
            s.count += 1
            s.last_key_prefix = key_prefix

    def drain(self) -> list[Sighting]:
        out = list(self._pending.values())
        self._pending.clear()
        return out
