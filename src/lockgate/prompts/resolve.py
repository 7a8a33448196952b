"""The resolve stage: a prompt reference becomes the request the model sees.

    {"model": "prompt:support-reply@production", "prompt_variables": {"customer": "Ada"},
     "messages": [{"role": "user", "content": "my order is late"}]}

`prompt:NAME@LABEL`, `prompt:NAME@VERSION` or `prompt:NAME` (the `production` label)
is looked up in the in-memory registry; the version's templates are rendered with
`prompt_variables` (a wrong, missing or undeclared variable is a 400), the request's own
messages are appended after them, the version's model replaces the reference and its
parameters replace the request's (a request value fills only a parameter the version
leaves unset); its response schema becomes `response_format` unless the request has one.

Experiments: a request by label whose prompt and label an active experiment splits (or
a request for a model an experiment splits) is given an arm by its sticky key (see
`assign.py`); the arm may pin a version and/or a model. The answer carries
`x-lockgate-prompt-name`, `x-lockgate-prompt-version`, `x-lockgate-experiment` and
`x-lockgate-experiment-arm`; the trace span carries `gen_ai.prompt.name`,
`gen_ai.prompt.version`, `lockgate.experiment` and `lockgate.experiment.arm`. When the
request is over, its outcome (status, latency, tokens, cost) is queued for the
write-behind recorder: nothing here touches the database.

The stage runs right after `identify`, so kill switches, policy and limits see the
resolved model.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import msgspec

from lockgate.core.context import RequestContext
from lockgate.core.types import ChatRequest, Message, ResponseFormat
from lockgate.errors import InvalidRequest
from lockgate.prompts.assign import SESSION_HEADER, assignment_key, choose_arm, point
from lockgate.prompts.models import Arm, Experiment, Outcome
from lockgate.prompts.recorder import OutcomeRecorder
from lockgate.prompts.registry import PREFIX, PromptCache, parse_ref
from lockgate.prompts.render import CompiledPrompt
from lockgate.prompts.spec import PARAM_NAMES

__all__ = ["ResolveStage"]

PROMPT_NAME_HEADER = "x-lockgate-prompt-name"
PROMPT_VERSION_HEADER = "x-lockgate-prompt-version"
EXPERIMENT_HEADER = "x-lockgate-experiment"
ARM_HEADER = "x-lockgate-experiment-arm"


class ResolveStage:
    name = "resolve"

    def __init__(
        self,
        cache: PromptCache,
        recorder: OutcomeRecorder,
        *,
        meter: Callable[[RequestContext], Awaitable[None]] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._cache = cache
        self._recorder = recorder
        self._meter = meter
        self._clock = clock

    async def admit(self, ctx: RequestContext) -> None:
        chat = ctx.chat
        if chat is None:
            return
        if ctx.model.startswith(PREFIX):
            self._resolve_prompt(ctx, chat)
            return
        if chat.prompt_variables is not None:
            raise InvalidRequest(
                "prompt_variables is only accepted with a prompt model, e.g. 'prompt:NAME@production'.",
                param="prompt_variables",
            )
        experiment = self._cache.view.by_model.get(ctx.model)
        if experiment is not None:
            arm = _assign(ctx, chat, experiment)
            if arm.model:
                ctx.model = arm.model
                ctx.chat = msgspec.structs.replace(chat, model=arm.model)
            _mark(ctx, experiment, arm, None)

    def _resolve_prompt(self, ctx: RequestContext, chat: ChatRequest) -> None:
        view = self._cache.view
        name, version, label = parse_ref(ctx.model)
        experiment = view.by_prompt.get((name, label)) if label is not None else None
        arm: Arm | None = None
        if experiment is not None:
            arm = _assign(ctx, chat, experiment)
            if arm.version is not None:
                version = arm.version
        compiled = view.lookup(name, version, label)
        rendered = compiled.render(chat.prompt_variables)
        model = arm.model if arm is not None and arm.model else compiled.spec.model
        ctx.attrs["prompt"] = {"name": name, "version": compiled.version, "label": label, "ref": ctx.model}
        ctx.chat = _apply(chat, compiled, rendered, model)
        ctx.model = model
        _headers(ctx)[PROMPT_NAME_HEADER] = name
        _headers(ctx)[PROMPT_VERSION_HEADER] = str(compiled.version)
        span: Any = ctx.attrs.get("span")
        if span is not None:
            span.set_attribute("gen_ai.prompt.name", name)
            span.set_attribute("gen_ai.prompt.version", compiled.version)
            span.set_attribute("gen_ai.request.model", model)
            span.set_attribute("lockgate.prompt.ref", ctx.attrs["prompt"]["ref"])
        if experiment is not None and arm is not None:
            _mark(ctx, experiment, arm, compiled)

    async def complete(self, ctx: RequestContext) -> None:
        mark: tuple[Experiment, Arm, CompiledPrompt | None] | None = ctx.attrs.get("experiment")
        if mark is None:
            return
        experiment, arm, compiled = mark
        if self._meter is not None and ctx.provider is not None:
            await self._meter(ctx)
        usage, err = ctx.usage, ctx.error
        self._recorder.add(
            Outcome(
                request_id=ctx.request_id, experiment=experiment.name, arm=arm.name, at=self._clock(),
                status=err.status if err is not None else 200, latency_ms=round(ctx.elapsed() * 1000, 3),
                prompt=compiled.name if compiled else None, version=compiled.version if compiled else None,
                model=ctx.model, error_code=err.code if err is not None else None,
                ttft_ms=round((ctx.first_token_at - ctx.started) * 1000, 3) if ctx.first_token_at is not None else None,
                input_tokens=usage.input_tokens if usage else 0, output_tokens=usage.output_tokens if usage else 0,
                cost_usd=ctx.cost or 0.0,
            )
        )


def _headers(ctx: RequestContext) -> dict[str, str]:
    headers: dict[str, str] | None = ctx.attrs.get("response_headers")
    if headers is None:
        headers = ctx.attrs["response_headers"] = {}
    return headers


def _assign(ctx: RequestContext, chat: ChatRequest, experiment: Experiment) -> Arm:
    hints: dict[str, str] = ctx.attrs.get("headers") or {}
    key = assignment_key(experiment, user=chat.user, session=hints.get(SESSION_HEADER), request_id=ctx.request_id)
    return choose_arm(experiment.arms, point(experiment.name, key))


def _mark(ctx: RequestContext, experiment: Experiment, arm: Arm, compiled: CompiledPrompt | None) -> None:
    ctx.attrs["experiment"] = (experiment, arm, compiled)
    headers = _headers(ctx)
    headers[EXPERIMENT_HEADER] = experiment.name
    headers[ARM_HEADER] = arm.name
    span: Any = ctx.attrs.get("span")
    if span is not None:
        span.set_attribute("lockgate.experiment", experiment.name)
        span.set_attribute("lockgate.experiment.arm", arm.name)


def _apply(chat: ChatRequest, compiled: CompiledPrompt, rendered: list[Message], model: str) -> ChatRequest:
    spec = compiled.spec
    pinned: dict[str, Any] = {
        name: value for name in PARAM_NAMES if (value := getattr(spec.params, name)) is not None
    }
    if "stop" in pinned:
        pinned["stop"] = list(pinned["stop"])
    response_format = chat.response_format
    if response_format is None and spec.response_schema is not None:
        response_format = ResponseFormat(type="json_schema", name=_schema_name(compiled.name), schema=dict(spec.response_schema))
    return msgspec.structs.replace(
        chat, model=model, messages=[*rendered, *chat.messages], prompt_variables=None,
        response_format=response_format, **pinned,
    )


def _schema_name(name: str) -> str:
    """OpenAI's json_schema names: letters, digits, '_' and '-', at most 64."""
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in name)[:64] or "response"
