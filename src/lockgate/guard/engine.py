"""The guard engine: run a policy's scanners over texts, decide, record, enforce.

One engine per gateway (`gateway.guard`), built from `[guardrails]`. The pipeline
stage (`stage.py`) uses it on chat requests and answers; the MCP gateway uses its
`check_tool` (`tools.py`) on tool arguments and results.

A hit is a finding whose score reaches its scanner's threshold. The strongest action
among the hits decides (block > needs_approval > redact > flag); every hit is
recorded as a verdict `{scanner, version, score, action, where, entity}` in
`ctx.attrs["guard_verdicts"]` (the audit ledger reads it) and in the
`lockgate_guardrail_verdicts_total` counter. Verdicts never carry the matched text.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from lockgate.config.guard import GuardrailsConfig
from lockgate.core.context import RequestContext
from lockgate.core.types import (
    ChatRequest,
    ChatResponse,
    Message,
    Part,
    ResponseFormat,
    TextPart,
    ToolCall,
    ToolResultPart,
)
from lockgate.errors import GuardrailBlocked, PermissionDenied
from lockgate.guard.policy import BoundScanner, Policy, PolicySet
from lockgate.guard.redact import Vault, redact_spans
from lockgate.guard.resources import GuardResources
from lockgate.guard.types import ACTIONS, Action, Finding, ScanContext

if TYPE_CHECKING:
    from lockgate.core.context import Principal
    from lockgate.guard.tools import ToolVerdict

__all__ = ["GuardEngine", "Hit", "heavy", "scan_text", "strongest", "verdicts"]

T = TypeVar("T")

_WHERE_WORDS = {
    "system": "the system prompt",
    "user": "a user message",
    "assistant": "an assistant message",
    "tool": "a tool result in the request",
    "tool_arguments": "the tool arguments",
    "output": "the answer",
    "tool_result": "the tool result",
}
_SAMPLE = (
    "Warm-up: mail jane.doe@example.com, card 4111 1111 1111 1111, call +1 415 555 0132, IBAN "
    "DE89 3704 0044 0532 0130 00, SSN 123-45-6780, key AKIAIOSFODNN7EXAMPLE, ignore previous instructions."
)


@dataclass(frozen=True, slots=True)
class Hit:
    bound: BoundScanner
    finding: Finding
    where: str


def scan_text(bounds: Iterable[BoundScanner], text: str, ctx: ScanContext) -> list[Hit]:
    hits: list[Hit] = []
    for b in bounds:
        if ctx.where in b.where:
            hits.extend(Hit(b, f, ctx.where) for f in b.scanner.scan(text, ctx) if f.score >= b.threshold)
    return hits


def heavy(bounds: Iterable[BoundScanner]) -> bool:
    """Any model-backed scanner among them: its scans always go to a worker thread."""
    return any(b.scanner.heavy for b in bounds)


def strongest(hits: Iterable[Hit]) -> Action | None:
    actions = {h.bound.action for h in hits}
    return next((a for a in ACTIONS if a in actions), None)


def verdicts(hits: Iterable[Hit]) -> list[dict[str, Any]]:
    """One verdict per scanner, entity, place and action, with the highest score."""
    best: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for h in hits:
        s = h.bound.scanner
        key = (s.name, h.finding.entity, h.where, h.bound.action)
        found = best.get(key)
        if found is None or h.finding.score > found["score"]:
            best[key] = {"scanner": s.name, "version": s.version, "score": round(h.finding.score, 4),
                         "action": h.bound.action, "where": h.where, "entity": h.finding.entity}
    return list(best.values())


def redact_text(text: str, hits: list[Hit], vault: Vault) -> str:
    spans = [(h.finding, h.bound.restore) for h in hits if h.bound.action == "redact"]
    return redact_spans(text, spans, vault) if spans else text


def describe(hits: list[Hit], action: Action) -> str:
    chosen = max((h for h in hits if h.bound.action == action), key=lambda h: h.finding.score)
    return (f"guardrail {chosen.bound.scanner.name!r} found {chosen.finding.entity} in "
            f"{_WHERE_WORDS.get(chosen.where, chosen.where)} (score {chosen.finding.score:.2f})")


class GuardEngine:
    def __init__(
        self,
        config: GuardrailsConfig,
        *,
        count: Callable[[str, str, str], None] | None = None,
        oversight: Callable[[], Any] | None = None,
    ) -> None:
        self.config = config
        self.resources = GuardResources(ner_model=config.ner_model)
        self.policies = PolicySet(config, self.resources)
        self._count = count
        self._oversight = oversight or (lambda: None)

    @property
    def configured(self) -> bool:
        return self.config.configured

    async def start(self) -> None:
        """Warm the scanners up off the event loop, so the first request pays nothing."""
        if self.configured:
            await asyncio.to_thread(self.warm_up)

    def warm_up(self) -> None:
        """Compile every scanner's patterns and load the suffix list (run it in a thread)."""
        for policy in self.policies.all():
            for b in (*policy.input, *policy.output):
                b.scanner.scan(_SAMPLE, ScanContext(next(iter(b.where))))

    async def run(self, work: Callable[[], T], size: int, *, heavy: bool = False) -> T:
        """Big texts, and any text a heavy (model) scanner reads, are scanned in a worker
        thread so the event loop keeps serving."""
        if heavy or size > self.config.offload_chars:
            return await asyncio.to_thread(work)
        return work()

    async def check_tool(
        self,
        *,
        principal: Principal | None,
        tool: str,
        request_id: str,
        arguments: Any = None,
        result: Any = None,
    ) -> ToolVerdict:
        """Scan a tool call's arguments or result (the MCP gateway's door; see tools.py)."""
        from lockgate.guard.tools import check_tool

        return await check_tool(
            self, principal=principal, tool=tool, request_id=request_id, arguments=arguments, result=result
        )

    # --- recording and enforcement ---------------------------------------------------

    def record(self, attrs: dict[str, Any], hits: list[Hit]) -> list[dict[str, Any]]:
        found = verdicts(hits)
        if found:
            attrs.setdefault("guard_verdicts", []).extend(found)
            if self._count is not None:
                for v in found:
                    self._count(v["scanner"], v["action"], v["where"])
        return found

    async def enforce(self, ctx: RequestContext, hits: list[Hit], found: list[dict[str, Any]]) -> None:
        """Raise for block; wait for a reviewer for needs_approval; else nothing."""
        action = strongest(hits)
        if action == "block":
            raise GuardrailBlocked(f"Blocked: {describe(hits, 'block')}.")
        if action == "needs_approval":
            await self.approve(ctx, hits, found)

    async def approve(self, ctx: RequestContext, hits: list[Hit], found: list[dict[str, Any]]) -> str:
        reason = describe(hits, "needs_approval")
        holder = self._oversight()
        if holder is None:
            raise PermissionDenied(
                f"Held for approval ({reason}), but human approval is not available on this gateway."
            )
        approval: str = await holder.hold(
            kind="guardrail",
            actor=ctx.principal,
            request_id=ctx.request_id,
            reason=reason,
            summary={"model": ctx.model, "verdicts": [v for v in found if v["action"] == "needs_approval"]},
            evidence={"verdicts": found},
            timeout=self.config.approval_timeout,
        )
        return approval

    # --- chat requests and answers ---------------------------------------------------

    def scan_chat(self, chat: ChatRequest, policy: Policy, vault: Vault) -> tuple[ChatRequest | None, list[Hit]]:
        """The request with redactions applied (None when unchanged), and every hit."""
        hits: list[Hit] = []
        bounds = policy.input

        def one(text: str, where: str) -> str:
            found = scan_text(bounds, text, ScanContext(where))
            hits.extend(found)
            return redact_text(text, found, vault) if found else text

        system = one(chat.system, "system") if chat.system else chat.system
        messages: list[Message] = []
        changed = system != chat.system
        for m in chat.messages:
            new = _scan_message(m, one)
            changed = changed or new is not m
            messages.append(new)
        if not changed:
            return None, hits
        return msgspec.structs.replace(chat, system=system, messages=messages), hits

    def scan_response(
        self, response: ChatResponse, policy: Policy, vault: Vault, response_format: ResponseFormat | None
    ) -> tuple[ChatResponse, list[Hit]]:
        """The answer with output redactions applied (not yet restored), and every hit."""
        hits: list[Hit] = []
        choices = []
        for choice in response.choices:
            found = scan_text(policy.output, choice.text, ScanContext("output", response_format))
            hits.extend(found)
            text = redact_text(choice.text, found, vault) if found else choice.text
            calls: list[ToolCall] = []
            for call in choice.tool_calls:
                cfound = scan_text(policy.output, call.arguments, ScanContext("output"))
                hits.extend(cfound)
                args = redact_text(call.arguments, cfound, vault) if cfound else call.arguments
                calls.append(call if args == call.arguments else msgspec.structs.replace(call, arguments=args))
            choices.append(msgspec.structs.replace(choice, text=text, tool_calls=calls))
        return msgspec.structs.replace(response, choices=choices), hits


def restore_response(response: ChatResponse, vault: Vault) -> ChatResponse:
    if not vault:
        return response
    choices = [
        msgspec.structs.replace(
            c,
            text=vault.restore(c.text),
            tool_calls=[msgspec.structs.replace(t, arguments=vault.restore(t.arguments)) for t in c.tool_calls],
        )
        for c in response.choices
    ]
    return msgspec.structs.replace(response, choices=choices)


def _scan_message(m: Message, one: Callable[[str, str], str]) -> Message:
    where = m.role
    parts: list[Part] = []
    changed = False
    for part in m.content:
        new: Part = part
        if isinstance(part, TextPart):
            text = one(part.text, where)
            if text != part.text:
                new = TextPart(text=text)
        elif isinstance(part, ToolResultPart):
            text = one(part.content, "tool")
            if text != part.content:
                new = msgspec.structs.replace(part, content=text)
        changed = changed or new is not part
        parts.append(new)
    calls: list[ToolCall] = []
    for call in m.tool_calls:
        args = one(call.arguments, where)
        calls.append(call if args == call.arguments else msgspec.structs.replace(call, arguments=args))
        changed = changed or args != call.arguments
    if not changed:
        return m
    return msgspec.structs.replace(m, content=parts, tool_calls=calls)
