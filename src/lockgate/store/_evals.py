"""Datasets (immutable versions of items), evaluation runs and their per-item results.

None of this is control-plane state a gateway snapshots: writes use
`_write(control=False)` and never bump the state version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, Select, func, select, update
from sqlalchemy.exc import IntegrityError

from lockgate.core.ids import uuid7
from lockgate.errors import Conflict, InvalidRequest, NotFound
from lockgate.evals.models import Dataset, DatasetItem, EvalRun, ItemResult, RunStatus, Target
from lockgate.store import _validate as check
from lockgate.store._base import StoreBase
from lockgate.store.tables_evals import eval_dataset_items, eval_datasets, eval_results, eval_runs

__all__ = ["EvalsMixin", "items_hash"]


def items_hash(items: Sequence[DatasetItem]) -> str:
    """The content hash of a dataset version: equal items in equal order, equal hash."""
    canonical = [
        {"key": i.key, "variables": i.variables, "messages": i.messages, "expected": i.expected, "metadata": i.metadata}
        for i in items
    ]
    raw = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


def _dataset_from(row: Row[Any]) -> Dataset:
    return Dataset(
        id=row.id, name=row.name, version=row.version, source=row.source, content_hash=row.content_hash,
        item_count=row.item_count, description=row.description, created_at=row.created_at,
    )


def _item_from(row: Row[Any]) -> DatasetItem:
    return DatasetItem(
        key=row.key, variables=row.variables, messages=row.messages, expected=row.expected,
        metadata=dict(row.meta or {}), position=row.position,
    )


def _result_from(row: Row[Any]) -> ItemResult:
    return ItemResult(
        item_key=row.item_key, position=row.position, output=row.output, error=row.error,
        scores=dict(row.scores or {}), details=dict(row.details or {}), latency_ms=row.latency_ms,
        input_tokens=row.input_tokens, output_tokens=row.output_tokens, created_at=row.created_at,
    )


def _run_from(row: Row[Any]) -> EvalRun:
    dataset = Dataset(
        id=row.dataset_id, name=row.ds_name, version=row.ds_version, source=row.ds_source,
        content_hash=row.ds_hash, item_count=row.ds_item_count, description=row.ds_description,
        created_at=row.ds_created_at,
    )
    return EvalRun(
        id=row.id, target=Target(prompt=row.prompt, version=row.prompt_version, model=row.model),
        dataset=dataset, evaluators=tuple(row.evaluators), evaluator_hash=row.evaluator_hash,
        status=row.status, item_count=row.item_count, summary=row.summary, created_at=row.created_at,
        updated_at=row.updated_at, finished_at=row.finished_at,
    )


def _runs_query() -> Select[Any]:
    d = eval_datasets.c
    return select(
        eval_runs, d.name.label("ds_name"), d.version.label("ds_version"), d.source.label("ds_source"),
        d.content_hash.label("ds_hash"), d.item_count.label("ds_item_count"),
        d.description.label("ds_description"), d.created_at.label("ds_created_at"),
    ).join(eval_datasets, d.id == eval_runs.c.dataset_id)


class EvalsMixin(StoreBase):
    # --- datasets ----------------------------------------------------------------------

    async def create_dataset(
        self, name: str, items: Sequence[DatasetItem], *, source: str, description: str = ""
    ) -> tuple[Dataset, bool]:
        """Add a version of dataset `name` holding `items`, unless its newest version
        already holds exactly these: then that one is returned. (dataset, created)."""
        name = check.text(name, "name")
        if not items:
            raise InvalidRequest("A dataset needs at least one item.", param="items")
        keys = [i.key for i in items]
        if len(set(keys)) != len(keys):
            raise InvalidRequest("Item keys must be unique within a dataset.", param="items")
        digest = items_hash(items)
        d = eval_datasets.c
        async with self._write(control=False) as conn:
            latest = (
                await conn.execute(select(eval_datasets).where(d.name == name).order_by(d.version.desc()).limit(1))
            ).first()
            if latest is not None and latest.content_hash == digest:
                return _dataset_from(latest), False
            dataset = Dataset(
                id=uuid7(), name=name, version=(latest.version + 1) if latest else 1,
                source=check.text(source, "source", max_len=check.MAX_TEXT), content_hash=digest,
                item_count=len(items), description=description[: check.MAX_TEXT], created_at=self._now(),
            )
            try:
                await conn.execute(eval_datasets.insert().values(
                    id=dataset.id, name=dataset.name, version=dataset.version, source=dataset.source,
                    content_hash=digest, item_count=dataset.item_count, description=dataset.description,
                    created_at=dataset.created_at,
                ))
            except IntegrityError:
                raise Conflict(f"Dataset {name} v{dataset.version} was created concurrently; import again.") from None
            await conn.execute(eval_dataset_items.insert(), [
                {"dataset_id": dataset.id, "position": n, "key": i.key, "variables": i.variables,
                 "messages": i.messages, "expected": i.expected, "meta": i.metadata}
                for n, i in enumerate(items)
            ])
        return dataset, True

    async def get_dataset(self, name: str, version: int | None = None) -> Dataset:
        """A version of dataset `name` (its newest when `version` is None), or its id."""
        d = eval_datasets.c
        query = select(eval_datasets).where((d.name == name) | (d.id == name))
        query = query.where(d.version == version) if version is not None else query
        async with self._read() as conn:
            row = (await conn.execute(query.order_by(d.version.desc()).limit(1))).first()
        if row is None:
            raise NotFound(f"No dataset {name}{f'@{version}' if version is not None else ''}.")
        return _dataset_from(row)

    async def list_datasets(self, name: str | None = None) -> list[Dataset]:
        """Every version (of `name`, or of all datasets), by name then version."""
        d = eval_datasets.c
        query = select(eval_datasets).order_by(d.name, d.version)
        if name is not None:
            query = query.where(d.name == name)
        async with self._read() as conn:
            return [_dataset_from(r) for r in await conn.execute(query)]

    async def dataset_items(self, dataset_id: str) -> list[DatasetItem]:
        c = eval_dataset_items.c
        async with self._read() as conn:
            rows = await conn.execute(select(eval_dataset_items).where(c.dataset_id == dataset_id).order_by(c.position))
            return [_item_from(r) for r in rows]

    # --- runs --------------------------------------------------------------------------

    async def create_eval_run(
        self, target: Target, dataset: Dataset, evaluators: Sequence[str], evaluator_hash: str
    ) -> EvalRun:
        now = self._now()
        run_id = uuid7()
        async with self._write(control=False) as conn:
            await self._exists(conn, eval_datasets, dataset.id, kind="dataset")
            await conn.execute(eval_runs.insert().values(
                id=run_id, target=target.ref, prompt=target.prompt, prompt_version=target.version,
                model=target.model, dataset_id=dataset.id, evaluators=tuple(evaluators),
                evaluator_hash=evaluator_hash, status="running", item_count=dataset.item_count,
                summary=None, created_at=now, updated_at=now, finished_at=None,
            ))
        return await self.get_eval_run(run_id)

    async def get_eval_run(self, run_id: str) -> EvalRun:
        """A run by its id, or by a unique prefix of at least 8 characters."""
        r = eval_runs.c
        query = _runs_query().where(r.id == run_id)
        if len(run_id) >= 8:
            query = _runs_query().where(r.id.startswith(run_id, autoescape=True)).limit(2)
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        exact = [row for row in rows if row.id == run_id]
        if exact:
            return _run_from(exact[0])
        if len(rows) != 1:
            raise NotFound(f"No eval run {run_id!r}." if not rows else f"Eval run prefix {run_id!r} is ambiguous.")
        return _run_from(rows[0])

    async def find_eval_runs(
        self,
        *,
        target: Target | None = None,
        prompt: str | None = None,
        dataset_id: str | None = None,
        evaluator_hash: str | None = None,
        status: RunStatus | None = None,
        limit: int = 100,
    ) -> list[EvalRun]:
        """Runs matching every given filter, newest first."""
        r = eval_runs.c
        query = _runs_query().order_by(r.created_at.desc(), r.id.desc()).limit(limit)
        if target is not None:
            query = query.where(r.target == target.ref)
        if prompt is not None:
            query = query.where(r.prompt == prompt)
        if dataset_id is not None:
            query = query.where(r.dataset_id == dataset_id)
        if evaluator_hash is not None:
            query = query.where(r.evaluator_hash == evaluator_hash)
        if status is not None:
            query = query.where(r.status == status)
        async with self._read() as conn:
            return [_run_from(row) for row in await conn.execute(query)]

    async def reopen_eval_run(self, run_id: str) -> EvalRun:
        """Mark a run running again (to resume it)."""
        async with self._write(control=False) as conn:
            await self._exists(conn, eval_runs, run_id, kind="eval run")
            await conn.execute(
                update(eval_runs).where(eval_runs.c.id == run_id).values(status="running", updated_at=self._now())
            )
        return await self.get_eval_run(run_id)

    async def finish_eval_run(self, run_id: str, summary: dict[str, Any]) -> EvalRun:
        now = self._now()
        async with self._write(control=False) as conn:
            await self._exists(conn, eval_runs, run_id, kind="eval run")
            await conn.execute(
                update(eval_runs).where(eval_runs.c.id == run_id)
                .values(status="finished", summary=summary, updated_at=now, finished_at=now)
            )
        return await self.get_eval_run(run_id)

    # --- results -----------------------------------------------------------------------

    async def save_eval_result(self, run_id: str, result: ItemResult) -> None:
        """Store (or replace: a retried item) one item's result, durably, at once."""
        values: dict[str, Any] = {
            "position": result.position, "output": result.output,
            "error": result.error[: check.MAX_TEXT] if result.error else None,
            "scores": result.scores, "details": result.details, "latency_ms": result.latency_ms,
            "input_tokens": result.input_tokens, "output_tokens": result.output_tokens,
            "created_at": self._now(),
        }
        insert = self._upsert(eval_results).values(run_id=run_id, item_key=result.item_key, **values)
        statement = insert.on_conflict_do_update(index_elements=["run_id", "item_key"], set_=values)
        async with self._write(control=False) as conn:
            await conn.execute(statement)

    async def eval_results(self, run_id: str) -> list[ItemResult]:
        c = eval_results.c
        async with self._read() as conn:
            rows = await conn.execute(select(eval_results).where(c.run_id == run_id).order_by(c.position))
            return [_result_from(r) for r in rows]

    async def count_eval_results(self, run_id: str) -> int:
        async with self._read() as conn:
            count = await conn.scalar(
                select(func.count()).select_from(eval_results).where(eval_results.c.run_id == run_id)
            )
        return int(count or 0)
