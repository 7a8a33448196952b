"""The gateway's in-memory prompt registry: compiled versions, labels and experiments.

The data plane reads only `RegistryView`, an immutable snapshot; no request touches
the database. Every registry change bumps the control plane's `state_version` (in the
same transaction), so the access `StateWatcher` that already polls that one row (or
hears Redis pub/sub) tells us; `PromptCache.on_state_change` then reloads in the
background and swaps a new view in whole. Versions are immutable, so a reload compiles
only the versions it has not seen. If the database is unreachable the last view keeps
serving and the reload is retried.

We reuse the access watcher rather than a version row of our own: one cheap poll per
gateway instead of two, and one pub/sub channel. The price is that an access change
(a new key) also reloads the registry, and a prompt change also reloads the access
snapshot; both are rare and small next to the requests they serve.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from lockgate.config.prompts import ExperimentConfig
from lockgate.errors import InvalidRequest, ModelNotFound, NotFound
from lockgate.prompts.models import Arm, Experiment
from lockgate.prompts.render import CompiledPrompt, compile_prompt, make_environment
from lockgate.prompts.spec import PromptSpec

if TYPE_CHECKING:
    from lockgate.store._prompts import RegistryRows

__all__ = ["PREFIX", "PromptCache", "RegistryView", "config_experiments", "parse_ref"]

PREFIX = "prompt:"
_log = logging.getLogger("lockgate.prompts")


def parse_ref(model: str) -> tuple[str, int | None, str | None]:
    """`prompt:NAME`, `prompt:NAME@LABEL`, `prompt:NAME@VERSION` -> (name, version, label).
    A bare name means the `production` label."""
    body = model[len(PREFIX):]
    name, sep, ref = body.partition("@")
    if not name or (sep and not ref):
        raise InvalidRequest(
            f"Invalid prompt reference {model!r}: use 'prompt:NAME@LABEL' or 'prompt:NAME@VERSION'.", param="model"
        )
    if not sep:
        return name, None, "production"
    if ref.isdigit():
        return name, int(ref), None
    return name, None, ref


@dataclass(frozen=True, slots=True)
class RegistryView:
    versions: dict[tuple[str, int], CompiledPrompt] = field(default_factory=lambda: {})
    labels: dict[tuple[str, str], int] = field(default_factory=lambda: {})
    latest: dict[str, int] = field(default_factory=lambda: {})
    by_prompt: dict[tuple[str, str], Experiment] = field(default_factory=lambda: {})
    by_model: dict[str, Experiment] = field(default_factory=lambda: {})
    experiments: dict[str, Experiment] = field(default_factory=lambda: {})

    def lookup(self, name: str, version: int | None, label: str | None) -> CompiledPrompt:
        if name not in self.latest:
            raise ModelNotFound(f"The prompt `{name}` does not exist.", param="model")
        if version is None:
            if label == "latest":
                version = self.latest[name]
            else:
                found = self.labels.get((name, label or "production"))
                if found is None:
                    raise NotFound(f"The prompt `{name}` has no label `{label}`.", param="model")
                version = found
        compiled = self.versions.get((name, version))
        if compiled is None:
            raise NotFound(f"The prompt `{name}` has no version {version}.", param="model")
        return compiled


def config_experiments(configs: dict[str, ExperimentConfig], *, loaded_at: datetime) -> list[Experiment]:
    """The `[experiments.NAME]` of the config file, always active."""
    return [
        Experiment(
            id=f"config:{name}", name=name, prompt=c.prompt, model=c.model, label=c.label, sticky=c.sticky,
            arms=tuple(Arm(name=a.name, weight=a.weight, version=a.version, model=a.model) for a in c.arms),
            status="active", created_at=loaded_at, created_by="config", source="config",
        )
        for name, c in configs.items()
    ]


class PromptCache:
    """Holds the current `RegistryView`; reloads it when the control plane changes."""

    def __init__(self, store: Any, *, static_experiments: Iterable[Experiment] = (), retry_after: float = 1.0) -> None:
        self._store = store
        self._static = list(static_experiments)
        self._retry_after = retry_after
        self._env = make_environment()
        self.view = self._build(None, {})
        self.healthy = True
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.reload()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="lockgate-prompts-reload")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def on_state_change(self, state: object) -> None:
        """A `StateWatcher` listener: the control plane moved; reload soon (not here)."""
        del state
        self._wake.set()

    async def reload(self) -> None:
        rows = await self._store.load_prompt_registry()
        self.view = self._build(rows, self.view.versions)

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.reload()
                self.healthy = True
            except Exception as exc:  # the boundary: keep serving the last view, retry
                if self.healthy:
                    _log.warning("prompt registry reload failed; serving the last one", extra={"error": type(exc).__name__})
                self.healthy = False
                await asyncio.sleep(self._retry_after)
                self._wake.set()

    def _build(self, rows: RegistryRows | None, known: dict[tuple[str, int], CompiledPrompt]) -> RegistryView:
        versions: dict[tuple[str, int], CompiledPrompt] = {}
        latest: dict[str, int] = {}
        labels: dict[tuple[str, str], int] = {}
        experiments = list(self._static)
        if rows is not None:
            for v in rows.versions:
                key = (v.prompt, v.version)
                compiled = known.get(key)
                if compiled is None or compiled.content_hash != v.content_hash:
                    try:
                        compiled = compile_prompt(self._env, v.prompt, v.version, v.content_hash, PromptSpec.model_validate(v.content))
                    except Exception as exc:  # a row this version cannot read: skip it, say so
                        _log.error("prompt version unreadable", extra={"prompt": v.prompt, "version": v.version, "error": str(exc)})
                        continue
                versions[key] = compiled
                latest[v.prompt] = max(latest.get(v.prompt, 0), v.version)
            labels = {(p, label): n for p, label, n in rows.labels}
            static_names = {e.name for e in self._static}
            experiments += [e for e in rows.experiments if e.name not in static_names]
        by_prompt: dict[tuple[str, str], Experiment] = {}
        by_model: dict[str, Experiment] = {}
        for e in experiments:  # config first: it wins a clash
            if e.prompt is not None:
                by_prompt.setdefault((e.prompt, e.label), e)
            elif e.model is not None:
                by_model.setdefault(e.model, e)
        return RegistryView(
            versions=versions, labels=labels, latest=latest, by_prompt=by_prompt, by_model=by_model,
            experiments={e.name: e for e in experiments},
        )
