"""The published JSON Schema is the one the code validates against, and it accepts
real events and rejects malformed ones."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import msgspec
import pytest

from lockgate.audit.event import AuditEvent, event_schema
from lockgate.audit.seal import seal_body
from lockgate.store._audit import GENESIS

DOC = Path(__file__).resolve().parents[3] / "docs" / "audit-event.schema.json"


def test_published_schema_matches_the_code() -> None:
    assert json.loads(DOC.read_text()) == json.loads(json.dumps(event_schema(), sort_keys=True))


def test_a_sealed_event_validates_against_the_published_schema() -> None:
    event = msgspec.convert(
        {"seq": 0, "id": "x", "time": "2026-11-26T10:00:00.000000Z", "type": "tool.call",
         "actor": {"kind": "key", "principal": "k1", "agent": "planner", "delegation": ["user:alice", "agent:planner"]},
         "target": {"server": "crm", "tool": "crm__delete"}, "guard": [{"scanner": "injection", "action": "flag", "score": 0.97}],
         "decision": {"effect": "needs_approval"}, "latency_ms": 1.5},
        AuditEvent,
    )
    _, body, _ = seal_body(event, 7, GENESIS)
    jsonschema.validate(json.loads(body), json.loads(DOC.read_text()))


@pytest.mark.parametrize("bad", [
    {"type": "no.such.type"},
    {"actor": {"kind": "martian", "principal": "x"}},
    {"status": "two hundred"},
    {"unknown_field": 1},
])
def test_malformed_events_are_refused(bad: dict[str, object]) -> None:
    base = {"seq": 1, "id": "x", "time": "2026-11-26T10:00:00.000000Z", "type": "gateway.request"}
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({**base, **bad}, AuditEvent)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**base, **bad}, json.loads(DOC.read_text()))


@pytest.mark.parametrize("extra", [
    {"cost_usd": 0.00123, "latency_ms": 12.345},
    {"cost_usd": 1.0, "latency_ms": 3.0},
    {"cost_usd": 1e-6, "guard": [{"scanner": "pii", "action": "flag", "score": 1.0}]},
    {"data": {"a": 1.5, "é": 2, "😀": [1e16]}},
    {"reason": "text with 😀 and \u2028", "actor": {"kind": "key", "principal": "p", "delegation": ["a", "b"]}},
])
def test_sealed_bodies_are_rfc8785(extra: dict[str, object]) -> None:
    import rfc8785

    event = msgspec.convert({"seq": 0, "id": "x", "time": "2026-11-26T10:00:00.000000Z", "type": "tool.call", **extra}, AuditEvent)
    sealed, body, _ = seal_body(event, 9, GENESIS)
    assert body.encode() == rfc8785.dumps(msgspec.to_builtins(sealed))
