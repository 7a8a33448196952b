"""The whole app in process: the admin API of the registry, the resolve stage on both
dialects (headers, span attributes, rendered messages, pinned parameters, 400s), the
quality gate through the API, and an experiment's sticky split and report."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tests.unit.prompts.conftest import FakeAudit, FakeGate

from lockgate.app import Gateway, create_app
from lockgate.config.loader import parse_config
from lockgate.testing import FakeProvider

KEY = "sk-prompts-app"
T = TypeVar("T")
SUPPORT = {
    "model": "fast",
    "params": {"temperature": 0.1, "max_tokens": 64},
    "variables": {"customer": "string", "tier": {"type": "string", "default": "free"}},
    "messages": [{"role": "system", "content": "v{{ '1' }} greets {{ customer }} ({{ tier }})"}],
}


def config(fake: FakeProvider, tmp: Path) -> dict[str, Any]:
    return {
        "gateway": {"admin_key": "env::KEY", "database": f"sqlite:///{tmp / 'db.sqlite'}"},
        "access": {"refresh_interval": 0.05},
        "prompts": {"flush_interval": 0.05},
        "providers": {"oai": {"type": "openai", "base_url": fake.url + "/v1"},
                      "ant": {"type": "anthropic", "base_url": fake.url}},
        "models": {"fast": {"routes": [{"provider": "oai", "model": "gpt-4o-mini"}]},
                   "claude": {"routes": [{"provider": "ant", "model": "claude-3-5-haiku-latest"}]}},
    }


@asynccontextmanager
async def running(fake: FakeProvider, tmp: Path, exporter: InMemorySpanExporter | None = None,
                  cfg: dict[str, Any] | None = None) -> AsyncIterator[tuple[httpx.AsyncClient, Gateway]]:
    app = create_app(parse_config(cfg or config(fake, tmp), {"KEY": KEY}), env={}, span_exporter=exporter)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw",
                                     headers={"authorization": f"Bearer {KEY}"}) as client:
            yield client, app.state.gateway


async def eventually(check: Callable[[], Awaitable[T | None]], timeout: float = 5.0) -> T:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.02)


def echo(body: Any) -> str:
    """The fake's answer: every message it was sent, so tests see what was rendered."""
    def text(content: Any) -> str:
        return content if isinstance(content, str) else "".join(b.get("text", "") for b in content)

    parts = [f"{m['role']}={text(m['content'])}" for m in body.get("messages", [])]
    system = body.get("system")
    if system:
        parts.insert(0, f"system={text(system)}")
    return " | ".join(parts)


async def create(client: httpx.AsyncClient, content: dict[str, Any], status: int = 201) -> dict[str, Any]:
    r = await client.post("/admin/prompts", json={"name": "support", "content": content, "message": "m"})
    assert r.status_code == status, r.text
    return r.json()


async def promote(client: httpx.AsyncClient, version: int, label: str = "production", **extra: Any) -> httpx.Response:
    return await client.post(f"/admin/prompts/support/labels/{label}", json={"version": version, **extra})


async def chat(client: httpx.AsyncClient, model: str, **body: Any) -> httpx.Response:
    return await client.post("/v1/chat/completions", json={"model": model, "messages": [], **body})


async def served(client: httpx.AsyncClient, model: str, version: int, **body: Any) -> httpx.Response:
    async def check() -> httpx.Response | None:
        r = await chat(client, model, **body)
        return r if r.status_code == 200 and r.headers.get("x-lockgate-prompt-version") == str(version) else None

    return await eventually(check)


