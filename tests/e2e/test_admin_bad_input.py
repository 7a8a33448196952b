"""Bad input to every admin endpoint (docs/access.md, "Admin API"): wrong types, missing
and unknown fields, unknown ids and names, duplicate names, missing or wrong admin key,
a gateway key instead of the admin key. Each is answered with a 4xx and the OpenAI
error shape `{"error": {"message", "type", "param", "code"}}`, never a 5xx.

Runs against a real `lockgate serve` on SQLite and on PostgreSQL with Redis (duplicate
names and bad text surface differently in each database).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from tests.e2e.access_support import BACKENDS, Backend, Gateway, open_backend, start_gateway

from lockgate.testing import FakeProvider

# Every admin endpoint, with a valid body; `{...}` are filled from the `records` fixture.
ENDPOINTS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "/teams", {"name": "auth-team"}),
    ("GET", "/teams", None),
    ("GET", "/teams/acme", None),
    ("POST", "/users", {"name": "auth-user"}),
    ("GET", "/users", None),
    ("POST", "/agents", {"name": "auth-agent", "owner": "o", "purpose": "p", "risk_tier": "low"}),
    ("GET", "/agents", None),
    ("GET", "/agents/bot", None),
    ("POST", "/agents/bot/status", {"status": "active"}),
    ("GET", "/agents/shadow", None),
    ("GET", "/agents/drift?days=30", None),
    ("POST", "/keys", {"name": "auth-key"}),
    ("GET", "/keys", None),
    ("GET", "/keys/{key_prefix}", None),
    ("DELETE", "/keys/{key_prefix}", None),
    ("POST", "/grants", {"agent": "bot", "purpose": "p", "models": ["fast"]}),
    ("GET", "/grants?agent=bot&active=true", None),
    ("DELETE", "/grants/{grant_prefix}", None),
    ("POST", "/kill", {"scope": "model", "target": "fast", "reason": "auth test"}),
    ("GET", "/kill?all=true", None),
    ("DELETE", "/kill/{kill_id}", None),
    ("POST", "/policy/test", {"principal": "operator", "resource": "model:fast"}),
]


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    with open_backend(request.param, tmp_path_factory.mktemp(f"db-{request.param}")) as b:
        yield b


@pytest.fixture(scope="module")
def gw(fake: FakeProvider, backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    g = start_gateway(fake.url, backend, tmp_path_factory.mktemp("gw"))
    yield g
    g.close()


@pytest.fixture(scope="module")
def records(gw: Gateway) -> dict[str, str]:
    """A team, a user, an agent `bot` (baseline `fast`) with a key and a grant, a
    decommissioned agent, an unbound key and an engaged kill switch."""
    gw.admin_ok("POST", "/teams", status=201, json={"name": "acme"})
    gw.admin_ok("POST", "/users", status=201, json={"name": "alice@acme.example", "team": "acme"})
    gw.agent("bot", ["fast"], team="acme")
    gw.agent("retired", ["fast"])
    gw.admin_ok("POST", "/agents/retired/status", json={"status": "decommissioned"})
    bot_key, key = gw.key("bot-key", agent="bot")
    plain_key, _ = gw.key("plain-key")
    grant = gw.admin_ok("POST", "/grants", status=201, json={"agent": "bot", "purpose": "p", "models": ["fast"]})
    switch = gw.admin_ok("POST", "/kill", status=201,
                         json={"scope": "provider", "target": "az", "reason": "fixture switch"})
    gw.wait_status(plain_key, "fast", 200)
    return {"key_prefix": key["prefix"], "bot_key": bot_key, "plain_key": plain_key,
            "grant_prefix": grant["prefix"], "kill_id": switch["id"]}


def assert_error(r: httpx.Response, status: int, *fragments: str) -> dict[str, Any]:
    """A 4xx with the OpenAI error shape; `fragments` appear in its message."""
    assert r.status_code == status, f"wanted {status}, got {r.status_code}: {r.text}"
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert set(err) >= {"message", "type", "param", "code"}, err
    assert isinstance(err["message"], str) and err["message"].strip()
    assert isinstance(err["code"], str) and err["code"]
    for fragment in fragments:
        assert fragment in err["message"], f"{fragment!r} not in {err['message']!r}"
    return err


def _ids(endpoints: list[tuple[Any, ...]]) -> list[str]:
    return [f"{e[0]} {e[1]}" for e in endpoints]


# --- credentials -----------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS, ids=_ids(ENDPOINTS))
def test_every_endpoint_refuses_a_missing_or_wrong_admin_key(
    gw: Gateway, records: dict[str, str], method: str, path: str, body: dict[str, Any] | None
) -> None:
    path = path.format(**records)
    kw: dict[str, Any] = {"json": body} if body is not None else {}
    assert_error(gw.admin(method, path, key=None, **kw), 401, "Missing credentials")
    assert_error(gw.admin(method, path, key="sk-admin-wrong", **kw), 401)
    assert_error(gw.admin(method, path, key=None, headers={"authorization": "Bearer"}, **kw), 401)
    assert_error(gw.admin(method, path, key=None, headers={"authorization": "Basic YWRtaW46YWRtaW4="}, **kw), 401)
    assert_error(gw.admin(method, path, key=None, headers={"x-api-key": "sk-admin-wrong"}, **kw), 401)
    # A gateway key is not the admin key (an agent's own key may only ask for its grants).
    assert_error(gw.admin(method, path, key=records["plain_key"], **kw), 401)
    if (method, path) != ("POST", "/grants"):
        assert_error(gw.admin(method, path, key=records["bot_key"], **kw), 401)


def test_the_agents_own_key_may_only_ask_for_its_own_grants(gw: Gateway, records: dict[str, str]) -> None:
    own = gw.admin("POST", "/grants", key=records["bot_key"],
                   json={"agent": "bot", "purpose": "p", "models": ["fast"]})
    assert own.status_code == 201, own.text
    assert_error(gw.admin("POST", "/grants", key=records["bot_key"],
                          json={"agent": "retired", "purpose": "p"}), 403, "bound to")


# --- bodies: types, missing and unknown fields -----------------------------------------

AGENT = {"name": "a-new", "owner": "o", "purpose": "p", "risk_tier": "low"}
BAD_BODIES: list[tuple[str, str, Any, str]] = [
    # (method, path, body, a fragment the message or param must name)
    ("POST", "/teams", {}, "name"),
    ("POST", "/teams", {"name": 5}, "name"),
    ("POST", "/teams", {"name": ""}, "name"),
    ("POST", "/teams", {"name": "  "}, "name"),
    ("POST", "/teams", {"name": "x" * 201}, "name"),
    ("POST", "/teams", {"name": "nul\u0000byte"}, "name"),
    ("POST", "/teams", {"name": "t", "bogus": 1}, "bogus"),
    ("POST", "/teams", {"name": "t", "allowed_models": "fast"}, "allowed_models"),
    ("POST", "/teams", {"name": "t", "allowed_models": ["no-such-model"]}, "no-such-model"),
    ("POST", "/teams", {"name": "t", "limits": {"rpm": 0}}, "limits.rpm"),
    ("POST", "/teams", {"name": "t", "limits": {"rpm": "many"}}, "limits.rpm"),
    ("POST", "/teams", {"name": "t", "limits": {"budget_day_usd": -1}}, "limits.budget_day_usd"),
    ("POST", "/teams", {"name": "t", "limits": {"burst": 3}}, "limits.burst"),
    ("POST", "/teams", {"name": "t", "limits": [1]}, "limits"),
    ("POST", "/users", {}, "name"),
    ("POST", "/users", {"name": ["alice"]}, "name"),
    ("POST", "/users", {"name": "u", "team": 7}, "team"),
    ("POST", "/users", {"name": "u", "extra": True}, "extra"),
    ("POST", "/agents", {}, "name"),
    ("POST", "/agents", {k: v for k, v in AGENT.items() if k != "owner"}, "owner"),
    ("POST", "/agents", {**AGENT, "risk_tier": "extreme"}, "risk_tier"),
    ("POST", "/agents", {**AGENT, "risk_tier": None}, "risk_tier"),
    ("POST", "/agents", {**AGENT, "allowed_models": "fast"}, "allowed_models"),
    ("POST", "/agents", {**AGENT, "allowed_models": ["no-such-model"]}, "no-such-model"),
    ("POST", "/agents", {**AGENT, "allowed_tools": [1]}, "allowed_tools"),
    ("POST", "/agents", {**AGENT, "allowed_tools": [""]}, "allowed_tools"),
    ("POST", "/agents", {**AGENT, "limits": {"max_concurrent": -1}}, "limits.max_concurrent"),
    ("POST", "/agents", {**AGENT, "status": "active"}, "status"),
    ("POST", "/agents/bot/status", {}, "status"),
    ("POST", "/agents/bot/status", {"status": "paused"}, "status"),
    ("POST", "/agents/bot/status", {"status": 1}, "status"),
    ("POST", "/agents/bot/status", {"status": "active", "why": "x"}, "why"),
    ("POST", "/keys", {}, "name"),
    ("POST", "/keys", {"name": "k", "allowed_models": ["no-such-model"]}, "no-such-model"),
    ("POST", "/keys", {"name": "k", "allowed_models": [None]}, "allowed_models"),
    ("POST", "/keys", {"name": "k", "expires_in_days": 0}, "expires_in_days"),
    ("POST", "/keys", {"name": "k", "expires_in_days": -1}, "expires_in_days"),
    ("POST", "/keys", {"name": "k", "expires_in_days": "soon"}, "expires_in_days"),
    ("POST", "/keys", {"name": "k", "expires_in_days": 1e9}, "expires_in_days"),
    ("POST", "/keys", {"name": "k", "expires_in_days": 5_000_000}, "expires_in_days"),
    ("POST", "/keys", {"name": "k", "limits": {"rpm": 2**31}}, "limits.rpm"),
    ("POST", "/keys", {"name": "k", "limits": {"tpm": 10**30}}, "limits.tpm"),
    ("POST", "/teams", {"name": "t", "limits": {"max_concurrent": 2**63}}, "limits.max_concurrent"),
    ("POST", "/agents", {**AGENT, "limits": {"rpm": 2**31}}, "limits.rpm"),
    ("POST", "/users", {"name": "u", "limits": {"tpm": 2**40}}, "limits.tpm"),
    ("POST", "/keys", {"name": "k", "key": "lg-chosen-by-me"}, "key"),
    ("POST", "/keys", {"name": "k", "agent": ["bot"]}, "agent"),
    ("POST", "/grants", {}, "agent"),
    ("POST", "/grants", {"agent": "bot"}, "purpose"),
    ("POST", "/grants", {"agent": "bot", "purpose": "p", "models": ["no-such-model"]}, "no-such-model"),
    ("POST", "/grants", {"agent": "bot", "purpose": "p", "minutes": 0}, "minutes"),
    ("POST", "/grants", {"agent": "bot", "purpose": "p", "minutes": "ten"}, "minutes"),
    ("POST", "/grants", {"agent": "bot", "purpose": "p", "minutes": 10_000}, "minutes"),
    ("POST", "/grants", {"agent": "bot", "purpose": "p", "max_requests": 0}, "max_requests"),
    ("POST", "/grants", {"agent": "bot", "purpose": "p", "max_requests": 1.5}, "max_requests"),
    ("POST", "/grants", {"agent": "bot", "purpose": "p", "models": ["fast"], "max_requests": 2**31}, "max_requests"),
    ("POST", "/grants", {"agent": "bot", "purpose": "p", "max_spend_usd": -1}, "max_spend_usd"),
    ("POST", "/grants", {"agent": "bot", "purpose": "p", "token": "lgt-x"}, "token"),
    ("POST", "/kill", {}, "scope"),
    ("POST", "/kill", {"scope": "planet", "target": "earth", "reason": "r"}, "scope"),
    ("POST", "/kill", {"scope": "model", "target": "fast"}, "reason"),
    ("POST", "/kill", {"scope": "model", "target": "fast", "reason": ""}, "reason"),
    ("POST", "/kill", {"scope": "model", "target": "fast", "reason": "   "}, "reason"),
    ("POST", "/kill", {"scope": "model", "target": "no-such-model", "reason": "r"}, "no-such-model"),
    ("POST", "/kill", {"scope": "provider", "target": "no-such-provider", "reason": "r"}, "no-such-provider"),
    ("POST", "/kill", {"scope": "team", "target": "acme", "reason": "r\u0000"}, "reason"),
    ("POST", "/kill", {"scope": "tool", "target": "x\u0000y", "reason": "r"}, "target"),
    ("POST", "/kill", {"scope": "agent", "target": "", "reason": "r"}, "target"),
    ("POST", "/kill", {"scope": "model", "target": 3, "reason": "r"}, "target"),
    ("POST", "/kill", {"scope": "model", "target": "fast", "reason": "r", "actor": "me"}, "actor"),
    ("POST", "/policy/test", {}, "principal"),
    ("POST", "/policy/test", {"principal": "operator"}, "resource"),
    ("POST", "/policy/test", {"principal": "wizard:merlin", "resource": "model:fast"}, "wizard"),
    ("POST", "/policy/test", {"principal": "key", "resource": "model:fast"}, "principal"),
    ("POST", "/policy/test", {"principal": "key:lg-nothing", "resource": "model:fast"}, "lg-nothing"),
    ("POST", "/policy/test", {"principal": "operator", "resource": "planet:earth"}, "planet:earth"),
    ("POST", "/policy/test", {"principal": "operator", "resource": "model:fast", "action": "fly"}, "action"),
    ("POST", "/policy/test", {"principal": "operator", "resource": "model:fast", "context": {"stream": "maybe"}}, "stream"),
    ("POST", "/policy/test", {"principal": "operator", "resource": "model:fast", "context": {"bogus": 1}}, "bogus"),
    ("POST", "/policy/test", {"principal": "operator", "resource": "model:fast", "context": ["stream=true"]}, "context"),
    ("POST", "/policy/test", {"principal": "operator", "resource": "model:fast", "verbose": True}, "verbose"),
    ("GET", "/agents/drift?days=0", None, "days"),
    ("GET", "/agents/drift?days=abc", None, "days"),
    ("GET", "/agents/drift?days=100000", None, "days"),
    ("GET", "/grants?active=maybe", None, "active"),
    ("GET", "/kill?all=perhaps", None, "all"),
]


@pytest.mark.parametrize(("method", "path", "body", "names"), BAD_BODIES,
                         ids=[f"{m} {p} {b!r}"[:90] for m, p, b, _ in BAD_BODIES])
def test_bad_bodies_are_400_naming_the_field(
    gw: Gateway, records: dict[str, str], method: str, path: str, body: Any, names: str
) -> None:
    r = gw.admin(method, path, **({"json": body} if body is not None else {}))
    err = assert_error(r, 400)
    assert names in err["message"] or names == err["param"], err


# JSON as Python reads it also has NaN and Infinity: none may reach a timedelta or a column.
NON_FINITE: list[tuple[str, str, str]] = [
    ("/keys", '{"name": "k", "expires_in_days": Infinity}', "expires_in_days"),
    ("/keys", '{"name": "k", "expires_in_days": NaN}', "expires_in_days"),
    ("/keys", '{"name": "k", "limits": {"budget_day_usd": Infinity}}', "limits.budget_day_usd"),
    ("/keys", '{"name": "k", "limits": {"budget_month_usd": NaN}}', "limits.budget_month_usd"),
    ("/teams", '{"name": "t", "limits": {"budget_day_usd": Infinity}}', "limits.budget_day_usd"),
    ("/grants", '{"agent": "bot", "purpose": "p", "models": ["fast"], "minutes": NaN}', "minutes"),
    ("/grants", '{"agent": "bot", "purpose": "p", "models": ["fast"], "minutes": Infinity}', "minutes"),
    ("/grants", '{"agent": "bot", "purpose": "p", "models": ["fast"], "max_spend_usd": NaN}', "max_spend_usd"),
    ("/grants", '{"agent": "bot", "purpose": "p", "models": ["fast"], "max_spend_usd": Infinity}', "max_spend_usd"),
    ("/agents", '{"name": "a", "owner": "o", "purpose": "p\\ud800", "risk_tier": "low"}', "purpose"),
]


@pytest.mark.parametrize(("path", "raw", "name"), NON_FINITE, ids=[f"{p} {r}"[:70] for p, r, _ in NON_FINITE])
def test_non_finite_numbers_and_bad_text_are_400(
    gw: Gateway, records: dict[str, str], path: str, raw: str, name: str
) -> None:
    r = gw.admin("POST", path, content=raw.encode(), headers={"content-type": "application/json"})
    err = assert_error(r, 400)
    assert name in err["message"] or name == err["param"], err


NOT_OBJECTS = [b"", b"{not json", b"[1, 2]", b"null", b'"text"', b"\xff\xfe\x00garbage", b'{"name": "a"']
POSTS = ["/teams", "/users", "/agents", "/agents/bot/status", "/keys", "/grants", "/kill", "/policy/test"]


@pytest.mark.parametrize("path", POSTS)
@pytest.mark.parametrize("content", NOT_OBJECTS, ids=[repr(c)[:20] for c in NOT_OBJECTS])
def test_bodies_that_are_not_json_objects_are_400(
    gw: Gateway, records: dict[str, str], path: str, content: bytes
) -> None:
    r = gw.admin("POST", path, content=content, headers={"content-type": "application/json"})
    assert_error(r, 400)


# --- unknown ids and names ---------------------------------------------------------------

UNKNOWN: list[tuple[str, str, Any, str]] = [
    ("GET", "/teams/no-such-team", None, "no-such-team"),
    ("POST", "/users", {"name": "u-unknown-team", "team": "no-such-team"}, "no-such-team"),
    ("POST", "/agents", {**AGENT, "name": "a-unknown-team", "team": "no-such-team"}, "no-such-team"),
    ("GET", "/agents/no-such-agent", None, "no-such-agent"),
    ("POST", "/agents/no-such-agent/status", {"status": "suspended"}, "no-such-agent"),
    ("POST", "/keys", {"name": "k", "agent": "no-such-agent"}, "no-such-agent"),
    ("POST", "/keys", {"name": "k", "team": "no-such-team"}, "no-such-team"),
    ("POST", "/keys", {"name": "k", "user": "no-such-user"}, "no-such-user"),
    ("GET", "/keys/lg-NoSuchKey", None, "lg-NoSuchKey"),
    ("DELETE", "/keys/lg-NoSuchKey", None, "lg-NoSuchKey"),
    ("POST", "/grants", {"agent": "no-such-agent", "purpose": "p"}, "no-such-agent"),
    ("GET", "/grants?agent=no-such-agent", None, "no-such-agent"),
    ("DELETE", "/grants/lgt-NoSuchGrant", None, "lgt-NoSuchGrant"),
    ("POST", "/kill", {"scope": "agent", "target": "no-such-agent", "reason": "r"}, "no-such-agent"),
    ("POST", "/kill", {"scope": "team", "target": "no-such-team", "reason": "r"}, "no-such-team"),
    ("POST", "/kill", {"scope": "key", "target": "lg-NoSuchKey", "reason": "r"}, "lg-NoSuchKey"),
    ("DELETE", "/kill/00000000-0000-7000-8000-000000000000", None, "00000000-0000-7000-8000-000000000000"),
    ("DELETE", "/kill/not-an-id", None, "not-an-id"),
    ("GET", "/nowhere", None, "/nowhere"),
    ("GET", "/agents/bot/nowhere", None, "nowhere"),
]


@pytest.mark.parametrize(("method", "path", "body", "name"), UNKNOWN, ids=_ids(UNKNOWN))
def test_unknown_ids_and_names_are_404(
    gw: Gateway, records: dict[str, str], method: str, path: str, body: Any, name: str
) -> None:
    err = assert_error(gw.admin(method, path, **({"json": body} if body is not None else {})), 404, name)
    assert err["code"] == "not_found"


def test_wrong_methods_are_405(gw: Gateway, records: dict[str, str]) -> None:
    for method, path in [("PUT", "/agents"), ("DELETE", "/agents/bot"), ("PATCH", "/keys"), ("POST", "/agents/shadow")]:
        r = gw.admin(method, path, json={})
        assert_error(r, 405)


# --- duplicates and conflicts ------------------------------------------------------------

DUPLICATES: list[tuple[str, dict[str, Any], str]] = [
    ("/teams", {"name": "acme"}, "acme"),
    ("/users", {"name": "alice@acme.example"}, "alice@acme.example"),
    ("/agents", {**AGENT, "name": "bot"}, "bot"),
]


@pytest.mark.parametrize(("path", "body", "name"), DUPLICATES, ids=[p for p, _, _ in DUPLICATES])
def test_duplicate_names_are_409(
    gw: Gateway, records: dict[str, str], path: str, body: dict[str, Any], name: str
) -> None:
    err = assert_error(gw.admin("POST", path, json=body), 409, name)
    assert err["code"] == "conflict"


def test_setting_an_engaged_kill_switch_again_returns_it(gw: Gateway, records: dict[str, str]) -> None:
    again = gw.admin_ok("POST", "/kill", status=201, json={"scope": "provider", "target": "az", "reason": "again"})
    assert again["id"] == records["kill_id"] and again["reason"] == "fixture switch"


def test_a_decommissioned_agent_cannot_come_back_or_get_keys_or_grants(gw: Gateway, records: dict[str, str]) -> None:
    assert_error(gw.admin("POST", "/agents/retired/status", json={"status": "active"}), 409, "retired")
    assert_error(gw.admin("POST", "/keys", json={"name": "k", "agent": "retired"}), 409, "retired")
    assert_error(gw.admin("POST", "/grants", json={"agent": "retired", "purpose": "p"}), 403, "retired")


def test_a_grant_beyond_the_baseline_is_held_and_a_bogus_approval_is_403(gw: Gateway, records: dict[str, str]) -> None:
    held = gw.admin("POST", "/grants", json={"agent": "bot", "purpose": "p", "models": ["claude"]})
    assert held.status_code == 202 and "claude" in held.json()["message"]
    assert_error(gw.admin("POST", "/grants", json={"agent": "bot", "purpose": "p", "models": ["claude"],
                                                   "approval_id": "no-such-approval"}), 403, "no-such-approval")


def test_nothing_was_created_by_the_bad_requests(gw: Gateway, records: dict[str, str]) -> None:
    teams = {t["name"] for t in gw.admin_ok("GET", "/teams")}
    agents = {a["name"] for a in gw.admin_ok("GET", "/agents")}
    keys = {k["name"] for k in gw.admin_ok("GET", "/keys")}
    users = {u["name"] for u in gw.admin_ok("GET", "/users")}
    assert "t" not in teams and "auth-team" not in teams
    assert agents <= {"bot", "retired"}
    assert "k" not in keys and "auth-key" not in keys
    assert "u" not in users and "u-unknown-team" not in users and "auth-user" not in users
