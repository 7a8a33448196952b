"""The MCP gateway's admin API, under `/admin/mcp` (bearer: the admin key).

    GET    /mcp/servers                       servers, with approved/pending tool counts
    POST   /mcp/servers                       register a streamable HTTP server (quarantined)
    GET    /mcp/servers/{name}                a server: its tool definitions and, live, what
                                              this gateway sees (connected, last error, tools)
    POST   /mcp/servers/{name}/approve        approve it and its pending tools ({"tools": [...]}
                                              approves only those)
    POST   /mcp/servers/{name}/quarantine     back to quarantine
    POST   /mcp/servers/{name}/refresh        re-list its tools now
    DELETE /mcp/servers/{name}                forget an admin-registered server
    GET    /mcp/tools?server=&status=         tool definitions (pending, approved)
    GET    /mcp/tools/{server__tool}          every definition seen of one tool
    POST   /mcp/tools/{server__tool}/approve  approve its pending definition ({"id": ...} one)
    POST   /mcp/tools/{server__tool}/reject   reject it
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query
from pydantic import BaseModel, ConfigDict, Field

from lockgate.errors import LockgateError
from lockgate.mcp.control import server_out

__all__ = ["include_mcp_routes"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerIn(_Body):
    name: str = Field(min_length=1, max_length=64)
    url: str = Field(min_length=1, max_length=2000)
    headers: dict[str, str] = Field(default_factory=dict)
    description: str = Field(default="", max_length=2000)


class ApproveServerIn(_Body):
    tools: list[str] | None = None


class DecideToolIn(_Body):
    id: str | None = None


def include_mcp_routes(app: FastAPI, require_admin: Callable[..., str], service: Callable[[], Any] | None) -> None:
    """`service()` returns the gateway's `McpHost` (`lockgate.mcp.host`): `control` works
    on the database alone; registering a server starts the MCP service (and so imports
    the `mcp` SDK) if it was not running. Without a getter, no routes."""
    if service is None:
        return
    _server_routes(app, require_admin, service)
    _tool_routes(app, require_admin, service)


def _server_routes(app: FastAPI, require_admin: Callable[..., str], service: Callable[[], Any]) -> None:
    def control() -> Any:
        return service().control

    @app.get("/mcp/servers")
    async def list_servers(_: str = Depends(require_admin)) -> list[dict[str, Any]]:
        return await control().servers()

    @app.post("/mcp/servers", status_code=201)
    async def register_server(body: ServerIn, _: str = Depends(require_admin)) -> dict[str, Any]:
        record = await control().register_server(
            body.name, url=body.url, headers=body.headers, description=body.description
        )
        await service().ensure()  # the first server: the MCP gateway starts now
        return server_out(record)

    @app.get("/mcp/servers/{name}")
    async def show_server(name: str, _: str = Depends(require_admin)) -> dict[str, Any]:
        shown = await control().server(name)
        return shown | service().live(shown["name"])

    @app.post("/mcp/servers/{name}/approve")
    async def approve_server(
        name: str, body: ApproveServerIn | None = None, actor: str = Depends(require_admin)
    ) -> dict[str, Any]:
        return await control().approve_server(name, actor=actor, tools=body.tools if body else None)

    @app.post("/mcp/servers/{name}/quarantine")
    async def quarantine_server(name: str, actor: str = Depends(require_admin)) -> dict[str, Any]:
        return server_out(await control().quarantine_server(name, actor=actor))

    @app.post("/mcp/servers/{name}/refresh")
    async def refresh_server(name: str, _: str = Depends(require_admin)) -> dict[str, Any]:
        record = await control().store.get_mcp_server(name)
        svc = await service().ensure()
        upstream = svc.registry.upstreams.get(record.name)
        if upstream is not None:
            with contextlib.suppress(LockgateError):  # the error shows in `live`
                await upstream.refresh()
        return server_out(record) | svc.live(record.name)

    @app.delete("/mcp/servers/{name}")
    async def delete_server(name: str, _: str = Depends(require_admin)) -> dict[str, Any]:
        return server_out(await control().delete_server(name))



def _tool_routes(app: FastAPI, require_admin: Callable[..., str], service: Callable[[], Any]) -> None:
    def control() -> Any:
        return service().control

    @app.get("/mcp/tools")
    async def list_tools(
        status: Annotated[list[str] | None, Query()] = None, server: str | None = None,
        _: str = Depends(require_admin),
    ) -> list[dict[str, Any]]:
        return await control().tools(server=server, status=status)

    @app.get("/mcp/tools/{name}")
    async def show_tool(name: str, _: str = Depends(require_admin)) -> dict[str, Any]:
        return await control().tool(name)

    @app.post("/mcp/tools/{name}/approve")
    async def approve_tool(
        name: str, body: DecideToolIn | None = None, actor: str = Depends(require_admin)
    ) -> list[dict[str, Any]]:
        return await control().decide_tool(name, approve=True, actor=actor, pin_id=body.id if body else None)

    @app.post("/mcp/tools/{name}/reject")
    async def reject_tool(
        name: str, body: DecideToolIn | None = None, actor: str = Depends(require_admin)
    ) -> list[dict[str, Any]]:
        return await control().decide_tool(name, approve=False, actor=actor, pin_id=body.id if body else None)