async def test_serves_the_labelled_version_rendered(fake: FakeProvider, tmp_path: Path) -> None:
    fake.reply_with(echo)
    exporter = InMemorySpanExporter()
    async with running(fake, tmp_path, exporter) as (client, _):
        assert (await create(client, SUPPORT))["version"] == 1
        assert (await create(client, SUPPORT, status=200))["created"] is False
        assert (await promote(client, 1)).status_code == 200
        r = await served(client, "prompt:support@production", 1, prompt_variables={"customer": "Ada"},
                         messages=[{"role": "user", "content": "my order is late"}], temperature=1.5, top_p=0.5)
        assert r.headers["x-lockgate-prompt-name"] == "support"
        assert r.json()["choices"][0]["message"]["content"] == "system=v1 greets Ada (free) | user=my order is late"
        assert r.json()["model"] == "prompt:support@production"
        upstream = fake.requests[-1].json
        assert (upstream["model"], upstream["temperature"], upstream["max_tokens"], upstream["top_p"]) == ("gpt-4o-mini", 0.1, 64, 0.5)
        span = exporter.get_finished_spans()[-1]
        attrs = dict(span.attributes or {})
        assert (attrs["gen_ai.prompt.name"], attrs["gen_ai.prompt.version"], attrs["gen_ai.request.model"]) == ("support", 1, "fast")
        assert attrs["lockgate.prompt.ref"] == "prompt:support@production"
        v2 = await create(client, {**SUPPORT, "messages": [{"role": "system", "content": "v2 hi {{ customer }}"}]})
        assert v2["version"] == 2
        r = await served(client, "prompt:support@2", 2, prompt_variables={"customer": "Bo"})  # by number: not labelled
        assert "v2 hi Bo" in r.text
        r = await chat(client, "prompt:support", prompt_variables={"customer": "Bo"})  # bare: production
        assert r.headers["x-lockgate-prompt-version"] == "1"
        await promote(client, 2)
        await served(client, "prompt:support@production", 2, prompt_variables={"customer": "Ada"})


async def test_bad_prompt_requests_are_clear_errors(fake: FakeProvider, tmp_path: Path) -> None:
    async with running(fake, tmp_path) as (client, gateway):
        await create(client, SUPPORT)
        await promote(client, 1)
        await gateway.prompts.cache.reload()
        r = await chat(client, "prompt:support@production")
        assert r.status_code == 400
        error = r.json()["error"]
        assert error["param"] == "prompt_variables" and error["type"] == "invalid_request_error"
        assert "missing customer" in error["message"] and "Declared variables: customer (string), tier (string)" in error["message"]
        r = await chat(client, "prompt:support@production", prompt_variables={"customer": 1, "x": "y"})
        assert r.status_code == 400 and "not declared by the prompt: x" in r.text and "customer must be of type string" in r.text
        r = await chat(client, "fast", prompt_variables={"customer": "Ada"}, messages=[{"role": "user", "content": "hi"}])
        assert r.status_code == 400 and "only accepted with a prompt model" in r.text
        for model, status, text in (("prompt:nope", 404, "does not exist"), ("prompt:support@staging", 404, "no label"),
                                    ("prompt:support@9", 404, "no version 9"), ("prompt:support@", 400, "Invalid prompt reference")):
            r = await chat(client, model, prompt_variables={"customer": "Ada"})
            assert (r.status_code, text in r.json()["error"]["message"]) == (status, True), (model, r.text)
        r = await client.post("/v1/messages", headers={"anthropic-version": "2023-06-01"},
                              json={"model": "prompt:support", "max_tokens": 10, "messages": []})
        assert r.status_code == 400 and r.json()["type"] == "error" and "missing customer" in r.text


async def test_anthropic_dialect_and_streams_carry_the_prompt(fake: FakeProvider, tmp_path: Path) -> None:
    fake.reply_with(echo)
    async with running(fake, tmp_path) as (client, gateway):
        await create(client, {**SUPPORT, "model": "claude"})
        await promote(client, 1)
        await gateway.prompts.cache.reload()
        r = await client.post("/v1/messages", headers={"anthropic-version": "2023-06-01"}, json={
            "model": "prompt:support@production", "max_tokens": 500, "prompt_variables": {"customer": "Ada"},
            "messages": [{"role": "user", "content": "hello"}]})
        assert r.status_code == 200, r.text
        assert r.headers["x-lockgate-prompt-version"] == "1"
        assert r.json()["content"][0]["text"] == "system=v1 greets Ada (free) | user=hello"
        assert fake.requests[-1].json["max_tokens"] == 64  # the version's parameter wins
        async with client.stream("POST", "/v1/chat/completions", json={
                "model": "prompt:support", "messages": [], "stream": True, "prompt_variables": {"customer": "Cy"}}) as s:
            assert s.status_code == 200 and s.headers["x-lockgate-prompt-name"] == "support"
            body = "".join([chunk async for chunk in s.aiter_text()])
        assert "Cy" in body and "[DONE]" in body


