"""Identity and control end to end (docs/access.md): a real `lockgate serve` on SQLite
and on PostgreSQL with Redis, driven by the official OpenAI and Anthropic SDKs (the
gateway), httpx (the admin API) and the CLI, against the fake provider.

One gateway per backend and module; names are unique within a module, so tests do not
depend on each other's records. Changes reach the gateway within
`access.refresh_interval` (0.1 s here; at once with Redis) and usage is written behind
every ~2 s: tests poll for both with a bound, never a fixed sleep.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from tests.conftest import ADMIN_KEY
from tests.e2e.access_support import (
    BACKENDS,
    MESSAGES,
    Backend,
    Gateway,
    access_config,
    eventually,
    gateways,
    open_backend,
)

from lockgate.testing import FakeProvider

USER_POLICY = """
// High-risk agents may not use the `azure` model, whatever their baseline says.
@id("no-x-for-high-risk")
forbid (
  principal,
  action == Lockgate::Action::"invoke_model",
  resource == Lockgate::Model::"azure"
)
when { context has agent && context.agent.risk_tier == "high" };
"""


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    with open_backend(request.param, tmp_path_factory.mktemp(f"db-{request.param}")) as b:
        yield b


@pytest.fixture(scope="module")
def gws(fake: FakeProvider, backend: Backend,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Gateway]]:
    """Three gateways on one control plane: `main` with a user policy file, `flag` that
    only flags shadow agents, `strict` that requires every key to be an agent's."""
    specs = [
        {"tmp": tmp_path_factory.mktemp("gw"), "access": 'policy_files = ["policies/user.cedar"]',
         "files": {"policies/user.cedar": USER_POLICY}},
        {"tmp": tmp_path_factory.mktemp("gw-flag"), "access": 'shadow_agents = "flag"'},
        {"tmp": tmp_path_factory.mktemp("gw-strict"), "access": "require_agent = true"},
    ]
    with gateways(fake.url, backend, specs) as (main, flag, strict):
        yield {"main": main, "flag": flag, "strict": strict}


@pytest.fixture(scope="module")
def gw(gws: dict[str, Gateway]) -> Gateway:
    return gws["main"]


@pytest.fixture(scope="module")
def gw_flag(gws: dict[str, Gateway]) -> Gateway:
    return gws["flag"]


@pytest.fixture(scope="module")
def gw_strict(gws: dict[str, Gateway]) -> Gateway:
    return gws["strict"]


def error_of(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, f"wanted {status}, got {r.status_code}: {r.text}"
    err = r.json()["error"]
    assert isinstance(err["message"], str) and err["message"]
    return err


def cli_json(gw: Gateway, *args: str) -> Any:
    r = gw.cli(*args, "--json")
    assert r.returncode == 0, f"lockgate {' '.join(args)}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return json.loads(r.stdout)


# --- 1. keys ---------------------------------------------------------------------------


def test_a_key_is_shown_once_and_never_again(gw: Gateway) -> None:
    secret, created = gw.key("shown-once", allowed_models=["fast"])
    assert secret.startswith("lg-") and secret.startswith(created["prefix"]) and len(secret) > 30
    assert "key_hash" not in created
    digest = hashlib.sha256(secret.encode()).hexdigest()
    for path in ("/keys", f"/keys/{created['prefix']}", f"/keys/{created['id']}"):
        r = gw.admin("GET", path)
        assert r.status_code == 200, r.text
        assert secret not in r.text and digest not in r.text and "key_hash" not in r.text
        rows = r.json() if isinstance(r.json(), list) else [r.json()]
        assert rows and all("key" not in row for row in rows)
        assert created["prefix"] in {row["prefix"] for row in rows}


def test_a_key_works_with_both_sdks_within_its_model_list(gw: Gateway) -> None:
    secret, _ = gw.key("sdk-key", allowed_models=["fast", "claude"])
    gw.wait_status(secret, "fast", 200)
    with openai.OpenAI(base_url=gw.url + "/v1", api_key=secret, max_retries=0) as client:
        completion = client.chat.completions.create(model="fast", messages=MESSAGES, max_tokens=20)  # type: ignore[arg-type]
        assert "hello" in (completion.choices[0].message.content or "")
        with pytest.raises(openai.PermissionDeniedError) as denied:
            client.chat.completions.create(model="azure", messages=MESSAGES, max_tokens=20)  # type: ignore[arg-type]
    err = denied.value.response.json()["error"]
    assert denied.value.status_code == 403 and err["code"] == "policy_denied"
    assert "azure" in err["message"]
    with anthropic.Anthropic(base_url=gw.url, api_key=secret, max_retries=0) as aclient:  # x-api-key
        message = aclient.messages.create(model="claude", max_tokens=20, messages=MESSAGES)  # type: ignore[arg-type]
        assert message.content and "hello" in message.content[0].text  # type: ignore[union-attr]
        with pytest.raises(anthropic.PermissionDeniedError) as adenied:
            aclient.messages.create(model="azure", max_tokens=20, messages=MESSAGES)  # type: ignore[arg-type]
    assert adenied.value.response.json()["error"]["type"] == "permission_error"


def test_a_revoked_key_gets_401(gw: Gateway) -> None:
    secret, created = gw.key("to-revoke")
    gw.wait_status(secret, "fast", 200)
    revoked = gw.admin_ok("DELETE", f"/keys/{created['prefix']}")
    assert revoked["revoked_at"] and revoked["prefix"] == created["prefix"]
    err = error_of(gw.wait_status(secret, "fast", 401), 401)
    assert err["type"] == "authentication_error"
    with openai.OpenAI(base_url=gw.url + "/v1", api_key=secret, max_retries=0) as client, \
            pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="fast", messages=MESSAGES)  # type: ignore[arg-type]


