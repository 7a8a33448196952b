"""Futures waiting for a counter or position to reach their mark (`flush()`-style waits)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

__all__ = ["release_reached"]

T = TypeVar("T")


def release_reached(
    waiters: list[tuple[T, asyncio.Future[None]]], reached: Callable[[T], bool]
) -> list[tuple[T, asyncio.Future[None]]]:
    """Resolve every waiter whose mark is reached; the ones still waiting."""
    waiting: list[tuple[T, asyncio.Future[None]]] = []
    for mark, future in waiters:
        if reached(mark):
            if not future.done():
                future.set_result(None)
        else:
            waiting.append((mark, future))
    return waiting
