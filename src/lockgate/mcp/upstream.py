"""One upstream MCP server: a connection held open with the `mcp` SDK's `Client`, over
streamable HTTP (`url`) or stdio (a `command` lockgate launches).

The connection lives in a task of its own (the SDK's task groups must be entered and
left by one task); calls from any request share it. It opens on first use and again
after it breaks (a crashed stdio process, a lost HTTP server), and every open re-lists
the tools, so a restart that changed a tool is noticed at once. Credentials are lockgate's:
the headers and environment come from the config's secrets; nothing of the agent's
request (its Authorization above all) reaches the upstream.

Every operation is bounded: connecting by `connect_timeout`, a call by its timeout. An
upstream that hangs or dies costs the caller at most that long, and the error says which.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import CONNECTION_CLOSED, REQUEST_TIMEOUT, CallToolResult
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from lockgate.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from lockgate.mcp.catalog import ToolDef
from lockgate.mcp.http1 import Http1Pool, ReplyTooLarge
from lockgate.mcp.models import McpServerRecord

__all__ = ["Upstream", "UpstreamSettings"]

_log = logging.getLogger("lockgate.mcp")
_PAGE_CAP = 100
_POST_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    """How to reach one server: its address and resolved credentials, and its bounds."""

    record: McpServerRecord
    headers: Mapping[str, str]  # resolved values (secrets included)
    env: Mapping[str, str]
    cwd: str | None
    call_timeout: float
    connect_timeout: float
    max_reply_bytes: int = 32 * 1024 * 1024


class Upstream:
    def __init__(self, settings: UpstreamSettings, *, on_tools: Callable[[Upstream], Awaitable[None]]) -> None:
        self.settings = settings
        url = settings.record.url
        self._pool = (
            Http1Pool(url, max_reply_bytes=settings.max_reply_bytes)
            if settings.record.transport == "http" and url and Http1Pool.supports(url)
            else None
        )
        self._ids = 0
        self.name = settings.record.name
        self.tools: dict[str, ToolDef] = {}
        self.listed = False
        self.error: str | None = None  # the last connection failure, for `servers show`
        self._on_tools = on_tools
        self._client: Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        return self._client is not None and self._task is not None and not self._task.done()

    # --- connection ---------------------------------------------------------------

    def _transport(self) -> tuple[Any, httpx2.AsyncClient | None]:
        record = self.settings.record
        if record.transport == "stdio":
            assert record.command is not None
            params = StdioServerParameters(
                command=record.command, args=list(record.args), env=dict(self.settings.env) or None,
                cwd=self.settings.cwd,
            )
            return params, None
        assert record.url is not None
        http = httpx2.AsyncClient(
            headers=dict(self.settings.headers),
            timeout=httpx2.Timeout(self.settings.connect_timeout, read=self.settings.call_timeout + 5),
        )
        return streamable_http_client(record.url, http_client=http), http

    async def _run(self, ready: asyncio.Future[Client]) -> None:
        target, http = self._transport()
        try:
            async with Client(target, cache=None) as client:
                self._client = client
                ready.set_result(client)
                await self._stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else UpstreamUnavailable("cancelled"))
            elif not isinstance(exc, asyncio.CancelledError):
                _log.warning("MCP upstream %s disconnected: %s", self.name, _describe(exc))
        finally:
            self._client = None
            if http is not None:
                with contextlib.suppress(Exception):
                    await http.aclose()

    async def client(self) -> Client:
        """The open connection; opens one (and re-lists the tools) if there is none."""
        client = self._client
        if client is not None and self.connected:
            return client
        async with self._lock:
            if self._client is not None and self.connected:
                return self._client
            await self._drop()
            loop = asyncio.get_running_loop()
            ready: asyncio.Future[Client] = loop.create_future()
            self._stop = asyncio.Event()
            self._task = loop.create_task(self._run(ready), name=f"lockgate-mcp-{self.name}")
            try:
                async with asyncio.timeout(self.settings.connect_timeout):
                    client = await asyncio.shield(ready)
                    await self._list_tools(client)
            except TimeoutError:
                await self._drop()
                self.error = f"connecting timed out after {self.settings.connect_timeout:g}s"
                raise UpstreamTimeout(f"MCP server '{self.name}': {self.error}.") from None
            except Exception as exc:
                await self._drop()
                self.error = _describe(exc)
                raise UpstreamUnavailable(f"MCP server '{self.name}' is unavailable: {self.error}.") from None
            self.error = None
        await self._on_tools(self)
        return client

    async def _drop(self) -> None:
        task, self._task = self._task, None
        self._stop.set()
        if task is not None and not task.done():
            try:
                async with asyncio.timeout(2.0):
                    await asyncio.shield(task)
            except (TimeoutError, Exception):
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        self._client = None

    async def aclose(self) -> None:
        async with self._lock:
            await self._drop()
            if self._pool is not None:
                await self._pool.aclose()

    # --- listing ------------------------------------------------------------------

    async def _list_tools(self, client: Client) -> None:
        tools: dict[str, ToolDef] = {}
        cursor: str | None = None
        for _ in range(_PAGE_CAP):
            page = await client.list_tools(cursor=cursor)
            for tool in page.tools:
                wire = tool.model_dump(by_alias=True, mode="json", exclude_none=True)
                tools[tool.name] = ToolDef.of(self.name, wire)
            cursor = page.next_cursor
            if cursor is None:
                break
        self.tools = tools
        self.listed = True

    async def refresh(self) -> None:
        """Re-list the tools (connecting if need be); the registry is told either way."""
        client = await self.client()
        try:
            async with asyncio.timeout(self.settings.connect_timeout):
                await self._list_tools(client)
        except TimeoutError:
            raise UpstreamTimeout(f"MCP server '{self.name}' did not list its tools in time.") from None
        except MCPError as exc:
            self._broken(exc)
            raise UpstreamUnavailable(f"MCP server '{self.name}' failed to list its tools: {exc.message}") from None
        await self._on_tools(self)

    # --- calls --------------------------------------------------------------------

    async def call_tool(self, name: str, arguments: dict[str, Any], *, timeout: float | None = None) -> CallToolResult:
        limit = timeout or self.settings.call_timeout

        async def send(client: Client) -> CallToolResult:
            fast = await self._post_call(client, name, arguments)
            return fast if fast is not None else await client.call_tool(name, arguments)

        return await self._bounded(limit, f"tool '{name}'", send)

    async def _post_call(self, client: Client, name: str, arguments: dict[str, Any]) -> CallToolResult | None:
        """The hot path for a streamable HTTP upstream on the 2026-07-28 protocol, where
        every request stands alone: the SDK session stamps the request exactly as it would
        send it (`_meta`, `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`, `Mcp-Param-*`),
        and one POST on this upstream's keep-alive pool (`http1.Http1Pool`) carries it.
        Other upstreams (stdio, handshake-era sessions) go through the SDK session itself."""
        pool, session = self._pool, client.session
        if pool is None or session.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            return None
        data: dict[str, Any] = {"method": "tools/call", "params": {"name": name, "arguments": arguments}}
        opts: dict[str, Any] = {}
        session._stamp(data, opts)  # pyright: ignore[reportPrivateUsage, reportArgumentType]
        self._ids += 1
        request_id = self._ids
        headers = {**_POST_HEADERS, **self.settings.headers, **opts.get("headers", {})}
        body = json.dumps({"jsonrpc": "2.0", "id": request_id, **data}, separators=(",", ":")).encode("utf-8")
        try:
            response = await pool.post(headers, body, sse_id=request_id)
        except ReplyTooLarge:
            raise UpstreamError(
                f"MCP server '{self.name}' sent a reply over {self.settings.max_reply_bytes} bytes "
                "(mcp.max_reply_bytes)."
            ) from None
        kind = response.content_type
        message: Any
        if kind.startswith("application/json"):
            message = json.loads(response.body or b"")
        elif kind.startswith("text/event-stream") and response.status < 400:
            message = response.message
        else:
            refused = " (it refused lockgate's credentials)" if response.status in (401, 403) else ""
            raise UpstreamError(f"MCP server '{self.name}' answered HTTP {response.status}{refused}.")
        if not isinstance(message, dict):
            raise UpstreamError(f"MCP server '{self.name}' sent a malformed reply.")
        reply = cast("dict[str, Any]", message)
        if "error" in reply:
            raw: Any = reply["error"]
            error = cast("dict[str, Any]", raw) if isinstance(raw, dict) else {}
            raise MCPError(int(error.get("code", -32603)), str(error.get("message", "error")), error.get("data"))
        return CallToolResult.model_validate(reply.get("result"), by_name=False)

    async def request(self, what: str, send: Callable[[Client], Awaitable[T]]) -> T:
        """Any other request (resources, prompts), under the call timeout."""
        return await self._bounded(self.settings.call_timeout, what, send)

    async def _bounded(self, limit: float, what: str, send: Callable[[Client], Awaitable[T]]) -> T:
        client = await self.client()  # bounded by connect_timeout
        try:
            async with asyncio.timeout(limit):  # a third of anyio.fail_after's cost per call
                return await send(client)
        except TimeoutError:
            raise UpstreamTimeout(
                f"MCP server '{self.name}' did not answer {what} within {limit:g}s."
            ) from None
        except MCPError as exc:
            if exc.code == CONNECTION_CLOSED:
                self._broken(exc)
                raise UpstreamUnavailable(
                    f"MCP server '{self.name}' closed the connection during {what}."
                ) from None
            if exc.code == REQUEST_TIMEOUT:
                raise UpstreamTimeout(f"MCP server '{self.name}' did not answer {what} in time.") from None
            raise
        except (UpstreamError, asyncio.CancelledError):
            raise
        except Exception as exc:
            self._broken(exc)
            raise UpstreamUnavailable(f"MCP server '{self.name}' failed during {what}: {_describe(exc)}") from None

    def _broken(self, exc: BaseException) -> None:
        self.error = _describe(exc)
        self._stop.set()


def _describe(exc: BaseException) -> str:
    inner: Any = getattr(exc, "exceptions", None)
    if isinstance(inner, tuple) and inner:
        return "; ".join(_describe(e) for e in cast("tuple[BaseException, ...]", inner))
    name: str = type(exc).__name__
    text = str(exc).strip()
    return f"{name}: {text}" if text else name