def test_an_expired_key_gets_401(gw: Gateway) -> None:
    secret, created = gw.key("short-lived", expires_in_days=0.00002)  # ~1.7 s
    expires = datetime.fromisoformat(created["expires_at"])
    gw.wait_status(secret, "fast", 200)
    err = error_of(gw.wait_status(secret, "fast", 401, timeout=8), 401)
    assert "expired" in err["message"] and created["prefix"] in err["message"]
    assert datetime.fromisoformat(gw.admin_ok("GET", f"/keys/{created['prefix']}")["expires_at"]) == expires


def test_key_lifecycle_through_the_cli(gw: Gateway) -> None:
    created = cli_json(gw, "keys", "create", "cli-key", "--models", "fast", "--expires-days", "30")
    secret = created["key"]
    assert secret.startswith(created["prefix"]) and created["allowed_models"] == ["fast"]
    assert created["expires_at"]
    gw.wait_status(secret, "fast", 200)
    assert error_of(gw.chat(secret, "claude"), 403)["code"] == "policy_denied"
    listing, revoked, missing = gw.cli_many(
        ("keys", "list", "--json"), ("keys", "revoke", created["prefix"], "--json"), ("keys", "revoke", "lg-nosuchkey"),
    )
    assert listing.returncode == 0, listing.stderr
    assert secret not in listing.stdout and hashlib.sha256(secret.encode()).hexdigest() not in listing.stdout
    assert created["prefix"] in {k["prefix"] for k in json.loads(listing.stdout)}
    assert revoked.returncode == 0, revoked.stderr
    assert json.loads(revoked.stdout)["revoked_at"]
    gw.wait_status(secret, "fast", 401)
    assert missing.returncode == 2 and "lg-nosuchkey" in missing.stderr


# --- 2. agents -------------------------------------------------------------------------


def test_agent_lifecycle(gw: Gateway) -> None:
    agent = gw.agent("support-bot", ["fast"], risk="medium", allowed_tools=["crm/lookup"])
    assert agent["status"] == "active" and agent["allowed_models"] == ["fast"]
    secret, key = gw.key("support-bot-key", agent="support-bot")
    assert key["agent_id"] == agent["id"]
    gw.wait_status(secret, "fast", 200)
    err = error_of(gw.chat(secret, "claude"), 403)
    assert err["code"] == "policy_denied" and "lockgate.default.agent-baseline" in err["message"]

    status = gw.admin_ok("POST", "/agents/support-bot/status", json={"status": "suspended"})
    assert status["status"] == "suspended"
    err = error_of(gw.wait_status(secret, "fast", 403), 403)
    assert "lockgate.default.agent-not-active" in err["message"]
    gw.admin_ok("POST", f"/agents/{agent['id']}/status", json={"status": "active"})
    gw.wait_status(secret, "fast", 200)

    gw.admin_ok("POST", "/agents/support-bot/status", json={"status": "decommissioned"})
    gw.wait_status(secret, "fast", 401)
    assert gw.admin_ok("GET", f"/keys/{key['prefix']}")["revoked_at"]
    assert gw.admin_ok("GET", "/agents/support-bot")["status"] == "decommissioned"
    # Decommissioning is final.
    assert error_of(gw.admin("POST", "/agents/support-bot/status", json={"status": "active"}), 409)


