"""The `guardrails` pipeline stage: input scanners before the provider, output after.

`admit` (after `limits`, so a refused request costs no scan) picks the request's
policy, scans the messages, records the verdicts, blocks or holds for approval, and
replaces `ctx.chat` with the redacted request: the provider, traces and the audit
ledger only ever see the redacted text. `filter_response` and `filter_stream` are the
pipeline's output hooks: they scan the answer (a stream through a sliding window,
`stream.py`) and restore the placeholders of input redactions with `restore = true`.

What is kept for the record (`ctx.response`, the stream text the relay collects) is
the answer before restoring: the original values exist only in the caller's request
and in the answer sent back to it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from lockgate.core.context import RequestContext
from lockgate.core.types import ChatRequest, ChatResponse, StreamEvent, TextPart, ToolResultPart
from lockgate.guard.engine import GuardEngine, heavy, restore_response
from lockgate.guard.policy import Policy
from lockgate.guard.redact import Vault
from lockgate.guard.stream import guard_stream

__all__ = ["GuardStage"]


@dataclass(frozen=True, slots=True)
class _RequestGuard:
    policy: Policy
    vault: Vault


def _size(chat: ChatRequest) -> int:
    n = len(chat.system or "")
    for m in chat.messages:
        for p in m.content:
            n += len(p.text) if isinstance(p, TextPart) else len(p.content) if isinstance(p, ToolResultPart) else 0
        n += sum(len(c.arguments) for c in m.tool_calls)
    return n


class GuardStage:
    name = "guardrails"

    def __init__(self, engine: GuardEngine) -> None:
        self.engine = engine

    async def admit(self, ctx: RequestContext) -> None:
        chat = ctx.chat
        if chat is None:
            return
        engine = self.engine
        policy = engine.policies.select(model=ctx.model, principal=ctx.principal)
        if policy.empty:
            return
        vault = Vault()
        ctx.attrs["guard"] = _RequestGuard(policy, vault)
        if not policy.input:
            return
        new, hits = await engine.run(
            lambda: engine.scan_chat(chat, policy, vault), _size(chat), heavy=heavy(policy.input)
        )
        if hits:
            found = engine.record(ctx.attrs, hits)
            await engine.enforce(ctx, hits, found)
        if new is not None:
            ctx.chat = new

    async def complete(self, ctx: RequestContext) -> None:
        return None

    async def filter_response(self, ctx: RequestContext, response: ChatResponse) -> ChatResponse:
        state: _RequestGuard | None = ctx.attrs.get("guard")
        if state is None:
            return response
        engine = self.engine
        if state.policy.output:
            chat = ctx.chat
            fmt = chat.response_format if chat else None
            size = sum(len(c.text) for c in response.choices)
            scanned, hits = await engine.run(
                lambda: engine.scan_response(response, state.policy, state.vault, fmt), size,
                heavy=heavy(state.policy.output),
            )
            if hits:
                found = engine.record(ctx.attrs, hits)
                await engine.enforce(ctx, hits, found)
                response = scanned
                ctx.response = response
        return restore_response(response, state.vault)

    def filter_stream(self, ctx: RequestContext, events: AsyncIterator[StreamEvent]) -> AsyncIterator[StreamEvent]:
        state: _RequestGuard | None = ctx.attrs.get("guard")
        if state is None or (not state.policy.output and not state.vault):
            return events
        return self._stream(ctx, state, events)

    async def _stream(
        self, ctx: RequestContext, state: _RequestGuard, events: AsyncIterator[StreamEvent]
    ) -> AsyncIterator[StreamEvent]:
        async for event in guard_stream(self.engine, ctx, state.policy, state.vault, events):
            yield event
        if state.vault:
            # The relay collected the restored text; keep the placeholders for the record.
            collected: list[str] | None = ctx.attrs.get("stream_text")
            if collected:
                collected[:] = [state.vault.unrestore("".join(collected))]
