"""Limits and budgets through the public surface: one `lockgate serve` (SQLite, limits in
memory), principals created with the admin API, requests made with the official SDKs.

The matrix covers every route that reaches a model (OpenAI chat completions, Anthropic
messages, embeddings) x every limit type (rpm, tpm, concurrent, budget per day and per
month) x streaming and not (embeddings do not stream), with the limit set at the key,
its user, its team or its agent (the level varies across the cases). Each case checks
that requests under the limit pass and that the one over it gets 429 with Retry-After,
in the dialect's error format, naming the principal and the limit that fired.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from tests.conftest import ADMIN_KEY, Server, gateway_config, start_server

from lockgate.testing import FakeProvider

# Priced at $0.001 a token, so a budget of a few cents fills in a few requests.
PRICED = """
[access]
refresh_interval = 0.05

[models.pchat]
routes = [ { provider = "oai", model = "gpt-4o-mini" } ]
price = { input_per_mtok = 1000, output_per_mtok = 1000 }

[models.pclaude]
routes = [ { provider = "ant", model = "claude-3-5-haiku-latest" } ]
price = { input_per_mtok = 1000, output_per_mtok = 1000 }

[models.pembed]
routes = [ { provider = "oai", model = "text-embedding-3-small" } ]
price = { input_per_mtok = 1000, output_per_mtok = 1000 }
"""
MODELS = {"chat": "pchat", "messages": "pclaude", "embeddings": "pembed"}
ROUTES = ("chat", "messages", "embeddings")
LIMIT_TYPES = ("rpm", "tpm", "concurrent", "budget_day", "budget_month")
LEVELS = ("key", "user", "team", "agent")


@dataclass(frozen=True)
class Case:
    route: str
    limit: str
    stream: bool
    level: str

    @property
    def id(self) -> str:
        return f"{self.route}-{self.limit}-{'stream' if self.stream else 'plain'}-{self.level}"


def _cases() -> list[Case]:
    cases: list[Case] = []
    for route in ROUTES:
        for limit in LIMIT_TYPES:
            for stream in (False, True) if route != "embeddings" else (False,):
                cases.append(Case(route, limit, stream, LEVELS[len(cases) % len(LEVELS)]))
    return cases


CASES = _cases()


def test_the_matrix_covers_every_route_limit_and_level() -> None:
    combos = {(c.route, c.limit, c.stream) for c in CASES}
    assert len(combos) == 2 * 5 * 2 + 5
    for limit in LIMIT_TYPES:
        assert {c.level for c in CASES if c.limit == limit} == set(LEVELS)


@pytest.fixture(scope="module")
def gw(fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(gateway_config(fake.url, PRICED), tmp_path_factory.mktemp("limits"))
    try:
        yield srv
    finally:
        srv.stop()


def admin(server: Server, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    r = httpx.request(
        method, f"{server.url}/admin{path}", json=body, headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=10
    )
    assert r.status_code < 300, r.text
    return r.json()


def wait_known(server: Server, key: str) -> None:
    """The admin change reaches the data plane within the refresh interval."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if httpx.get(f"{server.url}/v1/models", headers={"authorization": f"Bearer {key}"}).status_code == 200:
            return
        time.sleep(0.02)
    raise AssertionError("the new key never became usable")


def make_principal(server: Server, level: str, limits: dict[str, Any]) -> tuple[str, str]:
    """A fresh key whose `level` principal carries `limits`; returns (key, label of that principal)."""
    tag = uuid.uuid4().hex[:8]
    key_body: dict[str, Any] = {"name": f"k-{tag}"}
    label = ""
    if level == "key":
        key_body["limits"] = limits
    elif level == "user":
        label = f"user u-{tag}@example.com"
        admin(server, "POST", "/users", {"name": f"u-{tag}@example.com", "limits": limits})
        key_body["user"] = f"u-{tag}@example.com"
    elif level == "team":
        label = f"team t-{tag}"
        admin(server, "POST", "/teams", {"name": f"t-{tag}", "limits": limits})
        key_body["team"] = f"t-{tag}"
    else:
        label = f"agent a-{tag}"
        admin(server, "POST", "/agents", {
            "name": f"a-{tag}", "owner": "alice@example.com", "purpose": "limits e2e", "risk_tier": "low",
            "allowed_models": list(MODELS.values()), "limits": limits,
        })
        key_body["agent"] = f"a-{tag}"
    created = admin(server, "POST", "/keys", key_body)
    if level == "key":
        label = f"key {created['prefix']}"
    wait_known(server, created["key"])
    return created["key"], label


