"""Output guardrails on a stream, with a sliding window instead of the whole answer.

Per choice, the text that arrived but has not been sent yet is `pending`. Once it is
longer than the window (`[guardrails] stream_window`, 128 characters by default) plus
a small step, everything but the last `window` characters is scanned (with the tail
of what was already sent as context before it) and sent; a match that reaches into
the held-back part moves the cut to its start, so no match is ever split between two
chunks. When the choice finishes, the rest is scanned and sent. Memory per stream is
the window, not the answer; the client sees text a window later than the model wrote it.

Actions: `redact` replaces the span in the chunk; `block` (and a failed approval) ends
the stream with an error event (`guardrail_blocked`), after only text that passed;
`flag` records. `length` counts the whole answer (its `redact` truncates it). The JSON
schema check needs the whole answer: it runs when the choice finishes, and its
`block` ends the stream with an error event instead of the normal end. Placeholders
from input redaction with `restore = true` are swapped back in the sent text (a
placeholder cut by a chunk is held back until it is whole).
Tool-call arguments: a call's argument deltas are held until the call is complete (the
next call starts, the choice finishes, or the stream ends), then scanned whole with the
same output scanners, redacted or blocked as text is, their placeholders restored, and
sent as one delta. Arguments are small JSON documents, so holding them costs little;
scanning them in pieces could split a match.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from lockgate.core.context import RequestContext
from lockgate.core.types import (
    ResponseFormat,
    StreamEvent,
    StreamFinish,
    StreamTextDelta,
    StreamToolCallDelta,
    StreamToolCallStart,
)
from lockgate.errors import LockgateError
from lockgate.guard.engine import GuardEngine, Hit, heavy, redact_text, scan_text
from lockgate.guard.policy import BoundScanner, Policy
from lockgate.guard.redact import Vault
from lockgate.guard.types import ScanContext

__all__ = ["guard_stream"]

_STEP = 32  # scan in chunks of at least this many characters beyond the window


@dataclass(slots=True)
class _Window:
    pending: str = ""
    sent_tail: str = ""  # the end of what was sent: context for the next scan
    offset: int = 0  # characters of this choice's answer sent (before redaction)
    whole: list[str] = field(default_factory=lambda: [])  # kept only for the JSON check
    cut: bool = False  # truncated by a length redaction: drop the rest
    done: bool = False


class _StreamGuard:
    def __init__(self, engine: GuardEngine, ctx: RequestContext, policy: Policy, vault: Vault) -> None:
        self.engine = engine
        self.ctx = ctx
        self.vault = vault
        chat = ctx.chat
        self.response_format: ResponseFormat | None = chat.response_format if chat else None
        self.spans = tuple(b for b in policy.output if "output" in b.where and b.scanner.name != "json_schema")
        self.json = tuple(b for b in policy.output if "output" in b.where and b.scanner.name == "json_schema")
        self.heavy = heavy(self.spans)
        needs = max((b.scanner.max_match for b in self.spans), default=0)
        self.window = min(needs, engine.config.stream_window)
        self.windows: dict[int, _Window] = {}
        self.seen: set[tuple[str, str, str, str]] = set()
        self.calls: dict[tuple[int, int], list[str]] = {}  # (choice, tool index) -> argument deltas

    def hold(self, event: StreamToolCallDelta) -> None:
        self.calls.setdefault((event.index, event.tool_index), []).append(event.arguments)

    async def release(self, index: int | None = None) -> list[StreamToolCallDelta]:
        """The held calls of choice `index` (all, when None), scanned, as one delta each."""
        out: list[StreamToolCallDelta] = []
        for key in sorted(k for k in self.calls if index is None or k[0] == index):
            arguments = "".join(self.calls.pop(key))
            if self.spans and arguments:
                hits = await self.engine.run(_scanner(self.spans, arguments), len(arguments), heavy=self.heavy)
                if hits:
                    await self._decide(hits)
                    arguments = redact_text(arguments, hits, self.vault)
            out.append(StreamToolCallDelta(tool_index=key[1], arguments=self.vault.restore(arguments), index=key[0]))
        return out

    async def push(self, index: int, text: str, *, flush: bool = False, end: bool = False) -> str:
        """Text to send now for choice `index`; `flush` sends all pending (a tool call or
        the finish follows), `end` also runs the whole-answer checks."""
        w = self.windows.setdefault(index, _Window())
        if w.cut or w.done:
            return ""
        w.pending += text
        if self.json and self.response_format is not None:
            w.whole.append(text)
        final = flush or end
        if not final and len(w.pending) < (self.window + _STEP if self.spans else 1):
            return ""
        cut = len(w.pending) if final else len(w.pending) - self.window
        hits: list[Hit] = []
        if self.spans:
            pending = len(w.pending)
            hits = await self.engine.run(lambda: self._scan(w, final), pending, heavy=self.heavy)
        if hits:
            cut = min(cut, min((h.finding.start for h in hits if h.finding.end > cut
                                and h.finding.entity != "TOO_LONG"), default=cut))
            hits = [_clip(h, cut) for h in hits if h.finding.start < cut]
        if not final and self.vault:
            cut -= self.vault.partial_tail(w.pending[:cut])
        chunk, w.pending = w.pending[:cut], w.pending[cut:]
        if hits:
            await self._decide(hits)
            chunk = redact_text(chunk, hits, self.vault)
            w.cut = any(h.finding.entity == "TOO_LONG" and h.bound.action == "redact" for h in hits)
        w.sent_tail = (w.sent_tail + chunk)[-self.window :] if self.window else ""
        w.offset += cut
        if end:
            w.done = True
            if self.json:
                await self._check_json(w)
        return self.vault.restore(chunk)

    def _scan(self, w: _Window, final: bool) -> list[Hit]:
        """Hits in `pending` (coordinates of `pending`), the sent tail as context."""
        context = w.sent_tail
        ctx = ScanContext("output", final=final, offset=w.offset - len(context))
        hits: list[Hit] = []
        for h in scan_text(self.spans, context + w.pending, ctx):
            if h.finding.end - len(context) > 0:  # else wholly in text already sent
                hits.append(_shift(h, len(context)))
        return hits

    async def _decide(self, hits: list[Hit]) -> None:
        fresh: list[Hit] = []
        for h in hits:
            key = (h.bound.scanner.name, h.finding.entity, h.where, h.bound.action)
            if key not in self.seen:
                self.seen.add(key)
                fresh.append(h)
        if not fresh:
            return
        found = self.engine.record(self.ctx.attrs, fresh)
        try:
            await self.engine.enforce(self.ctx, fresh, found)
        except LockgateError as err:
            self.ctx.attrs["abort"] = err  # the relay passes it on as is: an error event
            raise

    async def _check_json(self, w: _Window) -> None:
        text = "".join(w.whole)
        hits = scan_text(self.json, text, ScanContext("output", self.response_format))
        if hits:
            await self._decide(hits)


def _scanner(spans: tuple[BoundScanner, ...], text: str) -> Callable[[], list[Hit]]:
    return lambda: scan_text(spans, text, ScanContext("output", final=True))


def _shift(h: Hit, by: int) -> Hit:
    f = h.finding
    return Hit(h.bound, type(f)(f.entity, max(0, f.start - by), f.end - by, f.score), h.where)


def _clip(h: Hit, cut: int) -> Hit:
    f = h.finding
    return h if f.end <= cut else Hit(h.bound, type(f)(f.entity, f.start, cut, f.score), h.where)


async def guard_stream(
    engine: GuardEngine, ctx: RequestContext, policy: Policy, vault: Vault, events: AsyncIterator[StreamEvent]
) -> AsyncIterator[StreamEvent]:
    guard = _StreamGuard(engine, ctx, policy, vault)
    async for event in events:
        if isinstance(event, StreamTextDelta):
            out = await guard.push(event.index, event.text)
            if out:
                yield StreamTextDelta(text=out, index=event.index)
        elif isinstance(event, StreamToolCallDelta):
            guard.hold(event)
        elif isinstance(event, StreamFinish | StreamToolCallStart):
            out = await guard.push(event.index, "", flush=True, end=isinstance(event, StreamFinish))
            if out:
                yield StreamTextDelta(text=out, index=event.index)
            for call in await guard.release(event.index):  # the previous call is complete
                yield call
            yield event
        else:
            yield event
    for index in list(guard.windows):  # an upstream that ended without a finish
        out = await guard.push(index, "", end=True)
        if out:
            yield StreamTextDelta(text=out, index=index)
    for call in await guard.release():
        yield call

