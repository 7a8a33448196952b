"""Ids: RFC 9562 version 7 UUIDs, ordered by their millisecond."""

from __future__ import annotations

import uuid

from lockgate.core.ids import uuid7


def test_uuid7_is_a_version_7_rfc_uuid_carrying_its_millisecond() -> None:
    seen: set[str] = set()
    for _ in range(20_000):
        text = uuid7()
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
        seen.add(text)
    assert len(seen) == 20_000
    at = 0x0123456789AB
    assert uuid7(at).startswith("01234567-89ab-7")
    assert uuid.UUID(uuid7(at)).int >> 80 == at
    assert uuid7(at) < uuid7(at + 1)  # text order is time order
