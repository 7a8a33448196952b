"""Building the approval queue from the configuration (the gateway and the CLI share this)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp

from lockgate.config.loader import LoadedConfig
from lockgate.oversight.queue import Oversight
from lockgate.oversight.webhook import Webhook

if TYPE_CHECKING:
    from lockgate.audit.ledger import Ledger
    from lockgate.store import Store

__all__ = ["open_oversight"]


def open_oversight(
    loaded: LoadedConfig, store: Store, ledger: Ledger | None, session: aiohttp.ClientSession | None
) -> Oversight:
    config = loaded.config.approvals
    webhook = None
    if config.webhook_url and session is not None:
        webhook = Webhook(config.webhook_url, session=session, secret=loaded.secret(config.webhook_secret))
    return Oversight(store, config, audit=ledger, webhook=webhook)
