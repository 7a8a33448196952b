"""The limits stage: reserve before the upstream call, settle with real usage after.

Every principal a request involves (key, user, team, agent, grant) with limits becomes
a `LimitScope`; one `reserve` checks them all at once (one Redis round trip in Redis
mode). The reservation is the request, an estimate of its tokens (prompt estimate plus
`max_tokens`, or `access.reserve_tokens_default`) and of its cost at the model's price;
`settle` replaces the estimate with the real usage once the answer (or the stream) is
over. A request refused before reaching an upstream gives its tokens and cost back.

The prompt estimate is `characters / 3 + 8 per message`: deliberately a little above
what tokenizers give for English text, costs nothing, and is corrected at settlement.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from lockgate.access.limits import Limiter, LimitScope
from lockgate.access.models import Limits
from lockgate.access.state import AccessState
from lockgate.config.schema import AccessConfig
from lockgate.core.context import RequestContext
from lockgate.core.types import ChatRequest, EmbeddingRequest, TextPart, ToolResultPart, Usage
from lockgate.errors import RateLimited
from lockgate.usage.pricing import PriceTable, cost

__all__ = ["GrantCounter", "LimitsStage", "estimate_prompt_tokens"]

_log = logging.getLogger("lockgate.access")


def estimate_prompt_tokens(chat: ChatRequest | None, emb: EmbeddingRequest | None) -> int:
    chars = 0
    count = 0
    if chat is not None:
        chars += len(chat.system or "")
        for m in chat.messages:
            count += 1
            for part in m.content:
                if isinstance(part, TextPart):
                    chars += len(part.text)
                elif isinstance(part, ToolResultPart):
                    chars += len(part.content)
                else:
                    chars += 3000  # an image: ~1000 tokens
            for call in m.tool_calls:
                chars += len(call.arguments) + len(call.name)
        for tool in chat.tools:
            chars += len(tool.name) + len(tool.description or "") + 4 * len(tool.parameters)
    if emb is not None:
        for item in emb.input:
            if isinstance(item, str):
                chars += len(item)
            else:
                chars += 3 * len(item)
            count += 1
    return chars // 3 + 8 * count


class GrantCounter:
    """A grant's `max_requests` over its lifetime: counted in this process's memory, or
    in Redis (INCR with the grant's lifetime as expiry) so several gateways share it."""

    def __init__(self, redis_url: str | None) -> None:
        self._counts: dict[str, int] = {}
        self._url = redis_url
        self._client: object | None = None

    async def take(self, grant_id: str, maximum: int, ttl_seconds: int) -> bool:
        if self._url is None:
            used = self._counts.get(grant_id, 0)
            if used >= maximum:
                return False
            self._counts[grant_id] = used + 1
            return True
        import redis.asyncio as aioredis

        if self._client is None:
            self._client = aioredis.from_url(self._url)
        client: aioredis.Redis = self._client  # type: ignore[assignment]
        key = f"lockgate:grant-requests:{grant_id}"
        async with client.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, max(1, ttl_seconds))
            used, _ = await pipe.execute()
        return int(used) <= maximum

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()  # type: ignore[attr-defined]


class LimitsStage:
    name = "limits"

    def __init__(
        self,
        limiter: Limiter,
        *,
        state: Callable[[], AccessState],
        prices: PriceTable,
        config: AccessConfig,
        first_route: Callable[[str], str | None],
        meter: Callable[[RequestContext], Awaitable[None]],
        grants: GrantCounter,
    ) -> None:
        self._limiter = limiter
        self._state = state
        self._prices = prices
        self._config = config
        self._first_route = first_route
        self._meter = meter
        self._grants = grants
        self._tasks: set[asyncio.Task[None]] = set()

    def scopes(self, ctx: RequestContext) -> list[LimitScope]:
        p = ctx.principal
        if p is None:
            return []
        state = self._state()
        candidates: list[tuple[str, str, Limits]] = []
        if p.kind == "operator":
            candidates.append(("operator", p.id, Limits(**self._config.operator_limits.model_dump())))
        key = ctx.attrs.get("key")
        if key is not None:
            candidates.append(("key", key.prefix, key.limits))
        if p.user_id and (user := state.users.get(p.user_id)) is not None:
            candidates.append(("user", user.name, user.limits))
        if p.team_id and (team := state.teams.get(p.team_id)) is not None:
            candidates.append(("team", team.name, team.limits))
        if p.agent_id and (agent := state.agents_by_id.get(p.agent_id)) is not None:
            candidates.append(("agent", agent.name, agent.limits))
        grant = ctx.attrs.get("grant")
        if grant is not None and grant.max_spend_usd is not None:
            candidates.append(("grant", grant.prefix, Limits(budget_day_usd=grant.max_spend_usd)))
        return [LimitScope(kind, ident, limits) for kind, ident, limits in candidates if not limits.is_empty()]

    async def admit(self, ctx: RequestContext) -> None:
        grant = ctx.attrs.get("grant")
        if grant is not None and grant.max_requests is not None:
            ttl = int((grant.expires_at - grant.created_at).total_seconds()) + 60
            if not await self._grants.take(grant.id, grant.max_requests, ttl):
                raise RateLimited(
                    f"Grant {grant.prefix}... has used all of its {grant.max_requests} requests."
                )
        scopes = self.scopes(ctx)
        if not scopes:
            return
        prompt = estimate_prompt_tokens(ctx.chat, ctx.embedding)
        output = 0
        if ctx.chat is not None:
            output = (ctx.chat.max_tokens or self._config.reserve_tokens_default) * max(1, ctx.chat.n)
        price = self._prices.price_for(ctx.model, self._first_route(ctx.model))
        estimate = cost(price, Usage(input_tokens=prompt, output_tokens=output))
        reservation = await self._limiter.reserve(scopes, tokens=prompt + output, cost_usd=estimate)
        ctx.attrs["reservation"] = reservation

    async def complete(self, ctx: RequestContext) -> None:
        reservation = ctx.attrs.pop("reservation", None)
        if reservation is None:
            return
        # The answer does not wait for the settlement: it runs beside the reply (in Redis
        # mode it rides on the next reservation's round trip).
        if ctx.provider is None:
            self._spawn(self._limiter.release(reservation))
            return
        await self._meter(ctx)
        usage = ctx.usage
        tokens = usage.total_tokens if usage is not None else 0
        self._spawn(self._limiter.settle(reservation, tokens=tokens, cost_usd=ctx.cost or 0.0))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            _log.error("settling a reservation failed: %s", exc)

    async def drain(self) -> None:
        """Wait for the settlements still running (at shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
