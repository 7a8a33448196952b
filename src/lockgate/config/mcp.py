"""The `[mcp]` section: the MCP gateway's upstream servers, virtual servers, allow-lists,
approval and deny rules, and per-tool rate limits (docs/mcp.md).

    [mcp.servers.crm]
    url = "https://crm.internal/mcp"
    bearer = "env::CRM_MCP_TOKEN"          # sent as Authorization: Bearer ...

    [mcp.servers.files]
    command = "python"
    args = ["-m", "files_mcp"]
    env = { FILES_TOKEN = "env::FILES_TOKEN" }

Credentials are lockgate's: header, bearer and env values that name a secret
(`env::NAME`, `file::/path`) are resolved by the loader and sent upstream; a client's
own Authorization header is never forwarded.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from lockgate.config._base import Strict, secret

__all__ = [
    "SERVER_NAME",
    "McpAllowLists",
    "McpConfig",
    "McpRateLimit",
    "McpRule",
    "McpServerConfig",
    "McpVirtualServer",
    "is_secret_ref",
]

SERVER_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?$")
"""Server names: letters, digits and single hyphens inside; never `_`, so the namespace
separator `__` in `server__tool` can only be the one lockgate put there."""

_SECRET_PREFIXES = ("env::", "file::")


def is_secret_ref(value: str) -> bool:
    return value.startswith(_SECRET_PREFIXES)


def _server_name(value: str) -> str:
    if not SERVER_NAME.match(value):
        raise ValueError(
            f"MCP server name {value!r}: use 1-64 letters, digits and hyphens (no '_', "
            "which would clash with the `server__tool` separator)"
        )
    return value


class McpServerConfig(Strict):
    """One upstream MCP server: a streamable HTTP `url`, or a stdio `command` lockgate launches."""

    url: str | None = None
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    """Environment of a stdio server, over a minimal default (HOME, PATH, ...); values may
    name secrets (`env::NAME`)."""
    cwd: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    """HTTP headers sent to a `url` server; values may name secrets."""
    bearer: str | None = None
    """A secret sent as `Authorization: Bearer ...` to a `url` server."""
    timeout: float | None = Field(default=None, gt=0)
    """Per-call timeout for this server's tools (seconds); default `mcp.call_timeout`."""
    description: str = ""

    _v_bearer = field_validator("bearer", mode="before")(staticmethod(secret))

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerConfig:
        if (self.url is None) == (self.command is None):
            raise ValueError("set exactly one of `url` (streamable HTTP) or `command` (stdio)")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError("url must be an http:// or https:// URL")
        if self.command is not None and (self.headers or self.bearer):
            raise ValueError("headers and bearer apply to `url` servers; give a stdio server `env`")
        if self.url is not None and (self.args or self.env or self.cwd):
            raise ValueError("args, env and cwd apply to `command` servers")
        if any(k.lower() == "authorization" for k in self.headers) and self.bearer:
            raise ValueError("set the Authorization header or `bearer`, not both")
        return self

    def secret_refs(self) -> list[tuple[str, str]]:
        refs = [(f"headers.{k}", v) for k, v in self.headers.items() if is_secret_ref(v)]
        refs += [(f"env.{k}", v) for k, v in self.env.items() if is_secret_ref(v)]
        if self.bearer:
            refs.append(("bearer", self.bearer))
        return refs


class McpVirtualServer(Strict):
    """A curated tool set served at `/mcp/{name}`."""

    tools: list[str] = Field(min_length=1)
    """Namespaced tool names or globs (`crm__lookup_*`, `files__*`)."""
    servers: list[str] = Field(default_factory=list)
    """Servers whose resources and prompts this virtual server also offers."""
    description: str = ""


class McpAllowLists(Strict):
    """Which tools (namespaced names or globs) an agent or a team may see and call. A caller
    whose agent (by name) or team (by name) has a list is held to it; both apply when both
    have one. Cedar policies (`call_tool`) apply on top."""

    agents: dict[str, list[str]] = Field(default_factory=dict)
    teams: dict[str, list[str]] = Field(default_factory=dict)


class McpRule(Strict):
    """A rule on tool calls, matched per agent, tool and arguments."""

    tools: list[str] = Field(min_length=1)
    """Namespaced tool names or globs."""
    action: Literal["approve", "deny"] = "approve"
    """`approve`: hold the call for a human (oversight queue); `deny`: refuse it."""
    agents: list[str] = Field(default_factory=list)
    """Agent names it applies to; empty: every caller."""
    arguments: dict[str, str] = Field(default_factory=dict)
    """Top-level argument name -> regular expression the argument (as text) must fully
    match for the rule to apply; empty: any arguments."""
    reason: str = ""

    @field_validator("arguments")
    @classmethod
    def _regexes(cls, value: dict[str, str]) -> dict[str, str]:
        for name, pattern in value.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"arguments.{name}: invalid regular expression: {exc}") from None
        return value


class McpRateLimit(Strict):
    """Limits per caller (its agent, else its key) and tool, for the tools matched."""

    tools: list[str] = Field(min_length=1)
    rpm: int | None = Field(default=None, ge=1)
    max_concurrent: int | None = Field(default=None, ge=1)


class McpConfig(Strict):
    servers: dict[str, McpServerConfig] = Field(default_factory=dict)
    virtual_servers: dict[str, McpVirtualServer] = Field(default_factory=dict)
    allow: McpAllowLists = Field(default_factory=McpAllowLists)
    rules: list[McpRule] = Field(default_factory=lambda: list[McpRule]())
    rate_limits: list[McpRateLimit] = Field(default_factory=lambda: list[McpRateLimit]())
    call_timeout: float = Field(default=30.0, gt=0)
    """Upper bound on one tool call upstream (seconds); the caller gets an error after it."""
    connect_timeout: float = Field(default=10.0, gt=0)
    """Upper bound on connecting to an upstream and listing its tools (seconds)."""
    refresh_interval: float = Field(default=60.0, gt=0)
    """Seconds between re-listings of each upstream's tools, which is how a changed tool
    definition (a rug pull) is noticed; a reconnect re-lists at once."""
    approval_timeout: float = Field(default=300.0, gt=0)
    """How long a held call (destructive tool, `approve` rule) waits for a reviewer."""
    max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    """Largest JSON-RPC request body accepted on `/mcp` (bytes)."""
    max_reply_bytes: int = Field(default=32 * 1024 * 1024, gt=0)
    """Largest reply read from a streamable HTTP upstream on a tool call (bytes, decoded:
    a JSON body, or one event of a stream); a larger one fails the call."""

    @field_validator("servers")
    @classmethod
    def _server_names(cls, value: dict[str, McpServerConfig]) -> dict[str, McpServerConfig]:
        for name in value:
            _server_name(name)
        return value

    @field_validator("virtual_servers")
    @classmethod
    def _virtual_names(cls, value: dict[str, McpVirtualServer]) -> dict[str, McpVirtualServer]:
        for name in value:
            _server_name(name)
        return value

    def secret_refs(self) -> list[tuple[str, str]]:
        return [
            (f"servers.{name}.{where}", ref)
            for name, server in self.servers.items()
            for where, ref in server.secret_refs()
        ]

