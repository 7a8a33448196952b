"""Names, pins, config rules and error mapping of the MCP gateway (pure functions)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lockgate.access.state import AccessState
from lockgate.config.mcp import McpConfig
from lockgate.core.context import Principal
from lockgate.errors import (
    InvalidRequest,
    LockgateError,
    PermissionDenied,
    RateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from lockgate.mcp.catalog import Globs, ToolDef, namespaced, pin_digest, split_name
from lockgate.mcp.errors import ToolBlocked, UnknownTool, to_mcp_error
from lockgate.mcp.rules import McpRules


def test_namespacing_never_collides() -> None:
    assert namespaced("crm", "lookup") == "crm__lookup"
    assert split_name("crm__lookup__v2") == ("crm", "lookup__v2")  # server names never hold "_"
    assert split_name("lookup") is None and split_name("__x") is None and split_name("crm__") is None


def test_pins_cover_meaning_not_spelling() -> None:
    tool = {"name": "t", "description": "d", "inputSchema": {"type": "object", "properties": {"a": {"type": "integer"}}},
            "annotations": {"destructiveHint": True}, "title": "ignored"}
    reordered = {"annotations": {"destructiveHint": True}, "inputSchema": {"properties": {"a": {"type": "integer"}},
                 "type": "object"}, "description": "d", "name": "t", "title": "other title"}
    assert pin_digest(tool) == pin_digest(reordered)
    assert pin_digest(tool) != pin_digest({**tool, "description": "d!"})
    assert pin_digest(tool) != pin_digest({**tool, "annotations": {"destructiveHint": False}})
    assert ToolDef.of("crm", tool).destructive and not ToolDef.of("crm", {"name": "x"}).destructive


def test_globs() -> None:
    globs = Globs(["crm__*", "files__read_file"])
    assert globs.match("crm__anything") and globs.match("files__read_file")
    assert not globs.match("files__read_file2") and not Globs([]).match("x")


def test_config_refuses_ambiguous_servers() -> None:
    with pytest.raises(ValidationError, match="no '_'"):
        McpConfig.model_validate({"servers": {"my_crm": {"url": "http://x/mcp"}}})
    with pytest.raises(ValidationError, match="exactly one"):
        McpConfig.model_validate({"servers": {"crm": {"url": "http://x/mcp", "command": "python"}}})
    with pytest.raises(ValidationError, match="never write the secret"):
        McpConfig.model_validate({"servers": {"crm": {"url": "http://x/mcp", "bearer": "sk-live"}}})
    with pytest.raises(ValidationError, match="headers and bearer"):
        McpConfig.model_validate({"servers": {"f": {"command": "python", "headers": {"a": "b"}}}})
    config = McpConfig.model_validate({"servers": {
        "crm": {"url": "http://x/mcp", "bearer": "env::T", "headers": {"X-Tenant": "acme", "X-Key": "env::K"}},
        "files": {"command": "python", "env": {"TOKEN": "file::/run/t", "MODE": "ro"}},
    }})
    assert sorted(config.secret_refs()) == [
        ("servers.crm.bearer", "env::T"), ("servers.crm.headers.X-Key", "env::K"),
        ("servers.files.env.TOKEN", "file::/run/t"),
    ]


def _principal(agent: str | None = None, team: str | None = None) -> Principal:
    return Principal("k1", "key", label="lg-x", agent_id="a1" if agent else None, agent_name=agent, team_id=team)


def test_rules_allow_lists_and_limits() -> None:
    rules = McpRules(McpConfig.model_validate({
        "allow": {"agents": {"bot": ["crm__*"]}},
        "rules": [
            {"tools": ["crm__export"], "action": "approve", "reason": "review"},
            {"tools": ["crm__export"], "action": "deny", "arguments": {"limit": "[0-9]{3,}"}, "reason": "bulk"},
            {"tools": ["crm__*"], "agents": ["other"], "action": "deny"},
        ],
        "rate_limits": [{"tools": ["crm__*"], "rpm": 10}, {"tools": ["crm__export"], "rpm": 2, "max_concurrent": 1}],
    }))
    state = AccessState()
    assert rules.allow_listed(_principal("bot"), state, "crm__lookup") is None
    assert "allow-list of agent 'bot'" in (rules.allow_listed(_principal("bot"), state, "files__read") or "")
    assert rules.allow_listed(_principal(), state, "files__read") is None
    export = rules.rule_for(_principal("bot"), "crm__export", {"limit": 500})
    assert export is not None and export.action == "deny"
    small = rules.rule_for(_principal("bot"), "crm__export", {"limit": 5})
    assert small is not None and small.action == "approve"
    assert rules.rule_for(_principal("bot"), "crm__lookup", {}) is None
    other = rules.rule_for(_principal("other"), "crm__lookup", {})
    assert other is not None and other.action == "deny"
    limits = rules.limits_for("crm__export")
    assert limits is not None and (limits.rpm, limits.max_concurrent) == (2, 1)
    assert rules.limits_for("files__x") is None


@pytest.mark.parametrize(("error", "code"), [
    (InvalidRequest("bad"), -32602), (UnknownTool("nope"), -32602), (PermissionDenied("no"), -32003),
    (ToolBlocked("changed", code="tool_changed"), -32003), (RateLimited("slow down", retry_after=3), -32029),
    (UpstreamTimeout("late"), -32001), (UpstreamUnavailable("down"), -32002),
])
def test_errors_map_to_jsonrpc_codes(error: LockgateError, code: int) -> None:
    mapped = to_mcp_error(error, "rid-1")
    assert mapped.code == code and mapped.data["request_id"] == "rid-1" and mapped.data["code"] == error.code
