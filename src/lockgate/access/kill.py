"""Kill switches: refuse new requests at once, and end streams already in flight.

A switch stops a key, user, team, agent, model, provider, MCP server (`mcp_server`,
target: the server name) or MCP tool (`tool`, target: `server__tool`), or everything
(`global`).
New requests are checked against the in-memory state at admission (and provider
switches when a route is chosen). Streams in flight are registered here; when the state
changes, each one whose principal, model or provider is now stopped has its relay task
cancelled and ends with an error event naming the switch and its reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from lockgate.access.models import KillSwitch
from lockgate.access.state import AccessState
from lockgate.core.context import Principal, RequestContext
from lockgate.errors import PermissionDenied
from lockgate.routing.router import Route

__all__ = ["KillStage", "KillSwitchEngaged", "tool_switch"]


class KillSwitchEngaged(PermissionDenied):
    code = "kill_switch_engaged"

    @classmethod
    def of(cls, switch: KillSwitch, state: AccessState | None = None) -> KillSwitchEngaged:
        what = "everything" if switch.scope == "global" else f"{switch.scope} {_name(switch, state)}"
        return cls(f"Stopped by a kill switch on {what}: {switch.reason}")


def _name(switch: KillSwitch, state: AccessState | None) -> str:
    """The readable name of a switch's target (switches store ids)."""
    if state is None:
        return switch.target
    target = switch.target
    if switch.scope == "agent" and (agent := state.agents_by_id.get(target)) is not None:
        return agent.name
    if switch.scope == "team" and (team := state.teams.get(target)) is not None:
        return team.name
    if switch.scope == "user" and (user := state.users.get(target)) is not None:
        return user.name
    if switch.scope == "key":
        for key in state.keys_by_hash.values():
            if key.id == target:
                return key.prefix
    return target


def _pairs(ctx: RequestContext, state: AccessState) -> list[tuple[str, str | None]]:
    pairs: list[tuple[str, str | None]] = [("model", ctx.model), ("provider", ctx.provider)]
    return pairs + _principal_pairs(ctx.principal, state)


def tool_switch(
    state: AccessState, principal: Principal | None, server: str, tool: str
) -> KillSwitch | None:
    """The switch that stops a call of MCP tool `tool` of `server`, if one is on: on the
    tool (target `server__tool` or `server/tool`), its server (`mcp_server`), the caller
    (key, agent, user, team, delegation) or everything."""
    if not state.kills:
        return None
    pairs: list[tuple[str, str | None]] = [
        ("mcp_server", server), ("tool", f"{server}__{tool}"), ("tool", f"{server}/{tool}"),
    ]
    return state.kill_for(pairs + _principal_pairs(principal, state))


def _principal_pairs(p: Principal | None, state: AccessState) -> list[tuple[str, str | None]]:
    pairs: list[tuple[str, str | None]] = []
    if p is not None:
        pairs += [
            ("key", p.id if p.kind == "key" else None),
            ("agent", p.agent_id),
            ("user", p.user_id),
            ("team", p.team_id),
        ]
        if p.kind == "grant":
            pairs.append(("agent", p.agent_id))
        for hop in p.delegation:
            kind, _, name = hop.partition(":")
            agent = state.agents_by_name.get(name) if kind == "agent" else None
            if agent is not None:
                pairs.append(("agent", agent.id))
    return pairs


class KillStage:
    name = "kill switch"

    def __init__(self, state: Callable[[], AccessState]) -> None:
        self._state = state
        self._streams: dict[int, RequestContext] = {}

    def check(self, ctx: RequestContext) -> None:
        state = self._state()
        switch = state.kill_for(_pairs(ctx, state))
        if switch is not None:
            raise KillSwitchEngaged.of(switch, state)

    async def admit(self, ctx: RequestContext) -> None:
        self.check(ctx)
        if ctx.stream:
            self._streams[id(ctx)] = ctx

    async def complete(self, ctx: RequestContext) -> None:
        self._streams.pop(id(ctx), None)

    def route_blocked(self, route: Route) -> KillSwitchEngaged | None:
        """The router skips routes whose provider is stopped."""
        state = self._state()
        switch = state.kill_for((("provider", route.provider_name),))
        return KillSwitchEngaged.of(switch, state) if switch is not None else None

    def on_state_change(self, state: AccessState) -> None:
        """Called by the state watcher after each refresh: end what is now stopped."""
        if not state.kills or not self._streams:
            return
        for ctx in list(self._streams.values()):
            switch = state.kill_for(_pairs(ctx, state))
            task: asyncio.Task[object] | None = ctx.attrs.get("stream_task")
            if switch is not None and "abort" not in ctx.attrs:
                ctx.attrs["abort"] = KillSwitchEngaged.of(switch, state)
                if task is not None:  # else the pipeline checks "abort" when the relay starts
                    task.cancel()
