"""The fast canonical form is byte-identical to the RFC 8785 reference."""

from __future__ import annotations

from typing import Any

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from lockgate.audit.canonical import canonical, json_number

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
_json: Any = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(_json)
@settings(max_examples=600, deadline=None)
def test_matches_the_reference(value: Any) -> None:
    assert canonical(value) == rfc8785.dumps(value)


def test_edge_floats_and_keys() -> None:
    for value in [1.0, -0.0, 1e-6, 1e-7, 1e16, 1e21, 5e-324, 0.1, 123.456, 2.0**53, 1e15]:
        assert canonical({"x": value}) == rfc8785.dumps({"x": value})
    assert canonical({"\ue000": 1, "😀": 2}) == rfc8785.dumps({"\ue000": 1, "😀": 2})
    assert canonical({"b": [1, {"d": None, "c": True}], "a": "é\u2028"}) == rfc8785.dumps(
        {"b": [1, {"d": None, "c": True}], "a": "é\u2028"}
    )


def test_chat_fast_path_is_exact() -> None:
    import json

    import msgspec

    from lockgate.audit.stage import _chat_bytes
    from lockgate.core.types import ChatRequest, ChatResponse

    bodies = [
        {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "hé 😀 \\u2028"}]}], "temperature": 0.7},
        {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}], "temperature": 1.0, "top_p": 0.9},
        {"model": "m", "messages": [{"role": "system", "content": [{"type": "text", "text": "s"}]}], "metadata": {"team": "blue"}},
    ]
    for body in bodies:
        chat = msgspec.json.decode(json.dumps(body).encode(), type=ChatRequest)
        fast = _chat_bytes(chat)
        if fast is not None:
            assert bytes(fast) == rfc8785.dumps(msgspec.to_builtins(chat))
    response = msgspec.convert(
        {"id": "c", "model": "m", "created": 1, "choices": [{"index": 0, "text": "hi 😀", "finish_reason": "stop"}],
         "usage": {"input_tokens": 1, "output_tokens": 2}}, ChatResponse)
    encoded = msgspec.json.Encoder(order="sorted").encode(response)
    assert encoded == rfc8785.dumps(msgspec.to_builtins(response))


@given(st.floats(allow_nan=False, allow_infinity=False))
@settings(max_examples=2000, deadline=None)
def test_json_number_matches_the_reference(value: float) -> None:
    assert json_number(value) == rfc8785.dumps(value)


_any_float = st.none() | st.floats(allow_nan=False, allow_infinity=False) | st.floats(min_value=0, max_value=1e-4)


@given(cost=_any_float, latency=_any_float, score=_any_float)
@settings(max_examples=500, deadline=None)
def test_event_body_is_exact(cost: float | None, latency: float | None, score: float | None) -> None:
    """The ledger writes an event's floats as JCS does without the reference's help."""
    import msgspec

    from lockgate.audit.event import AuditEvent, GuardVerdict
    from lockgate.audit.seal import body_bytes

    event = AuditEvent(
        seq=1, id="e", time="2026-01-01T00:00:00.000000Z", type="gateway.request", cost_usd=cost, latency_ms=latency,
        guard=[GuardVerdict(scanner="pii", action="flag", score=score), GuardVerdict(scanner="x", action="block")],
    )
    assert body_bytes(event) == rfc8785.dumps(msgspec.to_builtins(event))


def test_payload_bytes_take_what_rfc_8785_refuses() -> None:
    import hashlib

    import msgspec
    import pytest

    from lockgate.audit.canonical import payload_bytes
    from lockgate.audit.event import digest

    value = {"input": "\U00010000", "dimensions": 2**53 + 1}
    with pytest.raises(ValueError):
        canonical(value)  # event bodies stay strict
    plain = msgspec.json.encode(value, order="sorted")
    assert payload_bytes(value) == plain
    assert digest(value) == hashlib.sha256(plain).hexdigest()
    assert payload_bytes({"a": "\U00010000"}) == canonical({"a": "\U00010000"})  # in the domain: RFC 8785
    assert payload_bytes({"n": 2**70}) == b'{"n":1180591620717411303424}'  # past msgspec too