def test_agent_lifecycle_through_the_cli(gw: Gateway) -> None:
    registered = cli_json(gw, "agents", "register", "cli-bot", "--owner", "bob@acme.example",
                          "--purpose", "answers tickets", "--risk", "low", "--models", "fast")
    assert registered["status"] == "active" and registered["allowed_models"] == ["fast"]
    secret, _ = gw.key("cli-bot-key", agent="cli-bot")
    gw.wait_status(secret, "fast", 200)
    assert cli_json(gw, "agents", "suspend", "cli-bot")["status"] == "suspended"
    gw.wait_status(secret, "fast", 403)
    assert cli_json(gw, "agents", "activate", "cli-bot")["status"] == "active"
    gw.wait_status(secret, "fast", 200)


def test_inventory_shows_requests_and_spend(gw: Gateway) -> None:
    gw.agent("counted-bot", ["fast"])
    secret, key = gw.key("counted-key", agent="counted-bot")
    gw.wait_status(secret, "fast", 200)  # the first counted request
    with openai.OpenAI(base_url=gw.url + "/v1", api_key=secret, max_retries=0) as client:
        for _ in range(2):
            client.chat.completions.create(model="fast", messages=MESSAGES, max_tokens=20)  # type: ignore[arg-type]

    def row() -> dict[str, Any] | None:
        rows = {a["name"]: a for a in gw.admin_ok("GET", "/agents")}
        found = rows.get("counted-bot")
        return found if found and found["requests"] >= 3 else None

    api = eventually(row, timeout=10, what="the inventory to count 3 requests")
    assert api["requests"] == 3 and api["spend_usd"] > 0 and api["tokens"] > 0
    assert api["last_active_day"] and api["owner"] == "alice@acme.example"
    assert gw.admin_ok("GET", f"/keys/{key['prefix']}")["last_used_at"]  # written behind with the usage
    cli = {a["name"]: a for a in cli_json(gw, "agents", "list")}["counted-bot"]
    assert cli["requests"] == 3 and cli["spend_usd"] == pytest.approx(api["spend_usd"])
    assert cli["last_seen_at"] and cli["status"] == "active"


# --- 3. shadow agents ------------------------------------------------------------------


def _shadow(gw: Gateway, name: str, count: int) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        rows = {s["name"]: s for s in gw.admin_ok("GET", "/agents/shadow")}
        found = rows.get(name)
        return found if found and found["count"] >= count else None

    return eventually(find, timeout=10, what=f"shadow agent {name} seen {count} times")


def test_an_unknown_agent_is_refused_or_flagged_and_recorded(gw: Gateway, gw_flag: Gateway) -> None:
    secret, created = gw.key("ghost-caller")
    gw.wait_status(secret, "fast", 200)
    gw_flag.wait_status(secret, "fast", 200)
    for _ in range(2):
        err = error_of(gw.chat(secret, "fast", {"x-lockgate-agent": "ghost"}), 403)
        assert err["code"] == "unknown_agent" and "ghost" in err["message"]
    with anthropic.Anthropic(base_url=gw.url, api_key=secret, max_retries=0,
                             default_headers={"x-lockgate-agent": "ghost"}) as client, \
            pytest.raises(anthropic.PermissionDeniedError):
        client.messages.create(model="claude", max_tokens=20, messages=MESSAGES)  # type: ignore[arg-type]
    # With access.shadow_agents = "flag" the request goes through, and is still recorded
    # (both gateways share the control plane).
    r = gw_flag.chat(secret, "fast", {"x-lockgate-agent": "phantom"})
    assert r.status_code == 200, r.text
    assert gw_flag.chat(secret, "fast", {"x-lockgate-delegation": "agent:phantom-planner"}).status_code == 200

    seen = _shadow(gw, "ghost", 3)
    assert seen["count"] == 3 and seen["last_key_prefix"] == created["prefix"]
    assert datetime.fromisoformat(seen["first_seen"]) <= datetime.fromisoformat(seen["last_seen"])
    assert _shadow(gw, "phantom", 1)["count"] == 1
    assert _shadow(gw, "phantom-planner", 1)["count"] == 1
    cli = {s["name"]: s for s in cli_json(gw, "agents", "shadow")}
    assert cli["ghost"]["count"] == 3 and cli["ghost"]["first_seen"] and cli["ghost"]["last_seen"]
    assert cli["phantom"]["count"] == 1


