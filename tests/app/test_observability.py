"""The whole app in process: traces, metrics, logs, local token counting."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lockgate.app import create_app
from lockgate.config.loader import parse_config
from lockgate.monitor.logs import JsonFormatter
from lockgate.testing import FakeProvider

KEY = "sk-app-test"


def config(fake: FakeProvider, capture: bool = False) -> dict[str, object]:
    return {
        "gateway": {"admin_key": "env::KEY"},
        "observability": {"capture_content": capture},
        "providers": {"oai": {"type": "openai", "base_url": fake.url + "/v1"},
                      "ant": {"type": "anthropic", "base_url": fake.url}},
        "models": {
            "fast": {"routes": [{"provider": "oai", "model": "gpt-4o-mini"}],
                     "price": {"input_per_mtok": 1000000.0, "output_per_mtok": 2000000.0}},
            "claude": {"routes": [{"provider": "ant", "model": "claude-3-5-haiku-latest"}]},
        },
    }


@asynccontextmanager
async def client_for(cfg: dict[str, object], exporter: InMemorySpanExporter | None = None) -> AsyncIterator[httpx.AsyncClient]:
    loaded = parse_config(cfg, {"KEY": KEY})
    app = create_app(loaded, env={}, span_exporter=exporter)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw",
                                     headers={"authorization": f"Bearer {KEY}"}) as client:
            yield client


CHAT = {"model": "fast", "messages": [{"role": "user", "content": "one two three"}], "max_tokens": 20}


async def test_span_follows_genai_conventions(fake: FakeProvider) -> None:
    exporter = InMemorySpanExporter()
    async with client_for(config(fake), exporter) as client:
        r = await client.post("/v1/chat/completions", json=CHAT)
    assert r.status_code == 200
    (span,) = exporter.get_finished_spans()
    attrs = dict(span.attributes or {})
    assert span.name == "chat fast"
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.model"] == "fast"
    assert attrs["gen_ai.response.model"] == "gpt-4o-mini"
    assert attrs["gen_ai.request.max_tokens"] == 20
    assert attrs["gen_ai.usage.input_tokens"] == r.json()["usage"]["prompt_tokens"]
    assert attrs["gen_ai.usage.output_tokens"] == r.json()["usage"]["completion_tokens"]
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["lockgate.request_id"] == r.headers["x-request-id"]
    assert "gen_ai.input.messages" not in attrs  # content only when opted in


async def test_content_capture_is_opt_in(fake: FakeProvider) -> None:
    exporter = InMemorySpanExporter()
    async with client_for(config(fake, capture=True), exporter) as client:
        await client.post("/v1/chat/completions", json=CHAT)
    attrs = dict(exporter.get_finished_spans()[0].attributes or {})
    assert "one two three" in str(attrs["gen_ai.input.messages"])
    assert "one two three" in str(attrs["gen_ai.output.messages"])


async def test_error_span_and_metrics(fake: FakeProvider) -> None:
    exporter = InMemorySpanExporter()
    fake.fail_next(10, status=500)
    async with client_for(config(fake), exporter) as client:
        r = await client.post("/v1/chat/completions", json=CHAT)
        metrics = (await client.get("/metrics")).text
    assert r.status_code == 502
    (span,) = exporter.get_finished_spans()
    assert dict(span.attributes or {})["error.type"] == "upstream_error"
    assert 'lockgate_requests_total{endpoint="chat",model="fast",provider="",route="",status="502"} 1.0' in metrics
    assert 'lockgate_upstream_attempts_total{model="fast",outcome="upstream_error",provider="oai",route="gpt-4o-mini"} 3.0' in metrics
    assert 'lockgate_retries_total{allowed="true",model="fast",provider="oai",route="gpt-4o-mini"} 2.0' in metrics


async def test_tokens_cost_and_ttft_metrics(fake: FakeProvider) -> None:
    async with client_for(config(fake)) as client:
        r = await client.post("/v1/chat/completions", json=CHAT)
        usage = r.json()["usage"]
        s = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
        assert s.status_code == 200
        metrics = (await client.get("/metrics")).text
    expected_cost = usage["prompt_tokens"] * 1.0 + usage["completion_tokens"] * 2.0
    assert 'lockgate_tokens_total{model="fast",provider="oai",type="input"}' in metrics
    line = next(x for x in metrics.splitlines() if x.startswith('lockgate_cost_usd_total{model="fast"'))
    # two requests: the JSON one and the streamed one (same text, same usage)
    assert float(line.split()[-1]) == pytest.approx(2 * expected_cost)
    assert 'lockgate_time_to_first_token_seconds_count{model="fast",provider="oai"} 1.0' in metrics
    assert 'lockgate_circuit_breaker_state{model="fast",provider="oai",route="gpt-4o-mini"} 0.0' in metrics


async def test_stream_without_usage_is_counted_locally(fake: FakeProvider) -> None:
    # An OpenAI-compatible upstream that ignores stream_options sends no usage chunk.
    fake.omit_stream_usage(True)
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    async with client_for(config(fake)) as client:
        r = await client.post("/v1/chat/completions", json=body)
    frames = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: {")]
    usage = frames[-1]["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0


async def test_access_log_carries_request_id_and_no_secrets(
    fake: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lockgate")
    logging.getLogger("lockgate").propagate = True
    async with client_for(config(fake)) as client:
        r = await client.post("/v1/chat/completions", json={**CHAT, "messages": [{"role": "user", "content": "my-secret-prompt"}]})
    records = [rec for rec in caplog.records if rec.name == "lockgate.access"]
    assert len(records) == 1
    line = JsonFormatter().format(records[0])
    entry = json.loads(line)
    assert entry["request_id"] == r.headers["x-request-id"]
    assert entry["model"] == "fast" and entry["status"] == 200 and entry["provider"] == "oai"
    assert KEY not in line and "my-secret-prompt" not in line
