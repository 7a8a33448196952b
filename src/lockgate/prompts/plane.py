"""Everything the prompt registry needs while the gateway runs, opened and closed as
one: the in-memory registry, the outcome recorder, the services and the resolve stage."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from lockgate.config.loader import LoadedConfig
from lockgate.core.context import RequestContext
from lockgate.prompts.experiments import ExperimentService
from lockgate.prompts.gate import PromotionGate, find_gatekeeper
from lockgate.prompts.recorder import OutcomeRecorder
from lockgate.prompts.registry import PromptCache, config_experiments
from lockgate.prompts.resolve import ResolveStage
from lockgate.prompts.service import PromptService

if TYPE_CHECKING:
    from lockgate.access.watcher import StateWatcher

__all__ = ["PromptPlane"]


class PromptPlane:
    def __init__(
        self,
        loaded: LoadedConfig,
        store: Any,
        *,
        meter: Callable[[RequestContext], Awaitable[None]] | None = None,
        gatekeeper: PromotionGate | Literal["find"] | None = "find",
        audit: Callable[[], Any] | None = None,
    ) -> None:
        from lockgate.access.services import Notifier

        config = loaded.config
        static = config_experiments(config.experiments, loaded_at=datetime.now(UTC))
        notifier = Notifier(config.gateway.redis)
        if gatekeeper == "find":  # the evaluations package's, when it is installed
            gatekeeper = find_gatekeeper(config=loaded, store=store, labels=store.get_prompt_labels)
        self.cache = PromptCache(store, static_experiments=static)
        self.recorder = OutcomeRecorder(
            store, interval=config.prompts.flush_interval, max_pending=config.prompts.max_pending
        )
        self.service = PromptService(store, notifier=notifier, gatekeeper=gatekeeper, audit=audit)
        self.experiments = ExperimentService(store, notifier=notifier, static=static, known_models=config.models)
        self.stage = ResolveStage(self.cache, self.recorder, meter=meter)

    def set_gatekeeper(self, gatekeeper: PromotionGate | None) -> None:
        """Wire (or replace) the quality gate promotions ask."""
        self.service.gatekeeper = gatekeeper

    async def start(self, watcher: StateWatcher) -> None:
        """Load the registry, then follow the control plane's changes."""
        watcher.listeners.append(self.cache.on_state_change)
        await self.cache.start()
        self.recorder.start()

    async def aclose(self) -> None:
        """Stop reloading and write the outcomes still pending (before the store closes)."""
        for close in (self.cache.aclose, self.recorder.aclose):
            with contextlib.suppress(Exception):
                await close()