async def test_the_gate_decides_promotions_through_the_api(fake: FakeProvider, tmp_path: Path) -> None:
    gate, audit = FakeGate(failing={2: ["exact_match 0.60 < 0.80", "error_rate 0.20 > 0.05"]}), FakeAudit()
    async with running(fake, tmp_path) as (client, gateway):
        gateway.prompts.set_gatekeeper(gate)
        gateway.audit = audit  # type: ignore[assignment]
        await create(client, SUPPORT)
        await create(client, {**SUPPORT, "params": {"temperature": 1.9}})
        assert (await promote(client, 1)).status_code == 200
        r = await promote(client, 2)
        assert r.status_code == 409
        error = r.json()["error"]
        assert error["code"] == "gate_failed"
        assert "exact_match 0.60 < 0.80" in error["message"] and "error_rate 0.20 > 0.05" in error["message"]
        r = await promote(client, 2, override_reason="incident 42: ship the fix")
        assert r.status_code == 200 and r.json()["overridden"] is True
        history = (await client.get("/admin/prompts/support/labels")).json()
        assert history["labels"] == {"production": 2}
        assert [(e["version"], e["reason"]) for e in history["history"]] == [(2, "incident 42: ship the fix"), (1, None)]
        assert history["history"][0]["gate"]["failures"] == ["exact_match 0.60 < 0.80", "error_rate 0.20 > 0.05"]
        assert [(kind, kw["data"]["overridden"]) for kind, kw in audit.events] == [
            ("prompt.promote", False), ("prompt.promote", True)]
        diff = (await client.get("/admin/prompts/support/diff", params={"a": "1", "b": "2"})).json()["diff"]
        assert "-temperature = 0.1" in diff and "+temperature = 1.9" in diff
        preview = (await client.post("/admin/prompts/support/render", json={"ref": "1", "variables": {"customer": "Z"}})).json()
        assert preview["messages"] == [{"role": "system", "content": "v1 greets Z (free)"}]


async def test_an_experiment_splits_sticks_and_reports(fake: FakeProvider, tmp_path: Path) -> None:
    fake.reply_with(echo)
    async with running(fake, tmp_path) as (client, gateway):
        await create(client, SUPPORT)
        await create(client, {**SUPPORT, "messages": [{"role": "system", "content": "v2 {{ customer }}"}]})
        await promote(client, 1)
        r = await client.post("/admin/experiments", json={
            "name": "tone", "prompt": "support", "arms": [{"name": "control", "weight": 1, "version": 1},
                                                          {"name": "v2", "weight": 1, "version": 2, "model": "claude"}]})
        assert r.status_code == 201, r.text
        await gateway.prompts.cache.reload()
        arms: dict[str, str] = {}
        ids: dict[str, str] = {}
        for i in range(40):
            r = await chat(client, "prompt:support", prompt_variables={"customer": "A"}, user=f"u{i}")
            assert r.status_code == 200
            arm = r.headers["x-lockgate-experiment-arm"]
            assert r.headers["x-lockgate-experiment"] == "tone"
            assert r.headers["x-lockgate-prompt-version"] == ("1" if arm == "control" else "2")
            arms[f"u{i}"], ids[f"u{i}"] = arm, r.headers["x-request-id"]
        assert set(arms.values()) == {"control", "v2"}
        for i in range(10):  # sticky: the same user, the same arm
            r = await chat(client, "prompt:support", prompt_variables={"customer": "A"}, user=f"u{i}")
            assert r.headers["x-lockgate-experiment-arm"] == arms[f"u{i}"]
        r = await client.post("/v1/chat/completions", headers={"x-lockgate-session": "s1"}, json={
            "model": "prompt:support", "messages": [], "prompt_variables": {"customer": "A"}})
        session_arm = r.headers["x-lockgate-experiment-arm"]
        for _ in range(3):  # no user: the session header is the key
            r = await client.post("/v1/chat/completions", headers={"x-lockgate-session": "s1"}, json={
                "model": "prompt:support", "messages": [], "prompt_variables": {"customer": "A"}})
            assert r.headers["x-lockgate-experiment-arm"] == session_arm
        r = await chat(client, "prompt:support@1", prompt_variables={"customer": "A"})
        assert "x-lockgate-experiment" not in r.headers  # a pinned version is outside the experiment
        scores = [{"request_id": ids[f"u{i}"], "name": "helpful", "value": 1 if arms[f"u{i}"] == "v2" else 0}
                  for i in range(40)]
        assert (await client.post("/admin/scores", json={"scores": scores})).status_code == 201
        report = (await client.get("/admin/experiments/tone/report")).json()
        assert report["requests"] == 54 and report["sample_ratio"]["df"] == 1
        counts = {a["name"]: a["requests"] for a in report["arms"]}
        expected = [*arms.values(), *(arms[f"u{i}"] for i in range(10)), *[session_arm] * 4]
        assert counts == {"control": expected.count("control"), "v2": expected.count("v2")}
        helpful = {a["name"]: a["scores"][0] for a in report["arms"]}
        assert helpful["control"]["mean"] == 0 and helpful["v2"]["mean"] == 1 and helpful["v2"]["delta"] == 1
        assert json.dumps(report)  # JSON all the way down
        assert (await client.post("/admin/experiments/tone/stop")).json()["status"] == "stopped"


