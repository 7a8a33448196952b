"""The `[audit]` and `[approvals]` sections: the ledger and human oversight."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from lockgate.config._base import Strict, secret

__all__ = ["ApprovalRule", "ApprovalsConfig", "AuditConfig"]

RiskTier = Literal["low", "medium", "high", "critical"]


class AuditConfig(Strict):
    enabled: bool = True
    """Record every request, decision and change in the tamper-evident ledger."""
    capture_content: bool = False
    """Keep prompts, answers and tool arguments/results as payloads (their SHA-256 is always kept)."""
    encryption_key: str | None = None
    """Master key (base64 of 32 bytes) wrapping one key per data subject; when set, payloads are
    encrypted per subject and `lockgate audit shred SUBJECT` erases them (crypto-shredding)."""
    signing_key: str | None = None
    """Ed25519 private key for checkpoints (PEM, or base64 of the 32-byte seed). Unset: a key is
    generated once into `signing_key_file`."""
    signing_key_file: str = "lockgate-audit.key"
    """Where the generated signing key is kept when `signing_key` is unset (relative to the config file)."""
    checkpoint_interval: float = Field(default=60.0, ge=0)
    """Seconds between signed checkpoints while events arrive (0: only on demand)."""
    retention_days: int = Field(default=183, ge=1)
    """Payloads older than this are deleted; event hashes and metadata stay (proofs remain valid)."""
    max_batch: int = Field(default=512, ge=1, le=10_000)
    """Events written in one group commit at most."""
    journal: bool = True
    """SQLite: answer a request once its event is in the ledger's journal file (one write, as
    durable against a crash as a commit) and move it into the tables within ~10 ms; false: wait
    for the commit. PostgreSQL always waits for the commit."""
    store_process: bool = True
    """SQLite with the journal: a process of its own (started and supervised by the gateway)
    moves journaled events into the tables, off the gateway's core; false: the gateway's own
    writer task does it."""
    _v_keys = field_validator("encryption_key", "signing_key", mode="before")(staticmethod(secret))

    def secret_refs(self) -> list[tuple[str, str]]:
        refs: list[tuple[str, str]] = []
        if self.encryption_key:
            refs.append(("encryption_key", self.encryption_key))
        if self.signing_key:
            refs.append(("signing_key", self.signing_key))
        return refs


class ApprovalRule(Strict):
    """Hold a request for a human when every condition it sets matches."""

    name: str = Field(min_length=1)
    agents: list[str] = Field(default_factory=list)
    """Agent names."""
    risk_tiers: list[RiskTier] = Field(default_factory=lambda: list[RiskTier]())
    models: list[str] = Field(default_factory=list)
    teams: list[str] = Field(default_factory=list)
    """Team names."""
    tools: list[str] = Field(default_factory=list)
    """MCP tools (namespaced `server__tool`)."""
    min_estimated_cost_usd: float | None = Field(default=None, ge=0)
    """Estimated cost (prompt estimate + max_tokens at the model's price) at or above this."""


class ApprovalsConfig(Strict):
    rules: list[ApprovalRule] = Field(default_factory=lambda: list[ApprovalRule]())
    mode: Literal["wait", "async"] = "wait"
    """`wait`: the caller's request waits for the decision; `async`: it gets 202 and an
    approval id to poll, then sends the request again with `x-lockgate-approval`.
    A request may choose with the header `x-lockgate-approval-mode`."""
    timeout: float = Field(default=300.0, gt=0)
    """Seconds a waiting request is held before it is denied (approval_timeout)."""
    expire_after: float = Field(default=86_400.0, gt=0)
    """Seconds an async approval stays pending, and an approved one usable."""
    poll_interval: float = Field(default=0.25, gt=0, le=10)
    """Seconds between checks for decisions made in other processes while requests wait."""
    webhook_url: str | None = None
    """POSTed a JSON notice when something enters the queue."""
    webhook_secret: str | None = None
    """Signs the webhook body: header `x-lockgate-signature: sha256=<hex HMAC>`."""

    _v_secret = field_validator("webhook_secret", mode="before")(staticmethod(secret))

    def secret_refs(self) -> list[tuple[str, str]]:
        return [("webhook_secret", self.webhook_secret)] if self.webhook_secret else []
