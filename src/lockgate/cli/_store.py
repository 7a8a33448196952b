"""What the CLI commands that change the control plane share: the configured database,
opened with the audit ledger beside it (so a change made here is a ledger event, as
one made through the admin API is), closed again at the end."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING

from lockgate.config.loader import LoadedConfig

if TYPE_CHECKING:
    from lockgate.audit.ledger import Ledger
    from lockgate.store.store import Store

__all__ = ["opened"]


@contextlib.asynccontextmanager
async def opened(loaded: LoadedConfig) -> AsyncGenerator[tuple[Store, Ledger | None]]:
    """The store, and the ledger when `[audit] enabled` (started; flushed at the end)."""
    from lockgate.audit.setup import open_ledger
    from lockgate.store.store import Store

    store = await Store.open(loaded.config.gateway.database)
    ledger = open_ledger(loaded, store) if loaded.config.audit.enabled else None
    try:
        if ledger is not None:
            await ledger.start()
        yield store, ledger
    finally:
        if ledger is not None:
            await ledger.aclose()
        await store.aclose()
