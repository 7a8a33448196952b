"""The `[mcp]` config's per-caller rules, compiled once: allow-lists per agent and team,
virtual servers, approval and deny rules on (agent, tool, arguments), and per-tool rate
limits. Pure functions of the config and the caller: no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from lockgate.access.models import Limits
from lockgate.access.state import AccessState
from lockgate.config.mcp import McpConfig, McpRule
from lockgate.core.context import Principal
from lockgate.mcp.catalog import Globs

__all__ = ["CompiledRule", "McpRules", "VirtualServer"]


@dataclass(frozen=True, slots=True)
class VirtualServer:
    name: str
    tools: Globs
    servers: frozenset[str]
    description: str


@dataclass(frozen=True, slots=True)
class CompiledRule:
    rule: McpRule
    tools: Globs
    agents: frozenset[str]
    arguments: tuple[tuple[str, re.Pattern[str]], ...]

    def applies(self, agent: str | None, tool: str, arguments: dict[str, Any]) -> bool:
        if self.agents and agent not in self.agents:
            return False
        if not self.tools.match(tool):
            return False
        for name, pattern in self.arguments:
            if name not in arguments:
                return False
            value = arguments[name]
            text = value if isinstance(value, str) else _text(value)
            if pattern.fullmatch(text) is None:
                return False
        return True


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class McpRules:
    def __init__(self, config: McpConfig) -> None:
        allow = config.allow
        self._agents = {name: Globs(tools) for name, tools in allow.agents.items()}
        self._teams = {name: Globs(tools) for name, tools in allow.teams.items()}
        self.virtual = {
            name: VirtualServer(name, Globs(v.tools), frozenset(v.servers), v.description)
            for name, v in config.virtual_servers.items()
        }
        self._rules = [
            CompiledRule(
                r, Globs(r.tools), frozenset(r.agents),
                tuple((k, re.compile(v)) for k, v in r.arguments.items()),
            )
            for r in config.rules
        ]
        self._limits = [(Globs(r.tools), r.rpm, r.max_concurrent) for r in config.rate_limits]

    def allow_listed(self, principal: Principal, state: AccessState, name: str) -> str | None:
        """None when the allow-lists let the caller use `name`, else why not."""
        if principal.is_operator and principal.agent_name is None:
            return None
        if principal.agent_name is not None:
            globs = self._agents.get(principal.agent_name)
            if globs is not None and not globs.match(name):
                return f"not on the allow-list of agent '{principal.agent_name}'"
        team = state.teams.get(principal.team_id) if principal.team_id else None
        if team is not None:
            globs = self._teams.get(team.name)
            if globs is not None and not globs.match(name):
                return f"not on the allow-list of team '{team.name}'"
        return None

    def rule_for(self, principal: Principal, name: str, arguments: dict[str, Any]) -> McpRule | None:
        """The rule deciding this call: the first matching `deny`, else the first `approve`."""
        found: McpRule | None = None
        for compiled in self._rules:
            if compiled.applies(principal.agent_name, name, arguments):
                if compiled.rule.action == "deny":
                    return compiled.rule
                found = found or compiled.rule
        return found

    def limits_for(self, name: str) -> Limits | None:
        """The tightest limits of the rate-limit entries matching `name`."""
        rpm: int | None = None
        concurrent: int | None = None
        for globs, r, c in self._limits:
            if globs.match(name):
                rpm = r if rpm is None or (r is not None and r < rpm) else rpm
                concurrent = c if concurrent is None or (c is not None and c < concurrent) else concurrent
        if rpm is None and concurrent is None:
            return None
        return Limits(rpm=rpm, max_concurrent=concurrent)
