"""What a journal frame holds: an event, or a gateway request's record, and its sealed
payloads, as msgpack arrays tagged by kind ("e", "g"). Frames written before gateway
records (an untagged event and payloads) are still read, for a journal left by the
previous release. `journal.py` frames these bytes; the ledger writes and replays them."""

from __future__ import annotations

import msgspec

from lockgate.audit.event import AuditEvent
from lockgate.audit.record import GatewayRecord

__all__ = ["Entry", "LegacyEntry", "RecordEntry", "SealedPayload", "decode_entry", "decode_frame", "encode_frame"]

SealedPayload = tuple[str | None, str, bytes | None, bytes]  # (subject, scheme, nonce, data)


class Entry(msgspec.Struct, array_like=True, tag="e"):
    """A journal frame: an event and its sealed payloads."""

    event: AuditEvent
    payload: SealedPayload | None = None


class RecordEntry(msgspec.Struct, array_like=True, tag="g"):
    """A journal frame: a gateway request's record and its sealed payloads."""

    record: GatewayRecord
    payload: SealedPayload | None = None


class LegacyEntry(msgspec.Struct, array_like=True):
    """A journal frame as lockgate wrote them before gateway records (read in recovery)."""

    event: AuditEvent
    payload: SealedPayload | None = None


encode_frame = msgspec.msgpack.Encoder().encode
decode_frame = msgspec.msgpack.Decoder(Entry | RecordEntry).decode
_decode_legacy = msgspec.msgpack.Decoder(LegacyEntry).decode


def decode_entry(frame: bytes) -> tuple[AuditEvent | GatewayRecord, SealedPayload | None]:
    """A frame's event (or gateway record) and payloads, in either format (recovery)."""
    try:
        entry = decode_frame(frame)
    except msgspec.ValidationError:
        legacy = _decode_legacy(frame)
        return legacy.event, legacy.payload
    return (entry.event if isinstance(entry, Entry) else entry.record), entry.payload
