"""The prompt registry and experiments: versions, labels and their history, experiments,
request outcomes and scores.

Version, label and experiment changes are control-plane writes (they bump the state
version, so every gateway reloads its in-memory registry); outcomes and scores are
data, appended in batches without a bump.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, and_, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from lockgate.core.ids import uuid7
from lockgate.errors import Conflict, NotFound
from lockgate.prompts.models import (
    Arm,
    Experiment,
    LabelEvent,
    Outcome,
    PromptSummary,
    PromptVersion,
    Score,
)
from lockgate.store import _validate as check
from lockgate.store._base import StoreBase
from lockgate.store.tables_prompts import (
    experiment_outcomes,
    experiments,
    prompt_label_events,
    prompt_labels,
    prompt_versions,
    prompts,
    request_scores,
)

__all__ = ["PromptsMixin", "RegistryRows"]


@dataclass(frozen=True, slots=True)
class RegistryRows:
    """What a gateway holds in memory, read in one transaction."""

    versions: tuple[PromptVersion, ...]
    labels: tuple[tuple[str, str, int], ...]  # (prompt, label, version)
    experiments: tuple[Experiment, ...]  # the active ones


def _version_from(row: Row[Any], prompt: str) -> PromptVersion:
    return PromptVersion(
        id=row.id, prompt=prompt, version=row.version, content_hash=row.content_hash, content=dict(row.content),
        author=row.author, message=row.message, created_at=row.created_at,
    )


def _event_from(row: Row[Any], prompt: str) -> LabelEvent:
    return LabelEvent(
        id=row.id, prompt=prompt, label=row.label, version=row.version, previous_version=row.previous_version,
        actor=row.actor, at=row.created_at, reason=row.reason, gate=dict(row.gate) if row.gate else None,
    )


def _experiment_from(row: Row[Any]) -> Experiment:
    arms = tuple(
        Arm(name=a["name"], weight=float(a["weight"]), version=a.get("version"), model=a.get("model")) for a in row.arms
    )
    return Experiment(
        id=row.id, name=row.name, prompt=row.prompt, model=row.model, label=row.label, sticky=row.sticky, arms=arms,
        status=row.status, created_at=row.created_at, created_by=row.created_by, stopped_at=row.stopped_at,
    )


class PromptsMixin(StoreBase):
    # --- versions ------------------------------------------------------------------

    async def create_prompt_version(
        self, name: str, *, content: dict[str, Any], content_hash: str, author: str, message: str
    ) -> tuple[PromptVersion, bool]:
        """A new version of `name` (the prompt is created with its first version), unless
        the newest version has the same content hash: then that one, and False."""
        name = check.text(name, "name")
        author = check.text(author, "author")
        message = (message or "").strip()[: check.MAX_TEXT]
        now = self._now()
        v = prompt_versions.c
        async with self._write() as conn:
            row = (await conn.execute(select(prompts).where(prompts.c.name == name))).first()
            latest: Row[Any] | None = None
            if row is None:
                prompt_id = uuid7()
                await conn.execute(prompts.insert().values(id=prompt_id, name=name, created_at=now, created_by=author))
            else:
                prompt_id = row.id
                latest = (
                    await conn.execute(select(prompt_versions).where(v.prompt_id == prompt_id).order_by(v.version.desc()).limit(1))
                ).first()
                if latest is not None and latest.content_hash == content_hash:
                    return _version_from(latest, name), False
            version = PromptVersion(
                id=uuid7(), prompt=name, version=(latest.version if latest is not None else 0) + 1,
                content_hash=content_hash, content=content, author=author, message=message, created_at=now,
            )
            try:
                await conn.execute(
                    prompt_versions.insert().values(
                        id=version.id, prompt_id=prompt_id, version=version.version, content_hash=content_hash,
                        content=content, author=author, message=message, created_at=now,
                    )
                )
            except IntegrityError:
                raise Conflict(f"Prompt {name!r} changed at the same time; try again.") from None
            await self._bump(conn)
        return version, True

    async def get_prompt_version(self, name: str, *, version: int | None = None, label: str | None = None) -> PromptVersion:
        """By number, by label, or (neither, or the label `latest`) the newest."""
        v = prompt_versions.c
        async with self._read() as conn:
            prompt_id = await self._prompt_id(conn, name)
            if label is not None and label != "latest":
                version = await conn.scalar(
                    select(prompt_labels.c.version).where(prompt_labels.c.prompt_id == prompt_id, prompt_labels.c.label == label)
                )
                if version is None:
                    raise NotFound(f"Prompt {name!r} has no label {label!r}.")
            query = select(prompt_versions).where(v.prompt_id == prompt_id)
            query = query.where(v.version == version) if version is not None else query.order_by(v.version.desc()).limit(1)
            row = (await conn.execute(query)).first()
            if row is None:
                raise NotFound(f"Prompt {name!r} has no version {version}.")
            return _version_from(row, name)

    async def list_prompt_versions(self, name: str) -> list[PromptVersion]:
        """Oldest first."""
        async with self._read() as conn:
            prompt_id = await self._prompt_id(conn, name)
            rows = await conn.execute(
                select(prompt_versions).where(prompt_versions.c.prompt_id == prompt_id).order_by(prompt_versions.c.version)
            )
            return [_version_from(r, name) for r in rows]

    async def list_prompts(self) -> list[PromptSummary]:
        """By name, with the newest version number and the labels."""
        v = prompt_versions.c
        latest = (
            select(v.prompt_id, func.max(v.version).label("latest"), func.max(v.created_at).label("updated_at"))
            .group_by(v.prompt_id)
            .subquery()
        )
        async with self._read() as conn:
            rows = (
                await conn.execute(
                    select(prompts, latest.c.latest, latest.c.updated_at)
                    .join(latest, latest.c.prompt_id == prompts.c.id)
                    .order_by(prompts.c.name)
                )
            ).all()
            labels: dict[str, dict[str, int]] = {}
            for lr in await conn.execute(select(prompt_labels).order_by(prompt_labels.c.label)):
                labels.setdefault(lr.prompt_id, {})[lr.label] = lr.version
        return [
            PromptSummary(name=r.name, latest=r.latest, labels=labels.get(r.id, {}), created_at=r.created_at,
                          updated_at=r.updated_at)
            for r in rows
        ]

    async def get_prompt_labels(self, name: str) -> dict[str, int]:
        async with self._read() as conn:
            prompt_id = await self._prompt_id(conn, name)
            rows = await conn.execute(select(prompt_labels).where(prompt_labels.c.prompt_id == prompt_id))
            return {r.label: r.version for r in rows}

    # --- labels --------------------------------------------------------------------

    async def set_prompt_label(
        self, name: str, label: str, version: int, *, actor: str, reason: str | None = None,
        gate: dict[str, Any] | None = None,
    ) -> LabelEvent:
        """Point `label` at `version` and append the move to the label's history."""
        label = check.text(label, "label")
        actor = check.text(actor, "actor")
        now = self._now()
        lc = prompt_labels.c
        async with self._write() as conn:
            prompt_id = await self._prompt_id(conn, name)
            exists = await conn.scalar(
                select(prompt_versions.c.id).where(prompt_versions.c.prompt_id == prompt_id, prompt_versions.c.version == version)
            )
            if exists is None:
                raise NotFound(f"Prompt {name!r} has no version {version}.")
            previous = await conn.scalar(select(lc.version).where(lc.prompt_id == prompt_id, lc.label == label))
            if previous is None:
                await conn.execute(
                    prompt_labels.insert().values(prompt_id=prompt_id, label=label, version=version, updated_at=now, updated_by=actor)
                )
            else:
                await conn.execute(
                    update(prompt_labels).where(lc.prompt_id == prompt_id, lc.label == label)
                    .values(version=version, updated_at=now, updated_by=actor)
                )
            event = await self._label_event(conn, prompt_id, name, label, version, previous, actor, reason, gate)
            await self._bump(conn)
        return event

    async def remove_prompt_label(self, name: str, label: str, *, actor: str, reason: str | None = None) -> LabelEvent:
        actor = check.text(actor, "actor")
        lc = prompt_labels.c
        async with self._write() as conn:
            prompt_id = await self._prompt_id(conn, name)
            previous = await conn.scalar(select(lc.version).where(lc.prompt_id == prompt_id, lc.label == label))
            if previous is None:
                raise NotFound(f"Prompt {name!r} has no label {label!r}.")
            await conn.execute(prompt_labels.delete().where(lc.prompt_id == prompt_id, lc.label == label))
            event = await self._label_event(conn, prompt_id, name, label, None, previous, actor, reason, None)
            await self._bump(conn)
        return event

    async def prompt_label_history(self, name: str, *, label: str | None = None) -> list[LabelEvent]:
        """Newest first."""
        e = prompt_label_events.c
        async with self._read() as conn:
            prompt_id = await self._prompt_id(conn, name)
            query = select(prompt_label_events).where(e.prompt_id == prompt_id)
            if label is not None:
                query = query.where(e.label == label)
            rows = await conn.execute(query.order_by(e.created_at.desc(), e.id.desc()))
            return [_event_from(r, name) for r in rows]

    async def _label_event(
        self, conn: AsyncConnection, prompt_id: str, name: str, label: str, version: int | None,
        previous: int | None, actor: str, reason: str | None, gate: dict[str, Any] | None,
    ) -> LabelEvent:
        event = LabelEvent(
            id=uuid7(), prompt=name, label=label, version=version, previous_version=previous, actor=actor,
            at=self._now(), reason=check.text(reason, "reason", max_len=check.MAX_TEXT) if reason else None, gate=gate,
        )
        await conn.execute(
            prompt_label_events.insert().values(
                id=event.id, prompt_id=prompt_id, label=label, version=version, previous_version=previous,
                actor=actor, reason=event.reason, gate=gate, created_at=event.at,
            )
        )
        return event

    async def _prompt_id(self, conn: AsyncConnection, name: str) -> str:
        prompt_id = await conn.scalar(select(prompts.c.id).where(prompts.c.name == name))
        if prompt_id is None:
            raise NotFound(f"No prompt named {name!r}.")
        return str(prompt_id)

    # --- the gateway's snapshot ------------------------------------------------------

    async def load_prompt_registry(self) -> RegistryRows:
        async with self._read() as conn:
            names = {r.id: r.name for r in await conn.execute(select(prompts.c.id, prompts.c.name))}
            version_rows = await conn.execute(select(prompt_versions).order_by(prompt_versions.c.id))
            versions = tuple(_version_from(r, names[r.prompt_id]) for r in version_rows)
            labels = tuple(
                (names[r.prompt_id], r.label, r.version) for r in await conn.execute(select(prompt_labels))
            )
            exp_rows = await conn.execute(select(experiments).where(experiments.c.status == "active").order_by(experiments.c.name))
            return RegistryRows(versions=versions, labels=labels, experiments=tuple(map(_experiment_from, exp_rows)))

    # --- experiments ---------------------------------------------------------------

    async def create_experiment(self, experiment: Experiment) -> Experiment:
        """Store an active experiment; Conflict if the name is taken or its target
        (prompt and label, or model) already has an active experiment."""
        x = experiments.c
        async with self._write() as conn:
            same = and_(x.status == "active", x.label == experiment.label, x.prompt == experiment.prompt) if experiment.prompt \
                else and_(x.status == "active", x.model == experiment.model)
            clash = await conn.scalar(select(x.name).where(same))
            if clash is not None:
                raise Conflict(f"Experiment {clash!r} already splits {experiment.target}; stop it first.")
            try:
                await conn.execute(
                    experiments.insert().values(
                        id=experiment.id, name=experiment.name, prompt=experiment.prompt, model=experiment.model,
                        label=experiment.label, sticky=experiment.sticky,
                        arms=[{"name": a.name, "weight": a.weight, "version": a.version, "model": a.model} for a in experiment.arms],
                        status=experiment.status, created_at=experiment.created_at, created_by=experiment.created_by,
                    )
                )
            except IntegrityError:
                raise Conflict(f"An experiment named {experiment.name!r} already exists.") from None
            await self._bump(conn)
        return experiment

    async def get_experiment(self, name: str) -> Experiment:
        async with self._read() as conn:
            row = (await conn.execute(select(experiments).where(experiments.c.name == name))).first()
        if row is None:
            raise NotFound(f"No experiment named {name!r}.")
        return _experiment_from(row)

    async def list_experiments(self) -> list[Experiment]:
        async with self._read() as conn:
            return [_experiment_from(r) for r in await conn.execute(select(experiments).order_by(experiments.c.name))]

    async def stop_experiment(self, name: str) -> Experiment:
        """Stop an active experiment (its outcomes stay); stopping a stopped one changes nothing."""
        async with self._write() as conn:
            row = (await conn.execute(select(experiments).where(experiments.c.name == name))).first()
            if row is None:
                raise NotFound(f"No experiment named {name!r}.")
            if row.status == "active":
                await conn.execute(
                    update(experiments).where(experiments.c.id == row.id).values(status="stopped", stopped_at=self._now())
                )
                await self._bump(conn)
            row = (await conn.execute(select(experiments).where(experiments.c.id == row.id))).one()
        return _experiment_from(row)

    # --- outcomes and scores (data: no bump) ---------------------------------------------

    async def add_experiment_outcomes(self, outcomes: Sequence[Outcome]) -> None:
        """Append a batch; a request id already stored is skipped (a retried flush)."""
        if not outcomes:
            return
        values = [
            {"request_id": o.request_id, "experiment": o.experiment, "arm": o.arm, "at": o.at, "status": o.status,
             "error_code": o.error_code, "latency_ms": o.latency_ms, "ttft_ms": o.ttft_ms, "prompt": o.prompt,
             "version": o.version, "model": o.model, "input_tokens": o.input_tokens, "output_tokens": o.output_tokens,
             "cost_usd": o.cost_usd}
            for o in outcomes
        ]
        async with self._write(control=False) as conn:
            await conn.execute(self._upsert(experiment_outcomes).on_conflict_do_nothing(), values)

    async def experiment_outcomes(self, experiment: str) -> list[Outcome]:
        o = experiment_outcomes.c
        async with self._read() as conn:
            rows = await conn.execute(select(experiment_outcomes).where(o.experiment == experiment).order_by(o.at))
            return [
                Outcome(request_id=r.request_id, experiment=r.experiment, arm=r.arm, at=r.at, status=r.status,
                        latency_ms=r.latency_ms, prompt=r.prompt, version=r.version, model=r.model,
                        error_code=r.error_code, ttft_ms=r.ttft_ms, input_tokens=r.input_tokens,
                        output_tokens=r.output_tokens, cost_usd=r.cost_usd)
                for r in rows
            ]

    async def add_request_scores(self, scores: Sequence[Score]) -> list[Score]:
        now = self._now()
        stored = [
            Score(request_id=check.text(s.request_id, "request_id", max_len=128), name=check.text(s.name, "name"),
                  value=s.value, id=uuid7(), at=now, source=check.text(s.source, "source"),
                  comment=s.comment[: check.MAX_TEXT] if s.comment else None)
            for s in scores
        ]
        if stored:
            async with self._write(control=False) as conn:
                await conn.execute(
                    request_scores.insert(),
                    [{"id": s.id, "request_id": s.request_id, "name": s.name, "value": s.value, "source": s.source,
                      "comment": s.comment, "created_at": s.at} for s in stored],
                )
        return stored

    async def request_scores(self, request_id: str) -> list[Score]:
        async with self._read() as conn:
            rows = await conn.execute(
                select(request_scores).where(request_scores.c.request_id == request_id).order_by(request_scores.c.id)
            )
            return [Score(request_id=r.request_id, name=r.name, value=r.value, id=r.id, at=r.created_at,
                          source=r.source, comment=r.comment) for r in rows]

    async def experiment_scores(self, experiment: str) -> list[tuple[str, str, float]]:
        """(arm, score name, value) of every score attached to a request of the experiment."""
        o, s = experiment_outcomes.c, request_scores.c
        async with self._read() as conn:
            rows = await conn.execute(
                select(o.arm, s.name, s.value)
                .join(request_scores, s.request_id == o.request_id)
                .where(o.experiment == experiment)
                .order_by(s.id)
            )
            return [(r.arm, r.name, float(r.value)) for r in rows]
