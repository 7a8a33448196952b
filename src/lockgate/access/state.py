"""The data plane's in-memory view of the control plane.

Built from one `Store.load_snapshot()`; requests read only this (dict lookups), never
the database. A `StateWatcher` replaces it when the control-plane version changes:
at once on a Redis notification, else within `access.refresh_interval` by polling one
cheap row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from lockgate.access.models import Agent, ApiKey, Grant, KillSwitch, Team, User

__all__ = ["AccessState", "hash_secret"]


def hash_secret(secret: str) -> str:
    """Keys and grant tokens are stored as the hex SHA-256 of the whole secret. They are
    random 240-bit strings, so a fast hash is the right tool (no password stretching)."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(slots=True)
class AccessState:
    version: int = 0
    keys_by_hash: dict[str, ApiKey] = field(default_factory=lambda: {})
    grants_by_hash: dict[str, Grant] = field(default_factory=lambda: {})
    agents_by_id: dict[str, Agent] = field(default_factory=lambda: {})
    agents_by_name: dict[str, Agent] = field(default_factory=lambda: {})
    teams: dict[str, Team] = field(default_factory=lambda: {})
    users: dict[str, User] = field(default_factory=lambda: {})
    kills: dict[tuple[str, str], KillSwitch] = field(default_factory=lambda: {})

    @classmethod
    def build(
        cls,
        *,
        version: int,
        keys: Iterable[ApiKey],
        grants: Iterable[Grant],
        agents: Iterable[Agent],
        teams: Iterable[Team],
        users: Iterable[User],
        kills: Iterable[KillSwitch],
    ) -> AccessState:
        agent_list = list(agents)
        return cls(
            version=version,
            keys_by_hash={k.key_hash: k for k in keys if k.revoked_at is None},
            grants_by_hash={g.token_hash: g for g in grants if g.revoked_at is None},
            agents_by_id={a.id: a for a in agent_list},
            agents_by_name={a.name: a for a in agent_list},
            teams={t.id: t for t in teams},
            users={u.id: u for u in users},
            kills={(k.scope, k.target): k for k in kills if k.lifted_at is None},
        )

    def kill_for(self, pairs: Iterable[tuple[str, str | None]]) -> KillSwitch | None:
        """The first engaged switch among (scope, target) pairs; `global` always applies."""
        if not self.kills:
            return None
        hit = self.kills.get(("global", "*"))
        if hit is not None:
            return hit
        for scope, target in pairs:
            if target is not None:
                hit = self.kills.get((scope, target))
                if hit is not None:
                    return hit
        return None

    def is_expired(self, when: datetime | None, now: datetime) -> bool:
        return when is not None and when <= now
