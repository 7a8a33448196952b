"""Sticky assignment of a request to an experiment's arm.

The arm is a pure function of the experiment's name and the caller's key: SHA-256 of
`name NUL key` maps the key to a point in [0, 1), and the arms' weights cut that
interval in order. The same key always lands in the same arm (in every gateway process,
across restarts), different experiments split independently, and no state is kept.
Changing the weights moves only the keys near the moved boundaries.

The key (`sticky`): `user` reads the request's `user` field (Anthropic:
`metadata.user_id`), then the `x-lockgate-session` header; `session` reads the header
first. A request with neither is assigned at random (by its request id), so it is
counted but not sticky.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from lockgate.prompts.models import Arm, Experiment

__all__ = ["SESSION_HEADER", "assignment_key", "choose_arm", "point"]

SESSION_HEADER = "x-lockgate-session"


def point(experiment: str, key: str) -> float:
    """Where `key` falls in [0, 1) for `experiment`."""
    digest = hashlib.sha256(f"{experiment}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def choose_arm(arms: Sequence[Arm], at: float) -> Arm:
    total = sum(a.weight for a in arms)
    edge = 0.0
    for arm in arms:
        edge += arm.weight / total
        if at < edge:
            return arm
    return arms[-1]


def assignment_key(experiment: Experiment, *, user: str | None, session: str | None, request_id: str) -> str:
    first, second = (user, session) if experiment.sticky == "user" else (session, user)
    if first:
        return f"{experiment.sticky}:{first}"
    if second:
        return f"{'session' if experiment.sticky == 'user' else 'user'}:{second}"
    return f"request:{request_id}"
