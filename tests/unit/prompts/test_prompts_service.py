"""The registry's services on a real store (SQLite and PostgreSQL): versions, push,
diff, promotion through the quality gate, label history, experiments, scores."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from tests.unit.prompts.conftest import FakeAudit, FakeGate

from lockgate.core.context import Principal
from lockgate.errors import Conflict, GateFailed, InvalidRequest, NotFound
from lockgate.prompts.experiments import ExperimentService
from lockgate.prompts.models import Arm, Outcome, Score
from lockgate.prompts.registry import PromptCache
from lockgate.prompts.service import PromptService
from lockgate.store import Store


def content(tone: str = "friendly", **extra: Any) -> dict[str, Any]:
    return {
        "model": "fast",
        "variables": {"customer": "string"},
        "messages": [{"role": "system", "content": f"Be {tone} to {{{{ customer }}}}."}],
        **extra,
    }


async def test_versions_are_numbered_and_unchanged_content_creates_none(store: Store) -> None:
    service = PromptService(store)
    v1, created1 = await service.create("support", content(), author="ada", message="first")
    same, created_again = await service.create("support", content(), author="bob")
    v2, created2 = await service.create("support", content("terse"), author="bob", message="terser")
    assert (v1.version, created1, same.version, created_again, v2.version, created2) == (1, True, 1, False, 2, True)
    assert v1.content_hash.startswith("sha256:") and v1.content_hash != v2.content_hash
    assert (v2.author, v2.message) == ("bob", "terser")
    assert [v.version for v in await store.list_prompt_versions("support")] == [1, 2]
    assert (await service.get("support")).version == 2
    assert (await service.get("support", "1")).content == v1.content
    with pytest.raises(NotFound, match="no version 9"):
        await service.get("support", 9)
    with pytest.raises(InvalidRequest, match="prompt name"):
        await service.create("bad name!", content(), author="ada")


async def test_push_is_idempotent_and_all_or_nothing(store: Store) -> None:
    service = PromptService(store)
    files = {"a": content(), "b": content("brief")}
    first = await service.push(files, author="ci")
    assert [(v.prompt, v.version, created) for v, created in first] == [("a", 1, True), ("b", 1, True)]
    version = await store.current_version()
    assert [created for _, created in await service.push(files, author="ci")] == [False, False]
    assert await store.current_version() == version  # nothing changed: no reload anywhere
    with pytest.raises(InvalidRequest, match="uses who"):
        await service.push({"a": content("new"), "c": {"model": "fast", "messages": [{"role": "user", "content": "{{ who }}"}]}},
                           author="ci")
    assert (await service.get("a")).version == 1  # the bad file stopped the whole push


async def test_diff_shows_the_changed_lines(store: Store) -> None:
    service = PromptService(store)
    await service.create("support", content(), author="ada")
    await service.create("support", content("terse", params={"temperature": 0.1}), author="ada")
    await service.promote("support", 1, "production", actor="ada")
    diff = await service.diff("support", "production", "2")
    assert "--- support@1 (production)" in diff and "+++ support@2" in diff
    assert '-content = "Be friendly to {{ customer }}."' in diff
    assert '+content = "Be terse to {{ customer }}."' in diff
    assert "+temperature = 0.1" in diff
    assert await service.diff("support", "1", "production") == ""


async def test_a_failing_gate_refuses_promotion_naming_the_metric(store: Store, gate: FakeGate, audit: FakeAudit) -> None:
    service = PromptService(store, gatekeeper=gate, audit=lambda: audit)
    await service.create("support", content(), author="ada")
    await service.create("support", content("rude"), author="ada")
    gate.failing[2] = ["exact_match 0.60 < 0.80"]
    await service.promote("support", 1, "production", actor="ada")
    with pytest.raises(GateFailed) as err:
        await service.promote("support", 2, "production", actor="ada")
    assert err.value.status == 409 and err.value.code == "gate_failed"
    assert "exact_match 0.60 < 0.80" in err.value.message and err.value.run_id == "run-2"
    assert await store.get_prompt_labels("support") == {"production": 1}
    await service.promote("support", 2, "staging", actor="ada")  # no gate covers staging
    admin = Principal("admin", "operator", label="admin")
    event = await service.promote("support", 2, "production", actor="ada", override_reason="hotfix, judged by hand",
                                  principal=admin)
    assert (event.previous_version, event.version, event.reason, event.overridden) == (1, 2, "hotfix, judged by hand", True)
    assert event.gate == {"passed": False, "failures": ["exact_match 0.60 < 0.80"], "run_id": "run-2"}
    assert await store.get_prompt_labels("support") == {"production": 2, "staging": 2}
    history = await service.history("support", "production")
    assert [(e.version, e.previous_version, e.reason) for e in history] == [(2, 1, "hotfix, judged by hand"), (1, None, None)]
    kinds = [(kind, kw["target"]["object"], kw["decision"]["reason"], kw["data"]["overridden"]) for kind, kw in audit.events]
    assert kinds == [("prompt.promote", "prompt:support@production", "gate passed", False),
                     ("prompt.promote", "prompt:support@staging", "no gate", False),
                     ("prompt.promote", "prompt:support@production", "gate failed, overridden", True)]
    assert audit.events[-1][1]["data"]["gate"]["failures"] == ["exact_match 0.60 < 0.80"]
    assert audit.events[-1][1]["reason"] == "hotfix, judged by hand" and audit.events[-1][1]["actor"] is admin


async def test_labels_are_checked_and_removable(store: Store) -> None:
    service = PromptService(store)
    await service.create("support", content(), author="ada")
    for bad in ("latest", "9", "has space"):
        with pytest.raises(InvalidRequest):
            await service.promote("support", 1, bad, actor="ada")
    with pytest.raises(NotFound, match="no version 3"):
        await service.promote("support", 3, "production", actor="ada")
    await service.promote("support", 1, "canary", actor="ada")
    event = await service.remove_label("support", "canary", actor="ada", reason="done")
    assert (event.version, event.previous_version) == (None, 1)
    assert await store.get_prompt_labels("support") == {}
    with pytest.raises(NotFound):
        await service.remove_label("support", "canary", actor="ada")


async def test_registry_changes_bump_the_state_and_the_cache_reloads(store: Store) -> None:
    service = PromptService(store)
    cache = PromptCache(store)
    await cache.reload()
    assert cache.view.latest == {}
    before = await store.current_version()
    await service.create("support", content(), author="ada")
    await service.promote("support", 1, "production", actor="ada")
    assert await store.current_version() == before + 2
    await cache.reload()
    compiled = cache.view.lookup("support", None, "production")
    assert (compiled.name, compiled.version) == ("support", 1)
    assert cache.view.lookup("support", None, "latest") is compiled
    with pytest.raises(NotFound, match="no label `staging`"):
        cache.view.lookup("support", None, "staging")


async def test_experiments_and_their_report(store: Store) -> None:
    prompts = PromptService(store)
    await prompts.create("support", content(), author="ada")
    await prompts.create("support", content("warm"), author="ada")
    service = ExperimentService(store, known_models=["fast", "claude"])
    arms = [Arm("control", 1, version=1), Arm("warm", 1, version=2)]
    created = await service.create("tone", arms=arms, actor="ada", prompt="support")
    assert created.target == "prompt:support@production"
    with pytest.raises(Conflict, match="already splits prompt:support@production"):
        await service.create("tone2", arms=arms, actor="ada", prompt="support")
    with pytest.raises(NotFound):
        await service.create("tone3", arms=[Arm("a", 1, version=1), Arm("b", 1, version=7)], actor="ada", prompt="support",
                             label="staging")
    with pytest.raises(InvalidRequest, match="unknown model"):
        await service.create("m", arms=[Arm("a", 1), Arm("b", 1, model="gpt-9")], actor="ada", model="fast")
    before = await store.current_version()
    now = datetime.now(UTC)
    await store.add_experiment_outcomes([
        Outcome(request_id=f"r{i}", experiment="tone", arm="control" if i % 2 else "warm", at=now, status=200,
                latency_ms=5.0 + i, input_tokens=3, output_tokens=4, cost_usd=0.5)
        for i in range(10)
    ])
    await store.add_experiment_outcomes([Outcome(request_id="r1", experiment="tone", arm="control", at=now, status=200,
                                                 latency_ms=1.0)])  # a retried flush: skipped
    await service.add_scores([Score("r1", "helpful", 1.0), Score("r3", "helpful", 0.0), Score("r2", "helpful", 1.0)])
    assert await store.current_version() == before  # data, not control-plane changes
    report = await service.report("tone")
    control, warm = report.arms
    assert (control.requests, warm.requests, control.cost_usd) == (5, 5, 2.5)
    assert (control.scores[0].n, control.scores[0].mean, warm.scores[0].mean) == (2, 0.5, 1.0)
    stopped = await service.stop("tone")
    assert stopped.status == "stopped" and (await store.load_prompt_registry()).experiments == ()
    with pytest.raises(NotFound):
        await service.scores_of("nope")
    assert [s.name for s in await service.scores_of("r1")] == ["helpful"]