def send(server: Server, route: str, stream: bool, key: str, text: str, max_tokens: int = 5) -> None:
    """One request with the official SDK; raises the SDK's error when refused."""
    model = MODELS[route]
    if route == "messages":
        with anthropic.Anthropic(base_url=server.url, api_key=key, max_retries=0) as ac:
            msgs: Any = [{"role": "user", "content": text}]
            if stream:
                events = list(ac.messages.create(model=model, max_tokens=max_tokens, messages=msgs, stream=True))
                assert events[-1].type == "message_stop"
            else:
                assert ac.messages.create(model=model, max_tokens=max_tokens, messages=msgs).content
        return
    with openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0) as oc:
        if route == "embeddings":
            assert oc.embeddings.create(model=model, input=text).data
        elif stream:
            chunks = list(oc.chat.completions.create(
                model=model, messages=[{"role": "user", "content": text}], max_tokens=max_tokens,
                stream=True, stream_options={"include_usage": True},
            ))
            assert chunks[-1].usage is not None
        else:
            done = oc.chat.completions.create(model=model, messages=[{"role": "user", "content": text}], max_tokens=max_tokens)
            assert done.choices[0].message.content


def until_refused(server: Server, case: Case, key: str, text: str, bound: int) -> tuple[int, Exception]:
    """Send until refused; returns how many passed and the refusal."""
    for passed in range(bound):
        try:
            send(server, case.route, case.stream, key, text)
        except (openai.APIStatusError, anthropic.APIStatusError) as exc:
            return passed, exc
    raise AssertionError(f"{bound} requests passed; the limit never fired")


# what the message says about each limit, and the OpenAI error type and code
EXPECTED = {
    "rpm": ("requests per minute", "requests", "rate_limit_exceeded"),
    "tpm": ("tokens per minute", "tokens", "rate_limit_exceeded"),
    "concurrent": ("concurrent requests", "requests", "rate_limit_exceeded"),
    "budget_day": ("per day", "insufficient_quota", "budget_exceeded"),
    "budget_month": ("per month", "insufficient_quota", "budget_exceeded"),
}


def check_refusal(exc: Exception, case: Case, label: str) -> None:
    words, openai_type, code = EXPECTED[case.limit]
    if case.route == "messages":
        assert isinstance(exc, anthropic.RateLimitError), exc
        body = exc.response.json()
        assert body["type"] == "error"
        assert body["error"]["type"] == "rate_limit_error"
        message = body["error"]["message"]
    else:
        assert isinstance(exc, openai.RateLimitError), exc
        body = exc.response.json()
        assert set(body["error"]) == {"message", "type", "param", "code"}
        assert body["error"]["code"] == code
        assert body["error"]["type"] == openai_type
        message = body["error"]["message"]
    assert exc.response.status_code == 429
    retry_after = exc.response.headers.get("retry-after")
    assert retry_after is not None and int(retry_after) >= 1, exc.response.headers
    assert label in message, message
    assert words in message, message
    if case.limit.startswith("budget"):
        assert "Budget exhausted" in message


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_limit(gw: Server, fake: FakeProvider, case: Case) -> None:
    if case.limit == "rpm":
        key, label = make_principal(gw, case.level, {"rpm": 3})
        passed, exc = until_refused(gw, case, key, "hello there", bound=6)
        assert passed == 3
    elif case.limit == "tpm":
        # ~60 words: reserved ~47 prompt tokens (+ max_tokens 5), settled at ~65 real ones
        key, label = make_principal(gw, case.level, {"tpm": 150})
        passed, exc = until_refused(gw, case, key, " ".join(["word"] * 60), bound=8)
        assert passed >= 1
    elif case.limit == "concurrent":
        key, label = make_principal(gw, case.level, {"max_concurrent": 2})
        passed, exc = _concurrency(gw, fake, case, key)
    else:
        # reserved ~$0.016 (11 prompt tokens estimated + max_tokens 5), settled at ~$0.005
        field = "budget_day_usd" if case.limit == "budget_day" else "budget_month_usd"
        key, label = make_principal(gw, case.level, {field: 0.03})
        passed, exc = until_refused(gw, case, key, "hello there", bound=20)
        assert passed >= 2
    check_refusal(exc, case, label)


def _concurrency(gw: Server, fake: FakeProvider, case: Case, key: str) -> tuple[int, Exception]:
    """Two slow requests in flight hold both slots: a third is refused; once they are
    done, a request passes again."""
    fake.set_delay(0.8, chunk_gap=0.05)
    errors: list[BaseException] = []

    def hold() -> None:
        try:
            send(gw, case.route, case.stream, key, "hold a slot")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=hold) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 5
        while len(fake.requests) < 2 and time.monotonic() < deadline:  # both admitted and upstream
            time.sleep(0.01)
        assert len(fake.requests) == 2
        try:
            send(gw, case.route, case.stream, key, "one too many")
        except (openai.APIStatusError, anthropic.APIStatusError) as exc:
            refused: Exception = exc
        else:
            raise AssertionError("a third concurrent request passed")
    finally:
        for t in threads:
            t.join(10)
    assert not errors, errors
    fake.set_delay(0)
    send(gw, case.route, case.stream, key, "a slot is free again")
    return 2, refused


