"""Everything access control needs while the gateway runs, opened and closed as one:
the store, the state watcher, the policy engine, the limiter, the usage recorder, and
the pipeline stages built on them."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path

from lockgate.access.authorize import AuthorizeStage
from lockgate.access.identify import IdentifyStage
from lockgate.access.kill import KillStage
from lockgate.access.limit_stage import GrantCounter, LimitsStage
from lockgate.access.limits import Limiter, MemoryLimiter
from lockgate.access.policy import PolicyEngine
from lockgate.access.services import AccessService, Notifier
from lockgate.access.shadow import ShadowRecorder
from lockgate.access.state import AccessState
from lockgate.access.usage import UsageRecorder
from lockgate.access.watcher import StateWatcher
from lockgate.config.loader import LoadedConfig
from lockgate.core.context import RequestContext
from lockgate.errors import ConfigError
from lockgate.store.store import Store
from lockgate.usage.pricing import PriceTable

__all__ = ["AccessPlane", "load_policy", "policy_paths"]


def policy_paths(loaded: LoadedConfig) -> list[Path]:
    base = Path(loaded.source).parent if not loaded.source.startswith("<") else Path.cwd()
    return [p if p.is_absolute() else base / p for p in map(Path, loaded.config.access.policy_files)]


def load_policy(loaded: LoadedConfig) -> PolicyEngine:
    engine = PolicyEngine.load(policy_paths(loaded))
    problems = engine.validate()
    if problems:
        raise ConfigError("access.policy_files: invalid policies", problems)
    return engine


class AccessPlane:
    def __init__(self, loaded: LoadedConfig, store: Store, limiter: Limiter, policy: PolicyEngine) -> None:
        config = loaded.config
        self.config = config
        self.store = store
        self.limiter = limiter
        self.policy = policy
        self._limit_stages: list[LimitsStage] = []
        self.watcher = StateWatcher(store, interval=config.access.refresh_interval, redis_url=config.gateway.redis)
        self.shadows = ShadowRecorder()
        self.usage = UsageRecorder(store, self.shadows)
        self.grants = GrantCounter(config.gateway.redis)
        self.services = AccessService(
            store, config.access, notifier=Notifier(config.gateway.redis), known_models=config.models,
            known_providers=config.providers,
        )
        self.identify = IdentifyStage(
            loaded.secret(config.gateway.admin_key), state=self.state, config=config.access, shadows=self.shadows
        )
        self.kill = KillStage(self.state)
        self.authorize = AuthorizeStage(policy)
        self.watcher.listeners += [self.authorize.on_state_change, self.kill.on_state_change]

    @classmethod
    async def open(cls, loaded: LoadedConfig) -> AccessPlane:
        config = loaded.config
        policy = load_policy(loaded)
        store = await Store.open(config.gateway.database)
        limiter: Limiter
        if config.gateway.redis:
            from lockgate.access.limits_redis import RedisLimiter

            limiter = RedisLimiter(config.gateway.redis, fail_open=config.access.fail_open)
        else:
            limiter = MemoryLimiter()
        plane = cls(loaded, store, limiter, policy)
        try:
            await limiter.start()
            await plane.watcher.start()
            plane.usage.start()
        except BaseException:
            await plane.aclose()
            raise
        return plane

    def state(self) -> AccessState:
        return self.watcher.state

    def limits_stage(
        self, *, prices: PriceTable, first_route: Callable[[str], str | None],
        meter: Callable[[RequestContext], Awaitable[None]],
    ) -> LimitsStage:
        stage = LimitsStage(
            self.limiter, state=self.state, prices=prices, config=self.config.access,
            first_route=first_route, meter=meter, grants=self.grants,
        )
        self._limit_stages.append(stage)
        return stage

    async def aclose(self) -> None:
        for stage in self._limit_stages:
            with contextlib.suppress(Exception):
                await stage.drain()
        for close in (self.watcher.aclose, self.usage.aclose, self.limiter.aclose, self.grants.aclose, self.store.aclose):
            with contextlib.suppress(Exception):
                await close()