def test_require_agent_refuses_an_unbound_key(gw: Gateway, gw_strict: Gateway) -> None:
    gw.agent("strict-bot", ["fast"])
    unbound, _ = gw.key("strict-unbound")
    bound, _ = gw.key("strict-bound", agent="strict-bot")
    gw.wait_status(unbound, "fast", 200)  # the lenient gateway lets it through
    err = error_of(gw_strict.wait_status(unbound, "fast", 403), 403)
    assert err["code"] == "unknown_agent"
    gw_strict.wait_status(bound, "fast", 200)
    # ... and an unbound key naming a registered agent acts as that agent.
    assert gw_strict.chat(unbound, "fast", {"x-lockgate-agent": "strict-bot"}).status_code == 200
    assert gw_strict.chat(ADMIN_KEY, "fast").status_code == 200  # the operator is not an agent


# --- 4. delegation ---------------------------------------------------------------------


def _access_log(gw: Gateway, request_id: str) -> dict[str, Any] | None:
    for raw in gw.server.logs().splitlines():
        if request_id in raw and raw.startswith("{"):
            line = json.loads(raw)
            if line.get("request_id") == request_id and line.get("msg") == "request":
                return line
    return None



def test_delegation_chain(gw: Gateway) -> None:
    gw.agent("planner", ["fast"])
    gw.agent("coder", ["fast"])
    secret, _ = gw.key("coder-key", agent="coder")
    gw.wait_status(secret, "fast", 200)
    ok = gw.chat(secret, "fast", {"x-lockgate-delegation": "user:alice,agent:planner",
                                  "x-request-id": "e2e-delegation-1"})
    assert ok.status_code == 200, ok.text
    # The chain is recorded with the request (the access log), with the agent and the decision.
    line = eventually(lambda: _access_log(gw, "e2e-delegation-1"), timeout=5, what="the access log line")
    assert line["delegation"] == ["user:alice", "agent:planner"] and line["agent"] == "coder"
    assert line["policy"] == {"decision": "allow", "policies": ["lockgate.default.key-model-allowlist"]}
    err = error_of(gw.chat(secret, "fast", {"x-lockgate-delegation": "user:alice,agent:rogue"}), 403)
    assert err["code"] == "unknown_agent" and "rogue" in err["message"]
    assert error_of(gw.chat(secret, "fast", {"x-lockgate-delegation": "boss"}), 403)
    # A kill switch on any hop stops the request.
    switch = gw.admin_ok("POST", "/kill", status=201,
                         json={"scope": "agent", "target": "planner", "reason": "e2e: stop the planner"})
    err = error_of(gw.wait_status(secret, "fast", 403,
                                  headers={"x-lockgate-delegation": "user:alice,agent:planner"}), 403)
    assert err["code"] == "kill_switch_engaged" and "stop the planner" in err["message"]
    assert gw.chat(secret, "fast").status_code == 200  # without the planner in the chain
    gw.admin_ok("DELETE", f"/kill/{switch['id']}")
    gw.wait_status(secret, "fast", 200, headers={"x-lockgate-delegation": "user:alice,agent:planner"})


# --- 5. grants -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def researcher(gw: Gateway) -> str:
    """An agent with `fast` and `claude` in its baseline; its own key."""
    gw.agent("researcher", ["fast", "claude"])
    secret, _ = gw.key("researcher-key", agent="researcher")
    gw.wait_status(secret, "fast", 200)
    return secret


def _grant(gw: Gateway, key: str, status: int = 201, **body: Any) -> httpx.Response:
    r = gw.admin("POST", "/grants", key=key, json={"agent": "researcher", "purpose": "e2e", **body})
    assert r.status_code == status, r.text
    return r


