"""MCP gateway: upstream servers, tool pins: the tables, on the shared `metadata` (see `tables.py` for the conventions)."""

from __future__ import annotations

__all__: list[str] = []
