"""The cancel scope of a tool call in flight (`calls._Stoppable`): a kill switch's
`cancel()` ends the call's block, and only that cancellation is swallowed."""

from __future__ import annotations

import asyncio

import pytest

from lockgate.mcp.calls import _Stoppable  # pyright: ignore[reportPrivateUsage]


async def _held(scope: _Stoppable, started: asyncio.Event, after: list[str]) -> str:
    with scope:
        started.set()
        try:
            async with asyncio.timeout(30):  # as the upstream call is bounded
                await asyncio.sleep(30)
        finally:
            await asyncio.sleep(0)  # cleanup may still await (settling a rate limit)
            after.append("cleaned up")
        return "finished"
    return "stopped"


async def test_cancel_ends_the_block_and_the_task_goes_on() -> None:
    scope, started, after = _Stoppable(), asyncio.Event(), list[str]()
    task = asyncio.get_running_loop().create_task(_held(scope, started, after))
    await started.wait()
    scope.cancel()
    scope.cancel()  # twice is once
    assert await task == "stopped"
    assert after == ["cleaned up"] and task.cancelling() == 0


async def test_a_cancellation_from_elsewhere_is_not_swallowed() -> None:
    scope, started, after = _Stoppable(), asyncio.Event(), list[str]()
    task = asyncio.get_running_loop().create_task(_held(scope, started, after))
    await started.wait()
    scope.cancel()
    task.cancel()  # the client went away at the same moment
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_without_cancel_the_block_is_transparent() -> None:
    with _Stoppable():
        await asyncio.sleep(0)
    with pytest.raises(ValueError), _Stoppable():
        raise ValueError("passes through")
    scope = _Stoppable()
    with scope:
        pass
    scope.cancel()  # after the block: nothing to cancel
    await asyncio.sleep(0)
