"""Sealing: an event's RFC 8785 body, its row, and its link in the hash chain."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from lockgate.audit import merkle
from lockgate.audit.canonical import canonical, is_plain_float, number
from lockgate.audit.event import AuditEvent, search_columns
from lockgate.audit.record import GatewayRecord, to_event
from lockgate.store._audit import SealedEvent

__all__ = ["body_bytes", "row_of", "seal_body", "sealer"]


def row_of(event: AuditEvent, body: str, chain: str) -> tuple[Any, ...]:
    """The `audit_events` row of a sealed event (`EVENT_COLUMNS` order): its body and
    the fields copied out for search; the time stays RFC 3339 text, which each writer
    converts for its database."""
    return (event.seq, event.id, event.time, event.type, *search_columns(event), body, chain)


def body_bytes(event: AuditEvent) -> bytes:
    """The event's RFC 8785 bytes. Its keys are ASCII and msgspec escapes strings as JCS
    does, so msgspec's sorted output is canonical once every float is written JCS's way
    (`number`: those msgspec would write differently go in as raw bytes). Only `data`,
    free-form, needs the general path."""
    if event.data:
        return canonical(msgspec.to_builtins(event))
    guard = event.guard
    if any(g.score is not None and not is_plain_float(g.score) for g in guard):
        guard = [msgspec.structs.replace(g, score=number(g.score)) for g in guard]  # pyright: ignore[reportArgumentType]
    exact = msgspec.structs.replace(
        event, cost_usd=number(event.cost_usd), latency_ms=number(event.latency_ms), guard=guard  # pyright: ignore[reportArgumentType]
    )
    return _sorted(exact)


_sorted = msgspec.json.Encoder(order="sorted").encode


def seal_body(event: AuditEvent, seq: int, prev_chain: str) -> tuple[AuditEvent, str, str]:
    """The event numbered `seq`, its RFC 8785 body, and its chain hash after `prev_chain`."""
    if event.seq != seq:
        event = msgspec.structs.replace(event, seq=seq)
    raw = body_bytes(event)
    chain = hashlib.sha256(bytes.fromhex(prev_chain) + merkle.leaf_hash(raw)).hexdigest()
    return event, raw.decode(), chain


def sealer(
    events: Sequence[AuditEvent | GatewayRecord], payloads: Sequence[tuple[Any, ...] | None]
) -> Callable[[int, int, str], SealedEvent]:
    """The `seal(i, seq, prev_chain)` a batch append calls (`store/_audit.py`): the i-th
    event (a gateway record becomes its event here) numbered and chained, with its
    payloads row ((subject, scheme, nonce, data) given)."""

    def seal(i: int, seq: int, prev: str) -> SealedEvent:
        event = events[i]
        if type(event) is GatewayRecord:
            event = to_event(event, seq)
        event, body, chain = seal_body(event, seq, prev)  # pyright: ignore[reportArgumentType]
        payload = payloads[i]
        return SealedEvent(row_of(event, body, chain), chain, None if payload is None else (seq, *payload, event.time))

    return seal
