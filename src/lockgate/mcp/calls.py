"""One governed `tools/call`, in order:

    resolve      the namespaced name -> tool and upstream (unknown: -32602)
    approval     the server approved, the tool's definition equal to its pin
    kill         kill switches on the tool, its server, the caller, or everything
    authorize    allow-lists (agent, team), virtual server, Cedar `call_tool`
    validate     the arguments against the tool's input schema (jsonschema)
    rules        `[[mcp.rules]]` on (agent, tool, arguments): deny, or hold for approval
    guard        guardrails on the arguments (block, redact, hold)
    hold         destructive tools and `approve` rules wait for a human (oversight)
    limits       per caller and tool (`[[mcp.rate_limits]]`)
    upstream     the call itself, bounded by the call timeout
    guard        guardrails on the result (an injection planted in it is the classic
                 indirect attack): flag, redact or withhold it
    audit        one `tool.call` event with the outcome; one span `execute_tool {tool}`

Everything before `upstream` reads memory only (the registry, the access state, the
policy decisions' cache): no database round trip per call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

from jsonschema import exceptions as jsonschema_exceptions
from jsonschema.exceptions import ValidationError
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, TextContent, Tool

from lockgate.access.kill import KillSwitchEngaged, tool_switch
from lockgate.access.limits import LimitScope
from lockgate.access.policy_request import (
    PolicyContext,
    PolicyPrincipal,
    PolicyRequest,
    ToolResource,
)
from lockgate.access.state import AccessState
from lockgate.core.context import Principal
from lockgate.errors import InvalidRequest, LockgateError, PermissionDenied
from lockgate.mcp.catalog import split_name
from lockgate.mcp.errors import ToolBlocked, UnknownTool, to_mcp_error
from lockgate.mcp.registry import Registry, ToolEntry
from lockgate.mcp.rules import McpRules, VirtualServer

if TYPE_CHECKING:
    from lockgate.access.policy import PolicyEngine
    from lockgate.access.policy_entities import PolicyEntities
    from lockgate.monitor.tracing import Tracing

__all__ = ["Caller", "Services", "ToolCalls"]

_log = logging.getLogger("lockgate.mcp")


@dataclass(slots=True)
class Caller:
    """Who calls, through which endpoint (`/mcp` or `/mcp/{virtual}`)."""

    principal: Principal
    request_id: str
    virtual: VirtualServer | None = None

    @property
    def who(self) -> str:
        p = self.principal
        return p.agent_name or p.label or p.id


@dataclass(slots=True)
class Services:
    """What a call needs from the rest of the gateway; audit, guard and oversight are
    looked up per call, so they may arrive after the MCP gateway was built."""

    registry: Registry
    rules: McpRules
    state: Callable[[], AccessState]
    policy: PolicyEngine
    entities: Callable[[], PolicyEntities]
    limiter: Any
    tracing: Tracing
    plugins: Callable[[str], Any]  # "audit" | "guard" | "oversight" -> the service or None
    approval_timeout: float


@dataclass(slots=True)
class _Record:
    """What the audit event and the span say about one call."""

    server: str = ""
    tool: str = ""
    outcome: str = "error"
    status: int = 500
    decision: dict[str, Any] = field(default_factory=lambda: {})  # effect, policies, reason
    notes: dict[str, Any] = field(default_factory=lambda: {})  # rule, kill switch, hold ...
    guard: list[dict[str, Any]] = field(default_factory=lambda: [])
    arguments: Any = None
    result: Any = None
    error: str | None = None
    approval_id: str | None = None


class _Stoppable:
    """The cancel scope of one call in flight, asyncio's own way (as `asyncio.timeout`):
    `cancel()` cancels the task, and leaving the block swallows that one cancellation,
    not one that came from elsewhere (the client went away). A fifth of the cost of
    `anyio.CancelScope`, which looks the async library up on every use."""

    __slots__ = ("_cancelled", "_task")

    def __init__(self) -> None:
        self._task: asyncio.Task[Any] | None = None
        self._cancelled = False

    def __enter__(self) -> _Stoppable:
        self._task = asyncio.current_task()
        return self

    def cancel(self) -> None:
        """Called from another task (the access state's listener), so the call is
        suspended inside the block and the cancellation lands there."""
        if self._task is not None and not self._cancelled:
            self._cancelled = True
            self._task.cancel()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None,
    ) -> bool:
        task, self._task = self._task, None
        if not self._cancelled or task is None:
            return False
        return task.uncancel() == 0 and exc_type is asyncio.CancelledError


def _principal(p: Principal) -> PolicyPrincipal:
    kind = "operator" if p.kind in ("operator", "anonymous") else p.kind
    return PolicyPrincipal(kind, p.id)  # type: ignore[arg-type]


class ToolCalls:
    def __init__(self, services: Services) -> None:
        self.s = services
        self.inflight: dict[int, tuple[_Stoppable, Caller, ToolEntry]] = {}
        self._guard_seen: tuple[Any, Any] | None = None
        # Allowed (allow-lists + Cedar) per caller and tool, for one access state and one
        # set of policy entities; a new state or entities object starts it afresh.
        self._allowed: dict[tuple[object, ...], dict[str, Any]] = {}
        self._allowed_for: tuple[object, object] | None = None

    # --- visibility (tools/list) and per-tool permission ---------------------------

    def permitted(self, caller: Caller, entries: list[tuple[str, str, str, bool]]) -> list[bool]:
        """For (namespaced name, server, tool, destructive) items: may the caller use each?
        Allow-lists and kill switches first, then one Cedar batch for the rest."""
        state = self.s.state()
        p = caller.principal
        verdicts: list[bool] = []
        pending: list[tuple[int, PolicyRequest]] = []
        for i, (name, server, tool, destructive) in enumerate(entries):
            ok = (
                (caller.virtual is None or caller.virtual.tools.match(name))
                and tool_switch(state, p, server, tool) is None
                and self.s.rules.allow_listed(p, state, name) is None
            )
            verdicts.append(ok)
            if ok:
                pending.append((i, self._policy_request(p, server, tool, destructive)))
        if pending:
            decisions = self.s.policy.decide_batch([r for _, r in pending], self.s.entities())
            for (i, _), decision in zip(pending, decisions, strict=True):
                verdicts[i] = decision.allowed
        return verdicts

    def _policy_request(self, p: Principal, server: str, tool: str, destructive: bool) -> PolicyRequest:
        return PolicyRequest(
            _principal(p), "call_tool", ToolResource(server, tool, destructive),
            PolicyContext(agent_id=p.agent_id, delegation=p.delegation),
        )

    def visible_tools(self, caller: Caller) -> list[Tool]:
        entries = [e for e in self.s.registry.entries.values() if e.status == "ok" and e.listed is not None]
        items = [(e.tool.full_name, e.tool.server, e.tool.name, e.tool.destructive) for e in entries]
        return [e.listed for e, ok in zip(entries, self.permitted(caller, items), strict=True) if ok and e.listed]

    # --- tools/call -----------------------------------------------------------------

    async def call(self, caller: Caller, name: str, arguments: dict[str, Any] | None) -> CallToolResult:
        rec = _Record(arguments=arguments)
        started = time.perf_counter()
        span = self._start_span(caller, name)
        try:
            result = await self._call(caller, name, dict(arguments or {}), rec)
            rec.result = result
            rec.outcome, rec.status = ("tool_error", 200) if result.is_error else ("ok", 200)
            return result
        except LockgateError as exc:
            rec.error, rec.status = exc.message, exc.status
            if rec.decision.get("effect") == "needs_approval" and isinstance(exc, PermissionDenied):
                rec.decision["effect"] = "denied"
            rec.outcome = "denied" if 400 <= exc.status < 500 else "upstream_error"
            raise to_mcp_error(exc, caller.request_id) from None
        except MCPError as exc:  # the upstream's own JSON-RPC error, passed on
            rec.error, rec.status, rec.outcome = exc.message, 502, "upstream_error"
            raise
        finally:
            latency = (time.perf_counter() - started) * 1000
            self._end_span(span, rec)
            await self._audit(caller, name, rec, latency)

    async def _call(self, caller: Caller, name: str, args: dict[str, Any], rec: _Record) -> CallToolResult:
        entry = await self._resolve(caller, name)
        rec.server, rec.tool = entry.tool.server, entry.tool.name
        self._check_approved(entry)
        self._authorize(caller, entry, rec)
        self._validate(entry, args)
        rule = self.s.rules.rule_for(caller.principal, name, args)
        if rule is not None and rule.action == "deny":
            rec.decision = {"effect": "deny", "reason": f"rule: {rule.reason or 'deny'}"}
            rec.notes["rule"] = "deny"
            raise PermissionDenied(
                f"Calling {name} with these arguments is denied by a rule: {rule.reason or 'no reason given'}."
            )
        args, hold_reason = await self._guard_arguments(caller, name, args, rec)
        rec.arguments = args
        if entry.tool.destructive:
            hold_reason = hold_reason or f"tool {name} is annotated destructive"
        if rule is not None:
            hold_reason = hold_reason or f"approval rule: {rule.reason or name}"
        result: CallToolResult | None = None
        with _Stoppable() as scope:  # a kill switch thrown meanwhile cancels it
            self.inflight[id(scope)] = (scope, caller, entry)
            try:
                if hold_reason is not None:
                    await self._hold(caller, entry, args, hold_reason, rec)
                result = await self._upstream(caller, entry, args)
            finally:
                self.inflight.pop(id(scope), None)
        if result is None:
            state = self.s.state()
            switch = tool_switch(state, caller.principal, entry.tool.server, entry.tool.name)
            raise KillSwitchEngaged.of(switch, state) if switch else PermissionDenied("The call was stopped.")
        result = result.model_copy(update={"meta": None})
        return await self._guard_result(caller, name, result, rec)

    async def _upstream(self, caller: Caller, entry: ToolEntry, args: dict[str, Any]) -> CallToolResult:
        reservation = await self._reserve(caller, entry.tool.full_name)
        try:
            return await entry.upstream.call_tool(entry.tool.name, args)
        finally:
            if reservation is not None:
                with contextlib.suppress(Exception):
                    await self.s.limiter.settle(reservation, tokens=0, cost_usd=0.0)

    def on_state_change(self, state: AccessState) -> None:
        """Stop the calls in flight (held or running) that a kill switch now covers."""
        if not state.kills:
            return
        for scope, caller, entry in list(self.inflight.values()):
            if tool_switch(state, caller.principal, entry.tool.server, entry.tool.name) is not None:
                scope.cancel()

    async def _resolve(self, caller: Caller, name: str) -> ToolEntry:
        entry = self.s.registry.entries.get(name)
        parts = split_name(name)
        upstream = self.s.registry.upstreams.get(parts[0]) if entry is None and parts else None
        if upstream is not None and not upstream.listed:
            await upstream.refresh()  # its server was down so far: try it now (bounded)
            entry = self.s.registry.entries.get(name)
        if entry is None or (caller.virtual is not None and not caller.virtual.tools.match(name)):
            hint = "" if split_name(name) else " Tools are named `server__tool`."
            raise UnknownTool(f"Unknown tool: {name!r}.{hint}", param="name")
        return entry

    @staticmethod
    def _check_approved(entry: ToolEntry) -> None:
        name = entry.tool.full_name
        match entry.status:
            case "quarantined":
                raise ToolBlocked(
                    f"MCP server '{entry.tool.server}' is quarantined until an admin approves it "
                    f"(`lockgate mcp servers approve {entry.tool.server}`).", code="server_quarantined",
                )
            case "pending":
                raise ToolBlocked(
                    f"Tool {name} has not been approved yet (`lockgate mcp tools approve {name}`).",
                    code="tool_not_approved",
                )
            case "changed":
                raise ToolBlocked(
                    f"Tool {name} changed since it was approved (definition {entry.tool.digest[:12]}, "
                    f"approved {(entry.approved_digest or '')[:12]}); calls are blocked until an admin "
                    f"reviews and approves the change (`lockgate mcp tools show {name}`).",
                    code="tool_changed",
                )
            case "ok":
                if entry.schema_error:
                    raise ToolBlocked(f"Tool {name}: {entry.schema_error}", code="tool_schema_invalid")

    def _authorize(self, caller: Caller, entry: ToolEntry, rec: _Record) -> None:
        state = self.s.state()
        p = caller.principal
        tool = entry.tool
        switch = tool_switch(state, p, tool.server, tool.name)
        if switch is not None:
            rec.decision = {"effect": "deny", "reason": f"kill switch on {switch.scope} {switch.target}"}
            rec.notes["kill_switch"] = switch.id
            raise KillSwitchEngaged.of(switch, state)
        entities = self.s.entities()
        if self._allowed_for is None or self._allowed_for[0] is not state or self._allowed_for[1] is not entities:
            self._allowed, self._allowed_for = {}, (state, entities)
        key = (p.id, p.kind, p.team_id, p.user_id, p.agent_id, p.agent_name, p.delegation, p.shadow_agent,
               tool.full_name, tool.destructive)
        allowed = self._allowed.get(key)
        if allowed is not None:
            rec.decision = dict(allowed)
            return
        why = self.s.rules.allow_listed(p, state, tool.full_name)
        if why is not None:
            rec.decision = {"effect": "deny", "reason": why}
            raise PermissionDenied(f"Tool {tool.full_name} is {why}.")
        decision = self.s.policy.decide(self._policy_request(p, tool.server, tool.name, tool.destructive), entities)
        rec.decision = {"effect": decision.decision, "policies": list(decision.policies), "reason": decision.reason}
        if decision.allowed and len(self._allowed) < 65536:
            self._allowed[key] = dict(rec.decision)
        if not decision.allowed:
            which = ", ".join(decision.policies) if decision.policies else "no policy permits it"
            raise PermissionDenied(f"Calling {tool.full_name} was denied by policy ({which}).")

    @staticmethod
    def _validate(entry: ToolEntry, args: dict[str, Any]) -> None:
        validator = entry.validator
        if validator is None or (entry.quick is not None and entry.quick(args)) or validator.is_valid(args):
            return
        error = cast(
            "ValidationError | None",
            jsonschema_exceptions.best_match(validator.iter_errors(args)),  # pyright: ignore[reportUnknownMemberType]
        )
        if error is not None:
            path = cast("Sequence[Any]", error.absolute_path)
            where = "/".join(str(p) for p in path) or "(root)"
            raise InvalidRequest(
                f"Invalid arguments for {entry.tool.full_name} at {where}: {error.message}", param=f"arguments/{where}"
            )

    async def _guard_arguments(
        self, caller: Caller, name: str, args: dict[str, Any], rec: _Record
    ) -> tuple[dict[str, Any], str | None]:
        verdict = await self._guard(caller, name, arguments=args)
        if verdict is None:
            return args, None
        rec.guard += list(verdict.verdicts)
        match verdict.action:
            case "block":
                raise PermissionDenied(f"The arguments of {name} were blocked by guardrails.")
            case "redact":
                value = verdict.value
                return (value if isinstance(value, dict) else args), None  # pyright: ignore[reportUnknownVariableType]
            case "needs_approval":
                return args, f"guardrails asked for review of the arguments of {name}"
            case _:
                return args, None

    async def _guard_result(self, caller: Caller, name: str, result: CallToolResult, rec: _Record) -> CallToolResult:
        if self._guard_check() is None:
            return result
        dumped = result.model_dump(by_alias=True, mode="json", exclude_none=True)
        verdict = await self._guard(caller, name, result=dumped)
        if verdict is None or verdict.action == "pass":
            return result
        rec.guard += list(verdict.verdicts)
        notice = {"action": verdict.action, "verdicts": list(verdict.verdicts)}
        if verdict.action in ("block", "needs_approval"):
            text = f"lockgate withheld the result of {name}: guardrails flagged it ({verdict.action})."
            return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True,
                                  _meta={"lockgate/guard": notice})
        if verdict.action == "redact" and isinstance(verdict.value, dict):
            with contextlib.suppress(Exception):
                result = CallToolResult.model_validate(verdict.value)
        return result.model_copy(update={"meta": {**(result.meta or {}), "lockgate/guard": notice}})

    def _guard_check(self) -> Any:
        """`gateway.guard.check_tool`, or None when no guardrail is configured (then a
        call skips scanning entirely)."""
        guard = self.s.plugins("guard")
        if guard is None:
            return None
        if self._guard_seen is None or self._guard_seen[0] is not guard:
            configured = getattr(guard, "configured", True)  # the config is fixed for the process
            self._guard_seen = (guard, getattr(guard, "check_tool", None) if configured else None)
        return self._guard_seen[1]

    async def _guard(self, caller: Caller, name: str, *, arguments: Any = None, result: Any = None) -> Any:
        check = self._guard_check()
        if check is None:
            return None
        return await check(principal=caller.principal, tool=name, request_id=caller.request_id,
                           arguments=arguments, result=result)

    async def _hold(self, caller: Caller, entry: ToolEntry, args: dict[str, Any], reason: str, rec: _Record) -> None:
        oversight = self.s.plugins("oversight")
        if oversight is None:
            rec.notes["hold"] = "unavailable"
            raise PermissionDenied(
                f"Calling {entry.tool.full_name} needs a human's approval ({reason}), and no approval "
                "queue is running on this gateway."
            )
        rec.notes["hold"] = reason
        rec.decision = dict(rec.decision, effect="needs_approval")
        rec.approval_id = await oversight.hold(
            kind="tool_call", actor=caller.principal, request_id=caller.request_id, reason=reason,
            summary={"tool": entry.tool.full_name, "server": entry.tool.server, "arguments": args,
                     "destructive": entry.tool.destructive},
            evidence={"digest": entry.tool.digest, "decision": dict(rec.decision)},
            timeout=self.s.approval_timeout,
        )
        rec.notes["approval_id"] = rec.approval_id
        rec.decision["effect"] = "approved"

    async def _reserve(self, caller: Caller, name: str) -> Any:
        limits = self.s.rules.limits_for(name)
        if limits is None:
            return None
        scope = LimitScope("tool", f"{caller.who}|{name}", limits)
        return await self.s.limiter.reserve([scope], tokens=0, cost_usd=0.0)

    # --- audit and trace --------------------------------------------------------------

    async def _audit(self, caller: Caller, name: str, rec: _Record, latency_ms: float) -> None:
        audit = self.s.plugins("audit")
        if audit is None:
            return
        endpoint = f"/mcp/{caller.virtual.name}" if caller.virtual else "/mcp"
        target = {"endpoint": endpoint, "server": rec.server or None, "tool": name}
        try:
            output = rec.result
            if isinstance(output, CallToolResult):
                output = output.model_dump(by_alias=True, mode="json", exclude_none=True)
            await audit.append(
                "tool.call", actor=caller.principal, request_id=caller.request_id, target=target,
                input=rec.arguments, output=output, decision=rec.decision or None,
                guard=rec.guard, latency_ms=latency_ms, status=rec.status, error=rec.error,
                data={"outcome": rec.outcome, **rec.notes},
            )
        except LockgateError as exc:
            # As for chat requests: no silent gap in the ledger; the caller learns the
            # call is unaccounted for (`audit_unavailable`), whatever its outcome was.
            _log.error("audit of tool call %s failed: %s", caller.request_id, exc.message)
            if exc.status >= 500:
                raise to_mcp_error(exc, caller.request_id) from None
        except Exception as exc:
            _log.error("audit of tool call %s failed: %s", caller.request_id, exc)

    def _start_span(self, caller: Caller, name: str) -> Any:
        tracer = self.s.tracing.tracer
        if tracer is None:
            return None
        from opentelemetry.trace import SpanKind

        return tracer.start_span(f"execute_tool {name}", kind=SpanKind.INTERNAL, attributes={
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name, "gen_ai.tool.type": "extension",
            "gen_ai.tool.call.id": caller.request_id, "mcp.method.name": "tools/call",
            "lockgate.request_id": caller.request_id, "lockgate.principal": caller.principal.label,
        })

    def _end_span(self, span: Any, rec: _Record) -> None:
        if span is None:
            return
        from opentelemetry.trace import Status, StatusCode

        span.set_attribute("lockgate.mcp.server", rec.server)
        span.set_attribute("lockgate.mcp.outcome", rec.outcome)
        if rec.outcome not in ("ok",):
            span.set_attribute("error.type", rec.outcome)
            span.set_status(Status(StatusCode.ERROR, rec.error or rec.outcome))
        span.end()