def test_an_agent_requests_a_grant_for_itself(gw: Gateway, researcher: str) -> None:
    grant = _grant(gw, researcher, models=["fast"], minutes=5).json()
    token = grant["token"]
    assert token.startswith("lgt-") and token.startswith(grant["prefix"]) and "token_hash" not in grant
    assert grant["requested_by"] == researcher[: len(grant["requested_by"])]
    gw.wait_status(token, "fast", 200)
    with openai.OpenAI(base_url=gw.url + "/v1", api_key=token, max_retries=0) as client:
        client.chat.completions.create(model="fast", messages=MESSAGES, max_tokens=20)  # type: ignore[arg-type]
        with pytest.raises(openai.PermissionDeniedError) as denied:  # in the baseline, not in the grant
            client.chat.completions.create(model="claude", messages=MESSAGES, max_tokens=20)  # type: ignore[arg-type]
    assert "lockgate.default.grant-scope" in denied.value.response.json()["error"]["message"]
    listed = gw.admin_ok("GET", "/grants", params={"agent": "researcher", "active": "true"})
    assert grant["prefix"] in {g["prefix"] for g in listed}
    assert token not in json.dumps(listed) and "token_hash" not in json.dumps(listed)

    gw.admin_ok("DELETE", f"/grants/{grant['prefix']}")
    gw.wait_status(token, "fast", 401)
    listed = gw.admin_ok("GET", "/grants", params={"agent": "researcher", "active": "true"})
    assert grant["prefix"] not in {g["prefix"] for g in listed}


def test_a_grant_beyond_the_baseline_waits_for_a_human(gw: Gateway, researcher: str) -> None:
    held = _grant(gw, researcher, 202, models=["azure"]).json()
    assert held["status"] == "pending" and "azure" in held["message"] and "baseline" in held["message"]
    item = gw.admin_ok("GET", f"/approvals/{held['id']}")
    assert item["kind"] == "grant" and "azure" in item["reason"] and item["evidence"]["beyond"] == ["azure"]
    # Not usable while pending, nor for another grant once approved.
    assert _grant(gw, researcher, 202, models=["azure"], approval_id=held["id"]).json()["status"] == "pending"
    gw.admin_ok("POST", f"/approvals/{held['id']}/approve", json={"reviewer": "sec-lead", "comment": "one-off"})
    error_of(_grant(gw, researcher, 403, models=["azure", "claude"], approval_id=held["id"]), 403)
    granted = _grant(gw, researcher, 201, models=["azure"], approval_id=held["id"]).json()
    assert granted["models"] == ["azure"] and granted["token"]
    error_of(_grant(gw, researcher, 403, models=["azure"], approval_id=held["id"]), 403)  # used once
    denied = _grant(gw, researcher, 202, tools=["git/push"]).json()
    assert "git/push" in denied["message"]
    gw.admin_ok("POST", f"/approvals/{denied['id']}/deny", json={"reviewer": "sec-lead"})
    error_of(_grant(gw, researcher, 403, tools=["git/push"], approval_id=denied["id"]), 403)
    events = gw.admin_ok("GET", "/audit", params={"type": "grant.created"})["data"]
    assert any(e["data"]["grant"] == granted["id"] for e in events)


def test_only_the_agents_own_key_or_the_operator_may_request_its_grants(gw: Gateway, researcher: str) -> None:
    gw.agent("other-bot", ["fast"])
    other, _ = gw.key("other-bot-key", agent="other-bot")
    unbound, _ = gw.key("grant-unbound")
    gw.wait_status(unbound, "fast", 200)
    gw.wait_status(other, "fast", 200)
    assert error_of(_grant(gw, other, 403, models=["fast"]), 403)
    assert error_of(_grant(gw, unbound, 401, models=["fast"]), 401)
    assert error_of(_grant(gw, "lg-not-a-key", 401, models=["fast"]), 401)
    by_admin = _grant(gw, ADMIN_KEY, models=["claude"]).json()
    assert by_admin["requested_by"] == "admin"


def test_a_grant_expires(gw: Gateway, researcher: str) -> None:
    grant = _grant(gw, researcher, models=["fast"], minutes=0.02).json()  # 1.2 s
    gw.wait_status(grant["token"], "fast", 200)
    err = error_of(gw.wait_status(grant["token"], "fast", 401, timeout=8), 401)
    assert "expired" in err["message"] and grant["prefix"] in err["message"]
    listed = gw.admin_ok("GET", "/grants", params={"agent": "researcher", "active": "true"})
    assert grant["prefix"] not in {g["prefix"] for g in listed}


def test_a_grant_has_at_most_max_requests(gw: Gateway, researcher: str) -> None:
    token = _grant(gw, researcher, models=["fast"], max_requests=2).json()["token"]
    gw.wait_status(token, "fast", 200)  # the first (a 401 while unknown counts nothing)
    assert gw.chat(token, "fast").status_code == 200
    with openai.OpenAI(base_url=gw.url + "/v1", api_key=token, max_retries=0) as client, \
            pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model="fast", messages=MESSAGES)  # type: ignore[arg-type]
    assert limited.value.status_code == 429
    assert "2 requests" in limited.value.response.json()["error"]["message"]


