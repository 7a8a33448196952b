"""The approval webhook: a JSON POST when something enters the queue.

Sent in the background (the held request never waits on it), retried three times
with backoff on failure, signed with HMAC-SHA256 when a secret is configured:
`x-lockgate-signature: sha256=<hex>` over the exact body.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
from typing import Any

import aiohttp

__all__ = ["Webhook"]

_log = logging.getLogger("lockgate.oversight")


class Webhook:
    def __init__(self, url: str, *, session: aiohttp.ClientSession, secret: str | None, attempts: int = 3) -> None:
        self._url = url
        self._session = session
        self._secret = secret
        self._attempts = attempts
        self._tasks: set[asyncio.Task[None]] = set()
        self.sent = 0

    def notify(self, payload: dict[str, Any]) -> None:
        task = asyncio.get_running_loop().create_task(self._send(payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {"content-type": "application/json", "user-agent": "lockgate-webhook"}
        if self._secret:
            headers["x-lockgate-signature"] = "sha256=" + hmac.new(self._secret.encode(), body, hashlib.sha256).hexdigest()
        for attempt in range(self._attempts):
            try:
                async with self._session.post(
                    self._url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=5)
                ) as resp:
                    if resp.status < 300:
                        self.sent += 1
                        return
                    _log.warning("approval webhook answered %d", resp.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                _log.warning("approval webhook failed: %s", type(exc).__name__)
            await asyncio.sleep(0.5 * 2**attempt)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
