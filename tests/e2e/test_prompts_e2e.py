"""The prompt registry end to end (docs/prompts.md): a real `lockgate serve` on SQLite,
the CLI (`lockgate prompts ...`, `lockgate experiments ...`) as subprocesses, the
official OpenAI SDK, and the fake provider answering by what the prompt rendered, so
an answer tells which version was served.

Registry changes reach the gateway within `access.refresh_interval` (0.1 s here) and
experiment outcomes are written behind (`prompts.flush_interval`, 0.2 s): tests poll
for both with a bound, never a fixed sleep.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from tests.conftest import ADMIN_KEY, start_server
from tests.e2e.access_support import Backend, Gateway, access_config, eventually

from lockgate.prompts.stats import chi_square_p
from lockgate.testing import FakeProvider

EXTRA = """
[prompts]
dirs = ["prompts"]
flush_interval = 0.2

[gates.quality]
prompts = ["gated"]
dataset = "golden@1"
metrics = { exact_match = 0.8 }
"""

SUPPORT = """\
description = "First answer to a support ticket"
model = "fast"

[params]
temperature = 0.2

[variables]
customer = "string"
tier = {{ type = "string", default = "free" }}

[[messages]]
role = "system"
content = \"\"\"
You are a support agent. Style: {style}.
The customer is {{{{ customer }}}} on the {{{{ tier }}}} plan.\"\"\"
"""

SUMMARY = """\
kind = "text"
model = "fast"
variables = ["document"]
template = "Summarise in one line: {{ document }}"
"""


def answer(body: Any) -> str:
    """The fake's reply: the style and customer the system message was rendered with."""
    system = " ".join(m["content"] for m in body["messages"] if m["role"] == "system" and isinstance(m["content"], str))
    style = re.search(r"Style: (\w+)", system)
    customer = re.search(r"customer is (\w+) on the (\w+) plan", system)
    if style is None or customer is None:
        return "no prompt"
    return f"[{style.group(1)}] hello {customer.group(1)} ({customer.group(2)})"