def test_grant_lifetime_is_bounded(gw: Gateway, researcher: str) -> None:
    err = error_of(_grant(gw, researcher, 400, models=["fast"], minutes=61), 400)
    assert err["param"] == "minutes"
    default = _grant(gw, researcher, models=["fast"]).json()
    lifetime = datetime.fromisoformat(default["expires_at"]) - datetime.fromisoformat(default["created_at"])
    assert lifetime.total_seconds() == pytest.approx(15 * 60, abs=1)


# --- 6. policy -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trader(gw: Gateway) -> tuple[str, str]:
    """A high-risk agent whose baseline includes `azure`; its key and the key's prefix."""
    gw.agent("trader", ["fast", "azure"], risk="high")
    secret, created = gw.key("trader-key", agent="trader")
    gw.wait_status(secret, "fast", 200)
    return secret, created["prefix"]


def test_a_user_policy_forbids_a_model_for_high_risk_agents(gw: Gateway, trader: tuple[str, str]) -> None:
    secret, _ = trader
    err = error_of(gw.chat(secret, "azure"), 403)
    assert err["code"] == "policy_denied" and "no-x-for-high-risk" in err["message"]
    gw.agent("calm-bot", ["fast", "azure"], risk="low")
    calm, _ = gw.key("calm-key", agent="calm-bot")
    gw.wait_status(calm, "azure", 200)
    # The operator's own forbids bind the operator too, when it acts for the agent.
    err = error_of(gw.chat(ADMIN_KEY, "azure", {"x-lockgate-agent": "trader"}), 403)
    assert "no-x-for-high-risk" in err["message"]
    assert gw.chat(ADMIN_KEY, "azure").status_code == 200


def test_policy_test_cli_prints_decision_and_deciding_policy(gw: Gateway, trader: tuple[str, str]) -> None:
    _, prefix = trader
    deny, allow, unknown = gw.cli_many(
        ("policy", "test", "--principal", f"key:{prefix}", "--resource", "model:azure"),
        ("policy", "test", "--principal", f"key:{prefix}", "--resource", "model:fast"),
        ("policy", "test", "--principal", "key:lg-nothing", "--resource", "model:fast"),
    )
    assert deny.returncode == 1, deny.stderr
    assert "DENY" in deny.stdout and "no-x-for-high-risk" in deny.stdout and "policies/user.cedar" in deny.stdout
    assert allow.returncode == 0, allow.stderr
    assert "ALLOW" in allow.stdout and "lockgate.default.key-model-allowlist" in allow.stdout
    assert unknown.returncode == 2 and "lg-nothing" in unknown.stderr


def test_policy_test_endpoint(gw: Gateway, trader: tuple[str, str]) -> None:
    _, prefix = trader
    deny = gw.admin_ok("POST", "/policy/test", json={"principal": f"key:{prefix}", "resource": "model:azure"})
    assert deny["decision"] == "deny" and deny["allowed"] is False
    assert deny["policies"] == ["no-x-for-high-risk"] and "no-x-for-high-risk" in deny["explanation"]
    allow = gw.admin_ok("POST", "/policy/test", json={"principal": f"key:{prefix}", "resource": "model:fast"})
    assert allow["decision"] == "allow" and allow["policies"] == ["lockgate.default.key-model-allowlist"]
    grant = gw.admin_ok("POST", "/policy/test", json={
        "principal": f"key:{prefix}", "action": "request_grant", "resource": "agent:trader",
        "context": {"models": "fast", "minutes": 10},
    })
    assert grant["allowed"] is True and grant["policies"] == ["lockgate.default.grant-request-self"]


@pytest.mark.parametrize(("policy", "problem"), [
    ('@id("broken")\nforbid (principal, action, resource) when { context. };\n', "bad.cedar:2"),
    ('@id("typo")\nforbid (principal, action, resource) when { context.riskiness == "high" };\n', "bad.cedar"),
])
def test_an_invalid_policy_file_fails_config_check(fake: FakeProvider, tmp_path: Path, policy: str,
                                                   problem: str) -> None:
    (tmp_path / "bad.cedar").write_text(policy)
    cfg = tmp_path / "lockgate.toml"
    backend = Backend("sqlite", f"sqlite:///{tmp_path / 'lockgate.db'}", None)
    cfg.write_text(access_config(fake.url, backend, 'policy_files = ["bad.cedar"]'))
    r = subprocess.run([sys.executable, "-m", "lockgate", "config", "check", str(cfg)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert problem in r.stderr