def test_a_request_larger_than_the_limit_is_refused_without_retry_after(gw: Server) -> None:
    key, label = make_principal(gw, "key", {"tpm": 20})
    with openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0) as oc, \
            pytest.raises(openai.RateLimitError) as info:
        oc.chat.completions.create(model="pchat", messages=[{"role": "user", "content": "hi"}], max_tokens=100)
    assert "retry-after" not in info.value.response.headers
    assert label in info.value.response.json()["error"]["message"]


def test_limits_on_several_levels_the_tightest_fires(gw: Server) -> None:
    tag = uuid.uuid4().hex[:8]
    admin(gw, "POST", "/teams", {"name": f"t-{tag}", "limits": {"rpm": 2}})
    created = admin(gw, "POST", "/keys", {"name": f"k-{tag}", "team": f"t-{tag}", "limits": {"rpm": 10}})
    other = admin(gw, "POST", "/keys", {"name": f"k2-{tag}", "team": f"t-{tag}", "limits": {"rpm": 10}})
    wait_known(gw, created["key"])
    wait_known(gw, other["key"])
    case = Case("chat", "rpm", False, "team")
    send(gw, "chat", False, created["key"], "one")
    send(gw, "chat", False, other["key"], "two")  # the team's limit is shared by its keys
    with pytest.raises(openai.RateLimitError) as info:
        send(gw, "chat", False, created["key"], "three")
    check_refusal(info.value, case, f"team t-{tag}")


def test_unlimited_keys_and_the_operator_are_not_limited(gw: Server) -> None:
    created = admin(gw, "POST", "/keys", {"name": f"free-{uuid.uuid4().hex[:8]}"})
    wait_known(gw, created["key"])
    for key in (created["key"], ADMIN_KEY):
        for _ in range(5):
            send(gw, "chat", False, key, "free")


def test_refused_requests_never_reach_the_upstream(gw: Server, fake: FakeProvider) -> None:
    key, _ = make_principal(gw, "key", {"rpm": 1})
    fake.reset()
    send(gw, "embeddings", False, key, "once")
    with pytest.raises(openai.RateLimitError):
        send(gw, "embeddings", False, key, "twice")
    assert len(fake.requests) == 1


@pytest.mark.parametrize("how", ["client-disconnect", "kill-switch"])
def test_a_stream_ended_early_frees_its_slot(gw: Server, fake: FakeProvider, how: str) -> None:
    key, label = make_principal(gw, "key", {"max_concurrent": 1})
    fake.set_delay(0, chunk_gap=0.1)
    body = {"model": "pchat", "messages": [{"role": "user", "content": " ".join(["w"] * 50)}], "stream": True}
    auth = {"authorization": f"Bearer {key}"}
    with httpx.Client(base_url=gw.url, timeout=10) as client:
        with client.stream("POST", "/v1/chat/completions", json=body, headers=auth) as r:
            assert r.status_code == 200
            lines = r.iter_lines()
            assert next(lines).startswith("data: ")
            busy = client.post("/v1/chat/completions", json={**body, "stream": False}, headers=auth)
            assert busy.status_code == 429 and "Concurrency limit" in busy.json()["error"]["message"]
            if how == "kill-switch":
                switch = admin(gw, "POST", "/kill", {"scope": "key", "target": label.split()[1], "reason": "e2e"})
                tail = list(lines)
                assert any("kill_switch_engaged" in line for line in tail), tail
                admin(gw, "DELETE", f"/kill/{switch['id']}")
        fake.set_delay(0)
        deadline = time.monotonic() + 3
        while True:
            again = client.post("/v1/chat/completions", json={**body, "stream": False}, headers=auth)
            if again.status_code == 200:
                break
            assert again.status_code in (403, 429), again.text  # the lift or the slot on its way
            assert time.monotonic() < deadline, f"the slot was never freed: {again.text}"
            time.sleep(0.05)


def test_health_and_metrics_without_redis(gw: Server) -> None:
    assert httpx.get(gw.url + "/healthz").json() == {"status": "ok", "limits": "up", "control_plane": "up", "audit": "up"}
    metrics = httpx.get(gw.url + "/metrics").text
    assert "\nlockgate_limiter_up 1.0\n" in metrics
    assert "\nlockgate_control_plane_up 1.0\n" in metrics


def test_operator_limits_apply_when_configured(fake: FakeProvider, tmp_path: Path) -> None:
    """The admin key is unlimited unless [access] operator_limits says otherwise."""
    extra = "\n[access]\noperator_limits = { rpm = 2 }\n"
    server = start_server(gateway_config(fake.url).replace("[routing]", extra + "\n[routing]", 1), tmp_path)
    try:
        with openai.OpenAI(base_url=server.url + "/v1", api_key=ADMIN_KEY, max_retries=0) as client:
            for _ in range(2):
                client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "hi"}])
            with pytest.raises(openai.RateLimitError) as info:
                client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "hi"}])
        assert "operator admin" in str(info.value)
    finally:
        server.stop()