@pytest.fixture(scope="module")
def gw(fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("prompts-gw")
    backend = Backend("sqlite", f"sqlite:///{tmp / 'lockgate.db'}", None)
    server = start_server(access_config(fake.url, backend) + EXTRA, tmp)
    gateway = Gateway(server, tmp / "lockgate.toml", backend)
    yield gateway
    gateway.close()


@pytest.fixture
def client(gw: Gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gw.url + "/v1", api_key=ADMIN_KEY, max_retries=0) as c:
        yield c


def write(folder: Path, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.toml").write_text(text)


def ok(result: Any) -> str:
    assert result.returncode == 0, (result.args, result.stdout, result.stderr)
    return str(result.stdout)


def ask(client: openai.OpenAI, model: str, version: int, **variables: Any) -> Any:
    """Poll until the gateway serves `version` of the prompt (a change reached it)."""

    def check() -> Any:
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": "where is my order?"}],
            extra_body={"prompt_variables": variables},
        )
        return raw if raw.headers.get("x-lockgate-prompt-version") == str(version) else None

    return eventually(check, what=f"{model} serving version {version}")


def test_push_promote_and_serve_by_label(gw: Gateway, client: openai.OpenAI, fake: FakeProvider) -> None:
    fake.reply_with(answer)
    folder = gw.config.parent / "prompts"
    write(folder, "support-reply", SUPPORT.format(style="formal"))
    write(folder, "summary", SUMMARY)
    assert "prompts: 2 created, 0 unchanged" in ok(gw.cli("prompts", "push", "-m", "initial"))
    assert "prompts: 0 created, 2 unchanged" in ok(gw.cli("prompts", "push"))  # idempotent
    write(folder, "support-reply", SUPPORT.format(style="friendly"))
    out = ok(gw.cli("prompts", "push", str(folder), "-m", "friendlier", "--author", "ada"))
    assert "created   support-reply version 2" in out and "unchanged summary version 1" in out
    listed, diff, same = gw.cli_many(("prompts", "list", "--json"), ("prompts", "diff", "support-reply", "1", "2"),
                                     ("prompts", "diff", "support-reply", "2", "latest"))
    assert [(p["name"], p["latest"]) for p in json.loads(ok(listed))] == [("summary", 1), ("support-reply", 2)]
    assert "-You are a support agent. Style: formal." in ok(diff) and "+You are a support agent. Style: friendly." in ok(diff)
    assert "same content" in ok(same)

    ok(gw.cli("prompts", "promote", "support-reply", "1", "--label", "production"))
    raw = ask(client, "prompt:support-reply@production", 1, customer="Ada")
    assert raw.headers["x-lockgate-prompt-name"] == "support-reply"
    completion = raw.parse()
    assert completion.choices[0].message.content == "[formal] hello Ada (free)"
    assert completion.model == "prompt:support-reply@production"
    upstream = fake.requests[-1].json
    assert upstream["model"] == "gpt-4o-mini" and upstream["temperature"] == 0.2
    assert upstream["messages"][-1] == {"role": "user", "content": "where is my order?"}  # appended after the template

    out = ok(gw.cli("prompts", "promote", "support-reply", "2", "--label", "production", "--actor", "ada"))
    assert "support-reply@production: 1 -> 2" in out
    raw = ask(client, "prompt:support-reply@production", 2, customer="Bo", tier="pro")
    assert raw.parse().choices[0].message.content == "[friendly] hello Bo (pro)"
    raw = ask(client, "prompt:support-reply@1", 1, customer="Cy")  # a version by number
    assert raw.parse().choices[0].message.content == "[formal] hello Cy (free)"
    stream = client.chat.completions.create(model="prompt:support-reply", messages=[], stream=True,
                                            extra_body={"prompt_variables": {"customer": "Di"}})
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "[friendly] hello Di (free)"

    pulled = gw.config.parent / "pulled"
    shown, labels, pull = gw.cli_many(("prompts", "show", "support-reply", "production"),
                                      ("prompts", "label", "list", "support-reply", "--json"), ("prompts", "pull", str(pulled)))
    assert "# support-reply version 2" in ok(shown) and "labels: production" in ok(shown) and "friendlier" in ok(shown)
    history = json.loads(ok(labels))
    assert history["labels"] == {"production": 2}
    latest = history["history"][0]
    assert (latest["previous_version"], latest["version"], latest["actor"]) == (1, 2, "ada")
    ok(pull)
    assert sorted(p.name for p in pulled.iterdir()) == ["summary.toml", "support-reply.toml"]
    assert f"{pulled}: 0 created, 2 unchanged" in ok(gw.cli("prompts", "push", str(pulled)))


def test_missing_or_wrong_variables_are_a_clear_400(gw: Gateway, client: openai.OpenAI) -> None:
    write(gw.config.parent / "vars", "greeting", SUPPORT.format(style="plain"))
    ok(gw.cli("prompts", "push", str(gw.config.parent / "vars")))
    ok(gw.cli("prompts", "promote", "greeting", "1", "--label", "production"))
    ask(client, "prompt:greeting", 1, customer="Ada")
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="prompt:greeting", messages=[], extra_body={"prompt_variables": {}})
    body: Any = err.value.body
    assert err.value.status_code == 400 and body["param"] == "prompt_variables"
    assert "missing customer" in body["message"] and "Declared variables: customer (string), tier (string)" in body["message"]
    with pytest.raises(openai.BadRequestError, match="tier must be of type string, got integer"):
        client.chat.completions.create(model="prompt:greeting", messages=[],
                                       extra_body={"prompt_variables": {"customer": "Ada", "tier": 3}})
    with pytest.raises(openai.NotFoundError, match="has no label `staging`"):
        client.chat.completions.create(model="prompt:greeting@staging", messages=[],
                                       extra_body={"prompt_variables": {"customer": "Ada"}})


def test_a_failing_gate_blocks_promotion_until_overridden(gw: Gateway, client: openai.OpenAI) -> None:
    write(gw.config.parent / "gated", "gated", SUPPORT.format(style="careful"))
    ok(gw.cli("prompts", "push", str(gw.config.parent / "gated")))
    refused, staging = gw.cli_many(("prompts", "promote", "gated", "1", "--label", "production"),
                                   ("prompts", "promote", "gated", "1", "--label", "staging"))  # no gate covers staging
    assert refused.returncode == 1, (refused.stdout, refused.stderr)
    assert "quality gate failed" in refused.stderr and "golden@1" in refused.stderr
    ok(staging)
    r = gw.admin("POST", "/prompts/gated/labels/production", json={"version": 1})
    assert r.status_code == 409 and r.json()["error"]["code"] == "gate_failed"
    out = ok(gw.cli("prompts", "promote", "gated", "1", "--label", "production", "--override-reason", "demo day"))
    assert "FAILED, overridden: demo day" in out
    events = gw.admin_ok("GET", "/prompts/gated/labels")["history"]
    assert (events[0]["label"], events[0]["reason"], events[0]["overridden"]) == ("production", "demo day", True)
    ledger = gw.admin_ok("GET", "/audit", params={"type": "prompt.promote"})["data"]
    assert any(e.get("reason") == "demo day" or e.get("data", {}).get("override_reason") == "demo day" for e in ledger), ledger
    ask(client, "prompt:gated@production", 1, customer="Ada")


