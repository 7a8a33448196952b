"""The admin API of the prompt registry and experiments (see docs/prompts.md).

    POST   /admin/prompts                          create a version (unchanged content: 200, no new version)
    GET    /admin/prompts                          every prompt, its newest version and labels
    GET    /admin/prompts/{name}                   versions and labels
    GET    /admin/prompts/{name}/versions/{ref}    one version (a number, a label or `latest`)
    GET    /admin/prompts/{name}/diff?a=&b=        a unified diff of two versions
    POST   /admin/prompts/{name}/render            preview: the messages a request would start with
    POST   /admin/prompts/{name}/labels/{label}    promote (the quality gate decides; 409 gate_failed)
    DELETE /admin/prompts/{name}/labels/{label}    remove a label
    GET    /admin/prompts/{name}/labels            current labels and their history
    POST   /admin/experiments                      create;  GET /admin/experiments  list
    GET    /admin/experiments/{name}               one;  POST /admin/experiments/{name}/stop
    GET    /admin/experiments/{name}/report        the report (JSON)
    POST   /admin/scores                           attach scores to request ids
    GET    /admin/scores/{request_id}              the scores of one request
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any, Literal

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from lockgate.core.context import Principal
from lockgate.prompts.models import Arm, Experiment, LabelEvent, PromptVersion, Score

__all__ = ["include_prompt_routes"]

_ADMIN = Principal("admin", "operator", label="admin")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PromptIn(_Body):
    name: str = Field(min_length=1, max_length=100)
    content: dict[str, Any]
    """A prompt file's keys: kind, model, messages or template, variables, params, response_schema, description."""
    message: str = Field(default="", max_length=2000)
    author: str = Field(default="admin", min_length=1, max_length=200)


class PromoteIn(_Body):
    version: int = Field(ge=1)
    override_reason: str | None = Field(default=None, max_length=2000)


class RenderIn(_Body):
    ref: str = "production"
    variables: dict[str, Any] | None = None


class ArmIn(_Body):
    name: str = Field(min_length=1, max_length=100)
    weight: float = Field(gt=0)
    version: int | None = Field(default=None, ge=1)
    model: str | None = None


class ExperimentIn(_Body):
    name: str = Field(min_length=1, max_length=100)
    prompt: str | None = None
    model: str | None = None
    label: str = "production"
    sticky: Literal["user", "session"] = "user"
    arms: list[ArmIn] = Field(min_length=2)


class ScoreIn(_Body):
    request_id: str = Field(min_length=1, max_length=128)
    name: str = Field(min_length=1, max_length=200)
    value: float
    comment: str | None = Field(default=None, max_length=2000)
    source: str = Field(default="api", min_length=1, max_length=200)


class ScoresIn(_Body):
    scores: list[ScoreIn] = Field(min_length=1, max_length=1000)


def version_out(v: PromptVersion) -> dict[str, Any]:
    return {"prompt": v.prompt, "version": v.version, "content_hash": v.content_hash, "content": v.content,
            "author": v.author, "message": v.message, "created_at": v.created_at.isoformat(), "id": v.id}


def event_out(e: LabelEvent) -> dict[str, Any]:
    return {"prompt": e.prompt, "label": e.label, "version": e.version, "previous_version": e.previous_version,
            "actor": e.actor, "at": e.at.isoformat(), "reason": e.reason, "gate": e.gate, "overridden": e.overridden,
            "id": e.id}


def experiment_out(e: Experiment) -> dict[str, Any]:
    return {"name": e.name, "prompt": e.prompt, "model": e.model, "label": e.label, "sticky": e.sticky,
            "arms": [asdict(a) for a in e.arms], "status": e.status, "source": e.source, "target": e.target,
            "created_at": e.created_at.isoformat(), "created_by": e.created_by,
            "stopped_at": e.stopped_at.isoformat() if e.stopped_at else None}


def score_out(s: Score) -> dict[str, Any]:
    return {"id": s.id, "request_id": s.request_id, "name": s.name, "value": s.value, "source": s.source,
            "comment": s.comment, "at": s.at.isoformat() if s.at else None}


def include_prompt_routes(app: FastAPI, require_admin: Callable[..., str], plane: Callable[[], Any]) -> None:
    """`plane` returns the running gateway's `PromptPlane`."""
    _prompt_routes(app, require_admin, plane)
    _label_routes(app, require_admin, plane)
    _experiment_routes(app, require_admin, plane)


