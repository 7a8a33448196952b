"""The MCP gateway: one governed MCP endpoint (`/mcp`, `/mcp/{virtual_server}`) in front
of any number of upstream MCP servers (docs/mcp.md).

    host.py         the routes and the lifespan hook, without the SDK: starts the service
                    when MCP is configured, registered or called
    service.py      the service (imports the `mcp` SDK)
    fastpath.py     tools/call without the SDK server's per-request machinery
    endpoint.py     the ASGI front (auth, body bound) and the SDK server's handlers
    calls.py        one governed tools/call, stage by stage
    passthrough.py  resources and prompts under the same rules
    registry.py     servers, live tools and pins in memory
    upstream.py     one upstream connection (streamable HTTP or stdio)
    catalog.py      `server__tool` names and tool pins (RFC 8785 + SHA-256)
    rules.py        allow-lists, virtual servers, rules, rate limits from `[mcp]`
    control.py      register/approve servers and tools (admin API, CLI)
    errors.py       lockgate errors as JSON-RPC errors
    models.py       the stored records
"""

__all__: list[str] = []
