"""Control-plane operations on the prompt registry: versions, diffs, prompts as code,
labels and promotion through the quality gate.

The admin API and the CLI both call these. Each change lands in the store (which bumps
the control-plane version in the same transaction, so gateways reload their registry)
and is then announced on Redis when configured.

Promotion: moving a label asks the quality gate first (`gate.py`). A failed gate refuses
the move (`GateFailed`, 409 `gate_failed`, naming each failing metric) unless an
override reason is given; the reason and the gate's outcome are kept in the label's
history and, when the gateway has an audit ledger, in an audit event `prompt.promote`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from lockgate.core.context import Principal
from lockgate.errors import GateFailed, InvalidRequest
from lockgate.prompts.files import dumps_prompt
from lockgate.prompts.gate import PromotionGate, gate_record
from lockgate.prompts.models import RESERVED_LABELS, LabelEvent, PromptVersion
from lockgate.prompts.render import check_templates, compile_prompt, make_environment
from lockgate.prompts.spec import PromptSpec, check_prompt_name, parse_spec

__all__ = ["PromptService", "check_label"]

_LABEL = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,99}$")


class _Notifier(Protocol):
    async def publish(self) -> None: ...


def check_label(label: str) -> str:
    if not isinstance(label, str) or not _LABEL.match(label):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise InvalidRequest(
            f"label: 1-100 letters, digits, '_', '.' or '-', starting with a letter (got {label!r}).", param="label"
        )
    if label in RESERVED_LABELS:
        raise InvalidRequest(f"label: {label!r} is reserved (it always means the newest version).", param="label")
    return label


class PromptService:
    def __init__(
        self,
        store: Any,
        *,
        notifier: _Notifier | None = None,
        gatekeeper: PromotionGate | None = None,
        audit: Callable[[], Any] | None = None,
    ) -> None:
        self.store = store
        self._notifier = notifier
        self.gatekeeper = gatekeeper
        self._audit = audit
        self._env = make_environment()

    # --- versions --------------------------------------------------------------------

    def validate(self, name: str, content: Mapping[str, Any]) -> PromptSpec:
        """The spec of `content`, its templates checked; InvalidRequest otherwise."""
        check_prompt_name(name)
        spec = parse_spec(content, where=name)
        check_templates(self._env, spec)
        return spec

    async def create(
        self, name: str, content: Mapping[str, Any], *, author: str, message: str = ""
    ) -> tuple[PromptVersion, bool]:
        """A new version, or (the newest one, False) when its content is unchanged."""
        spec = self.validate(name, content)
        version, created = await self.store.create_prompt_version(
            name, content=spec.canonical(), content_hash=spec.content_hash(), author=author, message=message
        )
        if created:
            await self._notify()
        return version, created

    async def push(
        self, files: Mapping[str, Mapping[str, Any]], *, author: str, message: str = ""
    ) -> list[tuple[PromptVersion, bool]]:
        """Sync prompt files: every file is validated first (a bad one changes nothing),
        then a version is created for each changed one."""
        specs = {name: self.validate(name, content) for name, content in files.items()}
        results: list[tuple[PromptVersion, bool]] = []
        for name, spec in specs.items():
            results.append(
                await self.store.create_prompt_version(
                    name, content=spec.canonical(), content_hash=spec.content_hash(), author=author, message=message
                )
            )
        if any(created for _, created in results):
            await self._notify()
        return results

    async def get(self, name: str, ref: str | int | None = None) -> PromptVersion:
        """By version number, by label (`latest`: the newest), or the newest."""
        if ref is None or ref == "latest":
            return await self.store.get_prompt_version(name)
        if isinstance(ref, int) or ref.isdigit():
            return await self.store.get_prompt_version(name, version=int(ref))
        return await self.store.get_prompt_version(name, label=ref)

    async def diff(self, name: str, a: str | int, b: str | int) -> str:
        """A unified diff of two versions' prompt files ("" when they are the same)."""
        va, vb = await self.get(name, a), await self.get(name, b)
        lines = difflib.unified_diff(
            dumps_prompt(name, va.content).splitlines(keepends=True),
            dumps_prompt(name, vb.content).splitlines(keepends=True),
            fromfile=f"{name}@{va.version}" + (f" ({a})" if str(a) != str(va.version) else ""),
            tofile=f"{name}@{vb.version}" + (f" ({b})" if str(b) != str(vb.version) else ""),
        )
        return "".join(lines)

    def render(self, version: PromptVersion, variables: Mapping[str, Any] | None) -> list[dict[str, str]]:
        """A preview: the messages a request with these variables would start with."""
        spec = PromptSpec.model_validate(version.content)
        compiled = compile_prompt(self._env, version.prompt, version.version, version.content_hash, spec)
        return [{"role": m.role, "content": m.text()} for m in compiled.render(variables)]

    # --- labels ------------------------------------------------------------------------

    async def promote(
        self, name: str, version: int, label: str, *, actor: str, override_reason: str | None = None,
        principal: Principal | None = None,
    ) -> LabelEvent:
        """Point `label` at `version` if the quality gate covering it (if any) passes, or
        with an override reason when it fails."""
        label = check_label(label)
        await self.store.get_prompt_version(name, version=version)  # NotFound first
        outcome = None
        if self.gatekeeper is not None:
            outcome = await self.gatekeeper.check_promotion(prompt=name, version=version, label=label)
        reason = (override_reason or "").strip() or None
        if outcome is not None and not outcome.passed and reason is None:
            failures = list(outcome.failures) or ["the gate failed"]
            raise GateFailed(
                f"Promoting {name} version {version} to '{label}' was refused: its quality gate failed: "
                + "; ".join(failures)
                + (f" (evaluation run {outcome.run_id})" if outcome.run_id else "")
                + ". Fix the prompt, or give an override reason to promote anyway.",
                failures=failures,
                run_id=outcome.run_id,
            )
        gate = gate_record(outcome) if outcome is not None else None
        event = await self.store.set_prompt_label(name, label, version, actor=actor, reason=reason, gate=gate)
        await self._notify()
        await self._record("prompt.promote", event, principal)
        return event

    async def remove_label(
        self, name: str, label: str, *, actor: str, reason: str | None = None, principal: Principal | None = None
    ) -> LabelEvent:
        event = await self.store.remove_prompt_label(name, label, actor=actor, reason=reason)
        await self._notify()
        await self._record("admin.change", event, principal)
        return event

    async def history(self, name: str, label: str | None = None) -> list[LabelEvent]:
        return await self.store.prompt_label_history(name, label=label)

    # --- helpers -----------------------------------------------------------------------

    async def _notify(self) -> None:
        if self._notifier is not None:
            await self._notifier.publish()

    async def _record(self, kind: str, event: LabelEvent, principal: Principal | None) -> None:
        """An audit event (the ledger's schema): `prompt.promote`, or `admin.change` for a removal."""
        audit = self._audit() if self._audit is not None else None
        if audit is None:
            return
        gate = event.gate
        verdict = "no gate" if gate is None else ("gate passed" if gate.get("passed") else "gate failed, overridden")
        record: Callable[..., Awaitable[Any]] = audit.record
        await record(
            kind,
            actor=principal,
            target={"object": f"prompt:{event.prompt}@{event.label}"},
            decision={"effect": "allow", "reason": verdict},
            reason=event.reason,
            data={
                "prompt": event.prompt, "label": event.label, "version": event.version,
                "previous_version": event.previous_version, "gate": gate, "overridden": event.overridden,
                "actor": event.actor, "event_id": event.id,
            },
        )
