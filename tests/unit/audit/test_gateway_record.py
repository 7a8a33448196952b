"""The gateway's fast audit record (`AuditStage`) makes exactly the event the general
path (`Ledger.event`) makes from the same request, for every shape of request."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from lockgate.access.policy_request import Decision as PolicyDecision
from lockgate.audit.checkpoint import load_signer
from lockgate.audit.frames import RecordEntry, decode_entry, encode_frame
from lockgate.audit.ledger import Ledger
from lockgate.audit.record import to_event
from lockgate.audit.stage import gateway_event, gateway_record
from lockgate.config.audit import AuditConfig
from lockgate.core import context as ctx_module
from lockgate.core.context import Principal, RequestContext
from lockgate.core.types import ChatResponse, Choice, Usage
from lockgate.errors import PermissionDenied, UpstreamError
from lockgate.gateway.openai_wire import decode_chat_request

STAMP = ("0190a3b4-aaaa-7bbb-8ccc-0123456789ab", "2026-11-26T16:00:00.123456Z")


def _reference(ctx: RequestContext) -> dict[str, Any]:
    """The event's fields as `Ledger.event` takes them: the mapping AuditStage built
    before the fast record (kept here as the oracle)."""
    error = ctx.error
    refused = error is not None and not isinstance(error, UpstreamError)
    event: dict[str, Any] = {
        "type": "gateway.refused" if refused else "gateway.request",
        "actor": ctx.principal,
        "request_id": ctx.request_id,
        "trace_id": ctx.attrs.get("trace_id"),
        "target": {"endpoint": ctx.endpoint, "model": ctx.model or None, "route": ctx.route_model,
                   "provider": ctx.provider},
        "latency_ms": ctx.elapsed() * 1000,
        "status": error.status if error is not None else 200,
    }
    if error is not None:
        event["error"] = error.code
        event["reason"] = error.message[:500]
    if ctx.cost is not None:
        event["cost_usd"] = ctx.cost
    _reference_decisions(ctx, event)
    _reference_payloads(ctx, event)
    return event


def _reference_decisions(ctx: RequestContext, event: dict[str, Any]) -> None:
    policy = ctx.attrs.get("policy")
    if policy is not None:
        event["decision"] = {"effect": "allow" if policy.allowed else "deny", "policies": list(policy.policies),
                             **({"reason": policy.reason} if policy.reason else {})}
    approval = ctx.attrs.get("approval")
    if approval is not None:
        event["decision"] = {**event.get("decision", {"effect": "allow"}), "effect": "approved"}
        event["data"] = {"approval_id": approval}
    verdicts = ctx.attrs.get("guard_verdicts")
    if verdicts:
        event["guard"] = [{k: v[k] for k in ("scanner", "action", "score", "version", "where", "entity")
                           if v.get(k) is not None} for v in verdicts]


def _reference_payloads(ctx: RequestContext, event: dict[str, Any]) -> None:
    headers: dict[str, str] = ctx.attrs.get("headers", {})
    if ctx.chat is not None:
        event["input"] = msgspec.to_builtins(ctx.chat)
    elif ctx.embedding is not None:
        event["input"] = msgspec.to_builtins(ctx.embedding)
    text: list[str] | None = ctx.attrs.get("stream_text")
    if text is not None:
        event["output"] = "".join(text)
    elif ctx.response is not None:
        event["output"] = msgspec.to_builtins(ctx.response)
    if headers.get("x-lockgate-reasoning"):
        event["reasoning"] = headers["x-lockgate-reasoning"]
    subject = headers.get("x-lockgate-data-subject") or (ctx.chat.user if ctx.chat else None)
    if subject is None and ctx.principal is not None:
        subject = ctx.principal.user_id
    if subject:
        event["subject"] = subject


def _ctx(body: bytes = b'{"model":"m","messages":[{"role":"user","content":"Hi"}]}') -> RequestContext:
    ctx = RequestContext(request_id="req-1", dialect="openai", endpoint="chat", credential="sk-x",
                         chat=decode_chat_request(body))
    ctx.principal = Principal(id="k1", kind="key", label="lg-Abc123", team_id="t1", user_id="alice",
                              agent_name="planner", delegation=("user:alice", "agent:planner"))
    ctx.provider, ctx.route_model = "up", "gpt-4o-mini"
    return ctx


def _plain(ctx: RequestContext) -> None:
    ctx.cost = 6e-06
    ctx.response = ChatResponse(id="r", model="gpt-4o-mini", created=1, choices=[Choice(text="Hello")],
                                usage=Usage(input_tokens=3, output_tokens=1))


def _stream(ctx: RequestContext) -> None:
    ctx.attrs["stream_text"] = ["Hel", "lo ✓"]
    ctx.attrs["trace_id"] = "0af7651916cd43dd8448eb211c80319c"


def _refused(ctx: RequestContext) -> None:
    ctx.error = PermissionDenied("no policy permits " + "x" * 600)
    ctx.attrs["policy"] = PolicyDecision(False, "deny", ("p-deny",), (), "forbidden by p-deny")
    ctx.provider = ctx.route_model = None


def _upstream_failed(ctx: RequestContext) -> None:
    ctx.error = UpstreamError("upstream said 500", upstream_status=500)


def _approved_and_scanned(ctx: RequestContext) -> None:
    _plain(ctx)
    ctx.attrs["policy"] = PolicyDecision.allow(("p1", "p2"))
    ctx.attrs["approval"] = "apr-1"
    ctx.attrs["guard_verdicts"] = [
        {"scanner": "pii", "version": "1", "score": 0.85, "action": "redact", "where": "input", "entity": "EMAIL"},
        {"scanner": "secrets", "version": None, "score": 1, "action": "flag", "where": "output", "entity": "KEY"},
    ]
    ctx.attrs["headers"] = {"x-lockgate-reasoning": "plan: answer briefly", "x-lockgate-data-subject": "subj-9"}


def _approval_only_anonymous(ctx: RequestContext) -> None:
    ctx.principal = Principal(id="anonymous", kind="anonymous", label="anonymous")
    ctx.attrs["approval"] = "apr-2"
    ctx.model = ""


def _tools_and_user(ctx: RequestContext) -> None:
    _plain(ctx)
    ctx.chat = decode_chat_request(
        b'{"model":"m","user":"bob","temperature":0.5,"messages":[{"role":"user","content":"Hi"}],'
        b'"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","b":1e21}}}]}'
    )


def _no_principal(ctx: RequestContext) -> None:
    ctx.principal = None
    ctx.error = PermissionDenied("missing key")


CASES = [_plain, _stream, _refused, _upstream_failed, _approved_and_scanned, _approval_only_anonymous,
         _tools_and_user, _no_principal]


@pytest.mark.parametrize("capture", [False, True])
@pytest.mark.parametrize("shape", CASES, ids=[c.__name__.strip("_") for c in CASES])
def test_the_fast_record_makes_the_general_paths_event(
    shape: Any, capture: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = Ledger(None, AuditConfig(capture_content=capture), signer=load_signer(None, None))  # pyright: ignore[reportArgumentType]
    ctx = _ctx()
    shape(ctx)
    monkeypatch.setattr(ctx_module.time, "perf_counter", lambda: 100.0)  # both paths see one latency
    ctx.started = 100.0 - 0.0123456
    expected, expected_payload = ledger.event(**_reference(ctx))
    expected = msgspec.structs.replace(expected, id=STAMP[0], time=STAMP[1])
    got, payload = gateway_event(ctx, STAMP, capture=capture)
    assert got == expected
    assert (payload or {}) == expected_payload
    # The record survives its journal frame unchanged (what the writer and recovery read).
    record, _ = gateway_record(ctx, STAMP, capture=capture)
    decoded, _ = decode_entry(encode_frame(RecordEntry(record, None)))
    assert to_event(decoded) == expected  # pyright: ignore[reportArgumentType]