async def test_a_model_experiment_routes_arms_to_their_models(fake: FakeProvider, tmp_path: Path) -> None:
    async with running(fake, tmp_path) as (client, gateway):
        r = await client.post("/admin/experiments", json={
            "name": "swap", "model": "fast", "sticky": "session",
            "arms": [{"name": "mini", "weight": 1}, {"name": "haiku", "weight": 1, "model": "claude"}]})
        assert r.status_code == 201, r.text
        bad = await client.post("/admin/experiments", json={
            "name": "swap2", "model": "fast", "arms": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1, "version": 2}]})
        assert bad.status_code == 400 and "have no version" in bad.text
        await gateway.prompts.cache.reload()
        seen: dict[str, str] = {}
        for i in range(30):
            r = await client.post("/v1/chat/completions", headers={"x-lockgate-session": f"s{i}"},
                                  json={"model": "fast", "messages": [{"role": "user", "content": "hi"}]})
            assert r.status_code == 200 and r.json()["model"] == "fast"
            seen[r.headers["x-lockgate-experiment-arm"]] = fake.requests[-1].path
            assert "x-lockgate-prompt-name" not in r.headers
        assert seen == {"mini": "/v1/chat/completions", "haiku": "/v1/messages"}
        listed = (await client.get("/admin/experiments")).json()
        assert [(e["name"], e["target"], e["source"]) for e in listed] == [("swap", "model:fast", "db")]


async def test_experiments_from_the_config_file(fake: FakeProvider, tmp_path: Path) -> None:
    from lockgate.errors import ConfigError

    cfg = config(fake, tmp_path)
    cfg["experiments"] = {"cfg-swap": {"model": "fast", "arms": [{"name": "a", "weight": 3},
                                                                  {"name": "b", "weight": 1, "model": "claude"}]}}
    with pytest.raises(ConfigError) as err:
        parse_config({**cfg, "experiments": {"x": {"model": "fast", "arms": [
            {"name": "a", "weight": 1}, {"name": "b", "weight": 1, "model": "gpt-9"}]}}}, {"KEY": KEY})
    assert "experiments.x.arms[1].model: unknown model 'gpt-9'" in str(err.value.problems)
    with pytest.raises(ConfigError, match="invalid configuration"):
        parse_config({**cfg, "experiments": {"x": {"prompt": "p", "model": "fast", "arms": [
            {"name": "a", "weight": 1}, {"name": "b", "weight": 1}]}}}, {"KEY": KEY})
    async with running(fake, tmp_path, cfg=cfg) as (client, _):
        r = await client.post("/v1/chat/completions", json={"model": "fast", "user": "u1",
                                                             "messages": [{"role": "user", "content": "hi"}]})
        assert r.headers["x-lockgate-experiment"] == "cfg-swap"
        listed = (await client.get("/admin/experiments")).json()
        assert [(e["name"], e["source"]) for e in listed] == [("cfg-swap", "config")]
        stop = await client.post("/admin/experiments/cfg-swap/stop")
        assert stop.status_code == 409 and "config file" in stop.text