def test_an_experiment_splits_by_weight_and_sticks_per_user(gw: Gateway, fake: FakeProvider) -> None:
    fake.reply_with(answer)
    folder = gw.config.parent / "exp"
    write(folder, "reply", SUPPORT.format(style="plain"))
    ok(gw.cli("prompts", "push", str(folder)))
    write(folder, "reply", SUPPORT.format(style="warm"))
    ok(gw.cli("prompts", "push", str(folder)))
    ok(gw.cli("prompts", "promote", "reply", "1", "--label", "production"))
    ok(gw.cli("experiments", "create", "tone", "--prompt", "reply", "--arm", "plain:70:version=1",
              "--arm", "warm:30:version=2"))
    listed = ok(gw.cli("experiments", "list"))
    assert "tone" in listed and "prompt:reply@production" in listed and "plain=70, warm=30" in listed

    def call(http: httpx.Client, user: str) -> tuple[str, str, str]:
        r = http.post("/v1/chat/completions", json={
            "model": "prompt:reply", "messages": [], "user": user, "prompt_variables": {"customer": "Ada"}})
        assert r.status_code == 200, r.text
        return r.headers["x-lockgate-experiment-arm"], r.json()["choices"][0]["message"]["content"], r.headers["x-request-id"]

    with httpx.Client(base_url=gw.url, headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=30) as http:
        eventually(lambda: "x-lockgate-experiment-arm" in http.post("/v1/chat/completions", json={
            "model": "prompt:reply", "messages": [], "prompt_variables": {"customer": "Ada"}}).headers,
            what="the experiment reaching the gateway")
        users = [f"user-{i}" for i in range(1000)]
        with ThreadPoolExecutor(4) as pool:
            first = list(pool.map(lambda u: call(http, u), users))
            again = list(pool.map(lambda u: call(http, u), users[:100]))
    arms = Counter(arm for arm, _, _ in first)
    assert abs(arms["plain"] / 1000 - 0.7) < 0.05 and abs(arms["warm"] / 1000 - 0.3) < 0.05
    statistic = (arms["plain"] - 700) ** 2 / 700 + (arms["warm"] - 300) ** 2 / 300
    assert chi_square_p(statistic, 1) > 0.001
    assert [a for a, _, _ in again] == [a for a, _, _ in first[:100]]  # sticky per user
    for arm, text, _ in first:  # each arm is served its own version
        assert text == ("[plain] hello Ada (free)" if arm == "plain" else "[warm] hello Ada (free)")

    scores = [{"request_id": rid, "name": "helpful", "value": 1.0 if arm == "warm" else 0.5} for arm, _, rid in first[:200]]
    gw.admin_ok("POST", "/scores", status=201, json={"scores": scores})

    def written() -> bool:  # the outcomes are written behind; the CLI reads the database
        return gw.admin_ok("GET", "/experiments/tone/report")["requests"] >= 1101

    eventually(written, timeout=20, what="the outcomes written behind")
    as_json, as_text = gw.cli_many(("experiments", "report", "tone", "--json"), ("experiments", "report", "tone"))
    data = json.loads(ok(as_json))
    assert data["requests"] == 1101  # the probe that saw the experiment arrive, 1000 users, 100 again
    by_arm = {a["name"]: a for a in data["arms"]}
    assert by_arm["plain"]["requests"] + by_arm["warm"]["requests"] == data["requests"]
    assert data["sample_ratio"]["mismatch"] is False
    assert by_arm["warm"]["scores"][0]["mean"] == 1.0 and by_arm["plain"]["scores"][0]["mean"] == 0.5
    assert by_arm["plain"]["p50_ms"] is not None and by_arm["plain"]["errors"] == 0
    text = ok(as_text)
    assert "sample ratio: ok" in text and "helpful" in text and "P95 MS" in text
    assert "stopped" in ok(gw.cli("experiments", "stop", "tone"))