def _prompt_routes(app: FastAPI, require_admin: Callable[..., str], plane: Callable[[], Any]) -> None:
    @app.post("/prompts", status_code=201)
    async def create_prompt(body: PromptIn, _: str = Depends(require_admin)) -> Any:
        version, created = await plane().service.create(body.name, body.content, author=body.author, message=body.message)
        return JSONResponse({**version_out(version), "created": created}, status_code=201 if created else 200)

    @app.get("/prompts")
    async def list_prompts(_: str = Depends(require_admin)) -> list[dict[str, Any]]:
        return [{"name": p.name, "latest": p.latest, "labels": p.labels, "created_at": p.created_at.isoformat(),
                 "updated_at": p.updated_at.isoformat()} for p in await plane().service.store.list_prompts()]

    @app.get("/prompts/{name}")
    async def get_prompt(name: str, _: str = Depends(require_admin)) -> dict[str, Any]:
        store = plane().service.store
        versions = await store.list_prompt_versions(name)
        return {"name": name, "labels": await store.get_prompt_labels(name), "versions": [version_out(v) for v in versions]}

    @app.get("/prompts/{name}/versions/{ref}")
    async def get_version(name: str, ref: str, _: str = Depends(require_admin)) -> dict[str, Any]:
        return version_out(await plane().service.get(name, ref))

    @app.get("/prompts/{name}/diff")
    async def diff(name: str, a: str, b: str, _: str = Depends(require_admin)) -> dict[str, Any]:
        return {"prompt": name, "a": a, "b": b, "diff": await plane().service.diff(name, a, b)}

    @app.post("/prompts/{name}/render")
    async def render(name: str, body: RenderIn, _: str = Depends(require_admin)) -> dict[str, Any]:
        service = plane().service
        version = await service.get(name, body.ref)
        return {"prompt": name, "version": version.version, "model": version.content.get("model"),
                "messages": service.render(version, body.variables)}


def _label_routes(app: FastAPI, require_admin: Callable[..., str], plane: Callable[[], Any]) -> None:
    @app.post("/prompts/{name}/labels/{label}")
    async def promote(name: str, label: str, body: PromoteIn, actor: str = Depends(require_admin)) -> dict[str, Any]:
        event = await plane().service.promote(
            name, body.version, label, actor=actor, override_reason=body.override_reason, principal=_ADMIN
        )
        return event_out(event)

    @app.delete("/prompts/{name}/labels/{label}")
    async def remove_label(name: str, label: str, actor: str = Depends(require_admin)) -> dict[str, Any]:
        return event_out(await plane().service.remove_label(name, label, actor=actor, principal=_ADMIN))

    @app.get("/prompts/{name}/labels")
    async def labels(name: str, _: str = Depends(require_admin), label: str | None = None) -> dict[str, Any]:
        service = plane().service
        return {"labels": await service.store.get_prompt_labels(name),
                "history": [event_out(e) for e in await service.history(name, label)]}


def _experiment_routes(app: FastAPI, require_admin: Callable[..., str], plane: Callable[[], Any]) -> None:
    @app.post("/experiments", status_code=201)
    async def create_experiment(body: ExperimentIn, actor: str = Depends(require_admin)) -> dict[str, Any]:
        arms = [Arm(name=a.name, weight=a.weight, version=a.version, model=a.model) for a in body.arms]
        experiment = await plane().experiments.create(
            body.name, arms=arms, actor=actor, prompt=body.prompt, model=body.model, label=body.label, sticky=body.sticky
        )
        return experiment_out(experiment)

    @app.get("/experiments")
    async def list_experiments(_: str = Depends(require_admin)) -> list[dict[str, Any]]:
        return [experiment_out(e) for e in await plane().experiments.list()]

    @app.get("/experiments/{name}")
    async def get_experiment(name: str, _: str = Depends(require_admin)) -> dict[str, Any]:
        return experiment_out(await plane().experiments.get(name))

    @app.post("/experiments/{name}/stop")
    async def stop_experiment(name: str, _: str = Depends(require_admin)) -> dict[str, Any]:
        return experiment_out(await plane().experiments.stop(name))

    @app.get("/experiments/{name}/report")
    async def report(name: str, _: str = Depends(require_admin)) -> dict[str, Any]:
        await plane().recorder.flush()  # this gateway's pending outcomes count too
        return (await plane().experiments.report(name)).as_json()

    @app.post("/scores", status_code=201)
    async def add_scores(body: ScoreIn | ScoresIn, _: str = Depends(require_admin)) -> list[dict[str, Any]]:
        items = body.scores if isinstance(body, ScoresIn) else [body]
        scores = [Score(request_id=s.request_id, name=s.name, value=s.value, comment=s.comment, source=s.source)
                  for s in items]
        return [score_out(s) for s in await plane().experiments.add_scores(scores)]

    @app.get("/scores/{request_id}")
    async def get_scores(request_id: str, _: str = Depends(require_admin)) -> list[dict[str, Any]]:
        return [score_out(s) for s in await plane().experiments.scores_of(request_id)]
