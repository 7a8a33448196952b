"""Every table of every area on the one shared `MetaData`: import this, not `tables`,
when the whole schema is meant (the migration contract test, `create_all` in tools).
Each area keeps its tables in its own module (`tables_<area>.py`)."""

from __future__ import annotations

from lockgate.store import tables_audit, tables_evals, tables_mcp, tables_prompts
from lockgate.store.tables import metadata

__all__ = ["metadata"]

_AREAS = (tables_audit, tables_mcp, tables_prompts, tables_evals)
