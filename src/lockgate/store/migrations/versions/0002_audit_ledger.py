"""Audit ledger (append-only events, payloads, subject keys, signed checkpoints) and approvals.

Revision ID: 0002_audit_ledger
Revises: 0001_access_control
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from lockgate.store.types import UTCDateTime

revision = "0002_audit_ledger"
down_revision: str | None = "0001_access_control"
branch_labels: str | None = None
depends_on: str | None = None

ID = 36
NAME = 200
APPEND_ONLY = ("audit_events", "audit_checkpoints")
# On SQLite an INTEGER PRIMARY KEY is the rowid: one b-tree fewer per appended event.
SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=False),
        sa.Column("id", sa.String(ID), nullable=False),
        sa.Column("time", UTCDateTime, nullable=False, index=True),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("request_id", sa.String(NAME)),
        sa.Column("principal", sa.String(ID)),
        sa.Column("agent", sa.String(NAME)),
        sa.Column("model", sa.String(NAME)),
        sa.Column("decision", sa.String(20)),
        sa.Column("status", sa.Integer),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("chain", sa.String(64), nullable=False),
        sa.Index("ix_audit_events_request_id", "request_id"),
        sa.Index("ix_audit_events_agent_seq", "agent", "seq"),
    )
    op.create_table(
        "audit_payloads",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("subject", sa.String(NAME)),
        sa.Column("scheme", sa.String(20), nullable=False),
        sa.Column("nonce", sa.LargeBinary),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False, index=True),
        sa.Index("ix_audit_payloads_subject", "subject"),
    )
    op.create_table(
        "audit_subject_keys",
        sa.Column("subject", sa.String(NAME), primary_key=True),
        sa.Column("wrapped_key", sa.LargeBinary, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("tree_size", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("root_hash", sa.String(64), nullable=False),
        sa.Column("time", UTCDateTime, nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.Column("frontier", sa.Text, nullable=False),
    )
    op.create_table(
        "approvals",
        sa.Column("id", sa.String(ID), primary_key=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("status", sa.String(20), nullable=False, index=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
        sa.Column("decided_at", UTCDateTime),
        sa.Column("consumed_at", UTCDateTime),
        sa.Column("request_id", sa.String(NAME)),
        sa.Column("principal", sa.String(ID)),
        sa.Column("agent", sa.String(NAME)),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("evidence", sa.Text, nullable=False),
        sa.Column("actor", sa.Text),
        sa.Column("request_hash", sa.String(64)),
        sa.Column("decided_by", sa.String(NAME)),
        sa.Column("comment", sa.Text),
    )
    bind = op.get_bind()
    for table in APPEND_ONLY:
        if bind.dialect.name == "postgresql":
            _pg_append_only(table)
        else:
            for verb in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
                )


def _pg_append_only(table: str) -> None:
    op.execute(
        "CREATE OR REPLACE FUNCTION lockgate_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP; END $$"
    )
    op.execute(
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION lockgate_append_only()"
    )
    op.execute(
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION lockgate_append_only()"
    )


def downgrade() -> None:
    for table in ("approvals", "audit_checkpoints", "audit_subject_keys", "audit_payloads", "audit_events"):
        op.drop_table(table)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS lockgate_append_only()")
