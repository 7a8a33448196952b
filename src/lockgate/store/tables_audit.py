"""Audit ledger and approvals: the tables, on the shared `metadata` (conventions in `tables.py`).

`audit_events` is append-only: triggers (SQLite and PostgreSQL) reject UPDATE and
DELETE, and on PostgreSQL the gateway's role needs only INSERT and SELECT on it.
`body` holds the event's RFC 8785 bytes, exactly as hashed; the other columns copy
fields out of it for search, and verification checks they agree. `chain` is the
running hash: SHA-256(previous chain || Merkle leaf hash of body).

Indexes are few on purpose: each one is a b-tree page rewritten by every commit, and a
lone request commits alone (measured: four fewer indexes took a one-event commit from
130 to 75 µs). Searches by request id, time and agent use an index; by type, principal,
model or decision they scan newest-first and stop at the page size.

Payloads live in `audit_payloads` (deletable: retention and crypto-shredding), keyed
by seq; `audit_subject_keys` holds each data subject's key, wrapped by the master
key; deleting a row shreds that subject's payloads.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, String, Table, Text

from lockgate.store.tables import ID, NAME, metadata
from lockgate.store.types import UTCDateTime

# On SQLite an INTEGER PRIMARY KEY is the rowid itself: one b-tree fewer for every
# appended event (a BIGINT key would be a separate index). The id needs no index.
SEQ = BigInteger().with_variant(Integer(), "sqlite")

__all__ = [
    "approvals",
    "audit_checkpoints",
    "audit_events",
    "audit_payloads",
    "audit_subject_keys",
]

audit_events = Table(
    "audit_events",
    metadata,
    Column("seq", SEQ, primary_key=True, autoincrement=False),
    Column("id", String(ID), nullable=False),
    Column("time", UTCDateTime, nullable=False, index=True),
    Column("type", String(40), nullable=False),
    Column("request_id", String(NAME)),
    Column("principal", String(ID)),
    Column("agent", String(NAME)),
    Column("model", String(NAME)),
    Column("decision", String(20)),
    Column("status", Integer),
    Column("body", Text, nullable=False),
    Column("chain", String(64), nullable=False),
    Index("ix_audit_events_request_id", "request_id"),
    Index("ix_audit_events_agent_seq", "agent", "seq"),
)

audit_payloads = Table(
    "audit_payloads",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("subject", String(NAME)),
    Column("scheme", String(20), nullable=False),  # "plain" | "aes-256-gcm"
    Column("nonce", LargeBinary),
    Column("data", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False, index=True),
    Index("ix_audit_payloads_subject", "subject"),
)

audit_subject_keys = Table(
    "audit_subject_keys",
    metadata,
    Column("subject", String(NAME), primary_key=True),
    Column("wrapped_key", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("tree_size", BigInteger, primary_key=True, autoincrement=False),
    Column("root_hash", String(64), nullable=False),
    Column("time", UTCDateTime, nullable=False),
    Column("key_id", String(64), nullable=False),
    Column("public_key", String(64), nullable=False),  # base64 raw Ed25519
    Column("signature", String(128), nullable=False),  # base64
    Column("frontier", Text, nullable=False),  # JSON: the compact tree's right edge
)

approvals = Table(
    "approvals",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("kind", String(40), nullable=False),
    Column("status", String(20), nullable=False, index=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("decided_at", UTCDateTime),
    Column("consumed_at", UTCDateTime),
    Column("request_id", String(NAME)),
    Column("principal", String(ID)),
    Column("agent", String(NAME)),
    Column("reason", Text, nullable=False),
    Column("summary", Text, nullable=False),  # JSON
    Column("evidence", Text, nullable=False),  # JSON
    Column("actor", Text),  # JSON: the requester as the audit event names it
    Column("request_hash", String(64)),
    Column("decided_by", String(NAME)),
    Column("comment", Text),
)
