"""Cedar policies: the built-in defaults, the operator's files, problems, batches."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import cedarpy
import pytest

from lockgate.access.models import Agent, ApiKey, Grant, Team, User
from lockgate.access.policy import PolicyEngine
from lockgate.access.policy_entities import PolicyEntities, PolicyRecords, entity_json
from lockgate.access.policy_request import (
    AgentResource,
    Decision,
    ModelResource,
    PolicyAction,
    PolicyContext,
    PolicyPrincipal,
    PolicyRequest,
    PolicyResource,
    PrincipalKind,
    ToolResource,
)
from lockgate.access.policy_source import context_reads, split_statements
from lockgate.errors import ConfigError

T = datetime(2025, 1, 1, tzinfo=UTC)
ENG = Team("team-eng", "eng", T)
LAB = Team("team-lab", "lab", T, allowed_models=("fast",))
ALICE = User("user-alice", "alice@example.com", T, team_id="team-eng")
BOB = User("user-bob", "bob@example.com", T, team_id="team-lab")
BOT = Agent(
    "agent-bot", "support-bot", "alice@example.com", "answers tickets", "medium", "active", T,
    team_id="team-eng", allowed_models=("fast",), allowed_tools=("fs/*", "search/query"),
)  # fmt: skip
TRADER = Agent(
    "agent-trader", "trader", "bob@example.com", "trades", "high", "active", T,
    allowed_models=("fast", "big"),
)  # fmt: skip
OLD = Agent(
    "agent-old", "old-bot", "alice@example.com", "retired", "low", "suspended", T,
    allowed_models=("fast",),
)  # fmt: skip
KEY_ANY = ApiKey("key-any", "ci", "lg-any", "h", T, team_id="team-eng")
KEY_FAST = ApiKey("key-fast", "fast only", "lg-fast", "h", T, allowed_models=("fast",))
KEY_BOT = ApiKey("key-bot", "bot key", "lg-bot", "h", T, agent_id="agent-bot")
KEY_TRADER = ApiKey("key-trader", "trader key", "lg-trade", "h", T, agent_id="agent-trader")
KEY_OLD = ApiKey("key-old", "old key", "lg-old", "h", T, agent_id="agent-old")
KEY_LAB = ApiKey("key-lab", "lab key", "lg-lab", "h", T, user_id="user-bob")
GRANT = Grant(
    "grant-bot", "agent-bot", "lgg-bot", "h", "incident", T, T, "lg-bot",
    models=("big",), tools=("git/*",),
)  # fmt: skip
GRANT_OLD = Grant("grant-old", "agent-old", "lgg-old", "h", "x", T, T, "admin", models=("big",))
RECORDS = PolicyRecords(
    teams=(ENG, LAB),
    users=(ALICE, BOB),
    agents=(BOT, TRADER, OLD),
    keys=(KEY_ANY, KEY_FAST, KEY_BOT, KEY_TRADER, KEY_OLD, KEY_LAB),
    grants=(GRANT, GRANT_OLD),
)

FAST = ModelResource("fast")
BIG = ModelResource("big")

USER_POLICIES = """\
// The operator's own rules.
@id("no-big-for-high-risk")
forbid (principal, action == Lockgate::Action::"invoke_model", resource is Lockgate::Model)
when { context has risk_tier && context.risk_tier == "high" && resource.name == "big" };

forbid (principal, action, resource)
when { context.estimated_cost_micro_usd > 1000000 };
"""


@pytest.fixture
def engine() -> PolicyEngine:
    return PolicyEngine.load([])


@pytest.fixture
def entities(engine: PolicyEngine) -> PolicyEntities:
    return engine.entities(RECORDS)


def allow(*policies: str) -> Decision:
    return Decision(True, "allow", policies, (), f"permitted by {', '.join(policies)}")


def forbid(*policies: str) -> Decision:
    return Decision(False, "deny", policies, (), f"forbidden by {', '.join(policies)}")


NO_PERMIT = Decision(False, "deny", (), (), "no policy permits")
KINDS: dict[str, PrincipalKind] = {
    "operator": "operator",
    "key": "key",
    "grant": "grant",
    "user": "user",
}
ACTIONS: dict[type, PolicyAction] = {
    ModelResource: "invoke_model",
    ToolResource: "call_tool",
    AgentResource: "request_grant",
}


def ask(
    engine: PolicyEngine,
    entities: PolicyEntities,
    principal: str,
    resource: PolicyResource,
    context: PolicyContext | None = None,
) -> Decision:
    kind, _, pid = principal.partition(":")
    request = PolicyRequest(
        PolicyPrincipal(KINDS[kind], pid),
        ACTIONS[type(resource)],
        resource,
        context or PolicyContext(),
    )
    return engine.decide(request, entities)


# --- the defaults ------------------------------------------------------------------


def test_defaults_validate_and_have_stable_ids(engine: PolicyEngine) -> None:
    assert engine.validate() == []
    assert {i: s.effect for i, s in engine.sources.items()} == {
        "lockgate.default.operator": "permit",
        "lockgate.default.key-model-allowlist": "permit",
        "lockgate.default.key-tools": "permit",
        "lockgate.default.grant-allow": "permit",
        "lockgate.default.grant-scope": "forbid",
        "lockgate.default.agent-baseline": "forbid",
        "lockgate.default.agent-not-active": "forbid",
        "lockgate.default.team-model-allowlist": "forbid",
        "lockgate.default.grant-request-self": "permit",
        "lockgate.default.grant-request-owner": "permit",
    }
    assert engine.sources["lockgate.default.operator"].origin == "defaults.cedar:6"


@pytest.mark.parametrize(
    "resource",
    [BIG, ToolResource("git", "push", destructive=True), AgentResource("agent-old")],
)
def test_the_operator_may_do_anything(
    engine: PolicyEngine, entities: PolicyEntities, resource: PolicyResource
) -> None:
    context = PolicyContext(agent_id="agent-old")  # even acting for a suspended agent
    assert ask(engine, entities, "operator:admin", resource, context) == allow(
        "lockgate.default.operator"
    )


def test_a_key_invokes_what_its_allow_list_names(
    engine: PolicyEngine, entities: PolicyEntities
) -> None:
    decisions = [
        ask(engine, entities, "key:key-fast", FAST),
        ask(engine, entities, "key:key-fast", BIG),
        ask(engine, entities, "key:key-any", BIG),  # an empty list: any model
    ]
    assert decisions == [
        allow("lockgate.default.key-model-allowlist"),
        NO_PERMIT,
        allow("lockgate.default.key-model-allowlist"),
    ]


def test_an_agent_outside_its_baseline_is_denied(
    engine: PolicyEngine, entities: PolicyEntities
) -> None:
    decisions = [
        ask(engine, entities, "key:key-bot", FAST),
        ask(engine, entities, "key:key-bot", BIG),
        ask(engine, entities, "key:key-bot", ToolResource("fs", "read")),  # fs/*
        ask(engine, entities, "key:key-bot", ToolResource("search", "query")),
        ask(engine, entities, "key:key-bot", ToolResource("search", "delete")),
        # a team key naming the agent (x-lockgate-agent) is held to its baseline too
        ask(engine, entities, "key:key-any", BIG, PolicyContext(agent_id="agent-bot")),
    ]
    assert decisions == [
        allow("lockgate.default.key-model-allowlist"),
        forbid("lockgate.default.agent-baseline"),
        allow("lockgate.default.key-tools"),
        allow("lockgate.default.key-tools"),
        forbid("lockgate.default.agent-baseline"),
        forbid("lockgate.default.agent-baseline"),
    ]


def test_a_suspended_agent_is_denied(engine: PolicyEngine, entities: PolicyEntities) -> None:
    decisions = [
        ask(engine, entities, "key:key-old", FAST),  # in its baseline
        ask(engine, entities, "grant:grant-old", BIG),  # in its grant
        ask(engine, entities, "key:key-old", AgentResource("agent-old")),  # asks for a grant
    ]
    assert decisions == [
        forbid("lockgate.default.agent-not-active"),
        forbid("lockgate.default.agent-not-active"),
        forbid("lockgate.default.agent-not-active"),
    ]


def test_a_grant_token_is_limited_to_its_scope(
    engine: PolicyEngine, entities: PolicyEntities
) -> None:
    decisions = [
        ask(engine, entities, "grant:grant-bot", BIG),
        ask(engine, entities, "grant:grant-bot", ToolResource("git", "push", destructive=True)),
        ask(engine, entities, "grant:grant-bot", FAST),  # the agent's baseline, not the grant's
        ask(engine, entities, "grant:grant-bot", ToolResource("fs", "read")),
    ]
    assert decisions == [
        allow("lockgate.default.grant-allow"),
        allow("lockgate.default.grant-allow"),
        forbid("lockgate.default.grant-scope"),
        forbid("lockgate.default.grant-scope"),
    ]


def test_a_team_allow_list_binds_its_users_keys(
    engine: PolicyEngine, entities: PolicyEntities
) -> None:
    decisions = [
        ask(engine, entities, "key:key-lab", FAST),
        ask(engine, entities, "key:key-lab", BIG),
    ]
    assert decisions == [
        allow("lockgate.default.key-model-allowlist"),
        forbid("lockgate.default.team-model-allowlist"),
    ]


def test_who_may_request_a_grant(engine: PolicyEngine, entities: PolicyEntities) -> None:
    bot = AgentResource("agent-bot")
    context = PolicyContext(grant_models=("big",), grant_minutes=15)
    decisions = [
        ask(engine, entities, "key:key-bot", bot, context),  # the agent's own key
        ask(engine, entities, "user:user-alice", bot, context),  # its owner
        ask(engine, entities, "key:key-trader", bot, context),  # another agent's key
        ask(engine, entities, "user:user-bob", bot, context),
    ]
    assert decisions == [
        allow("lockgate.default.grant-request-self"),
        allow("lockgate.default.grant-request-owner"),
        NO_PERMIT,
        NO_PERMIT,
    ]


def test_requests_cedar_cannot_judge_are_denied(
    engine: PolicyEngine, entities: PolicyEntities
) -> None:
    decisions = [
        ask(engine, entities, "key:key-gone", FAST),
        ask(engine, entities, "key:key-any", FAST, PolicyContext(agent_id="agent-unknown")),
        engine.decide(
            PolicyRequest(PolicyPrincipal("key", "key-any"), "call_tool", FAST), entities
        ),
    ]
    problems = [
        "unknown key 'key-gone'",
        "unknown agent 'agent-unknown'",
        "call_tool does not apply to ModelResource",
    ]
    assert decisions == [Decision(False, "deny", (), (p,), p) for p in problems]


# --- the operator's files ----------------------------------------------------------


def test_a_user_forbid_wins_and_is_named(tmp_path: Path) -> None:
    path = tmp_path / "rules.cedar"
    path.write_text(USER_POLICIES)
    engine = PolicyEngine.load([path])
    entities = engine.entities(RECORDS)
    assert engine.validate() == []
    decisions = [
        ask(engine, entities, "key:key-trader", BIG),  # a high-risk agent, big in its baseline
        ask(engine, entities, "key:key-trader", FAST),
        ask(engine, entities, "key:key-any", FAST, PolicyContext(estimated_cost_usd=1.5)),
        ask(engine, entities, "operator:admin", BIG, PolicyContext(agent_id="agent-trader")),
    ]
    assert decisions == [
        forbid("no-big-for-high-risk"),
        allow("lockgate.default.key-model-allowlist"),
        forbid("rules.cedar#2"),
        forbid("no-big-for-high-risk"),  # the operator's own forbids bind the operator
    ]
    assert engine.sources["rules.cedar#2"].origin == f"{path}:6"


def test_a_forbid_that_fails_to_evaluate_denies(tmp_path: Path) -> None:
    path = tmp_path / "overflow.cedar"
    path.write_text(
        '@id("overflow")\nforbid (principal, action, resource)\n'
        "when { context.estimated_cost_micro_usd * 9223372036854775807 > 0 };\n"
    )
    engine = PolicyEngine.load([path])
    decision = ask(
        engine,
        engine.entities(RECORDS),
        "key:key-any",
        FAST,
        PolicyContext(estimated_cost_usd=0.01),
    )
    assert decision == Decision(
        False,
        "deny",
        ("overflow",),
        ("error while evaluating policy `overflow`: integer overflow while attempting to "
         "multiply the values `10000` and `9223372036854775807`",),
        "forbid policy failed to evaluate: overflow",
    )  # fmt: skip


def test_without_defaults_nothing_is_permitted(tmp_path: Path) -> None:
    engine = PolicyEngine.load([], include_defaults=False)
    assert ask(engine, engine.entities(RECORDS), "operator:admin", FAST) == NO_PERMIT


def test_invalid_policy_files_are_problems_naming_file_and_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.cedar"
    broken.write_text(
        "// a comment; with a semicolon\n"
        "permit (principal, action, resource)\n"
        "when {\n"
        '  resource.name == "x" &&\n'
        "  context.stream = true\n"
        "};\n"
        '@id("a;b") forbid (principal, action, resource)\n'
    )
    typed = tmp_path / "typed.cedar"
    typed.write_text(
        '@id("lockgate.default.operator")\npermit (principal, action, resource);\n'
        'forbid (principal, action == Lockgate::Action::"invoke_model", resource)\n'
        'when { resource.nme == "x" };\n'
        "permit (principal == ?principal, action, resource);\n"
    )
    engine = PolicyEngine.load([broken, typed, tmp_path / "missing.cedar"])
    missing = tmp_path / "missing.cedar"
    assert engine.validate() == [
        f"{broken}:5: '=' is not a valid operator in Cedar",
        f"{broken}:7: unexpected end of input (a missing `;`?)",
        f"{typed}:5: templates (?principal, ?resource) are not supported; name the entity instead",
        f"{typed}:1: duplicate policy id 'lockgate.default.operator' (also defaults.cedar:6)",
        f"{missing}: cannot read: [Errno 2] No such file or directory: '{missing}'",
        f"{typed}:3: policy typed.cedar#2: attribute `nme` on entity type `Lockgate::Model` not found",
    ]
    with pytest.raises(ConfigError) as caught:
        engine.decide(
            PolicyRequest(PolicyPrincipal("operator", "admin"), "invoke_model", FAST),
            engine.entities(RECORDS),
        )
    assert caught.value.problems[0] == f"{broken}:5: '=' is not a valid operator in Cedar"


def test_statements_split_at_top_level_semicolons() -> None:
    text = '// x; y\n@id("a;b")\npermit (principal, action, resource)\nwhen { "\\";" like "*" };\n\n  forbid (principal, action, resource) '
    assert split_statements(text) == [
        (2, '@id("a;b")\npermit (principal, action, resource)\nwhen { "\\";" like "*" };'),
        (6, "forbid (principal, action, resource)"),
    ]


# --- batches, entities -------------------------------------------------------------


def test_a_batch_decides_each_request_in_order(
    engine: PolicyEngine, entities: PolicyEntities
) -> None:
    bot = PolicyPrincipal("key", "key-bot")
    tools = [
        ToolResource("fs", "read"),
        ToolResource("git", "push", True),
        ToolResource("search", "query"),
    ]
    requests = [PolicyRequest(bot, "call_tool", tool) for tool in tools]
    requests.insert(1, PolicyRequest(PolicyPrincipal("grant", "grant-gone"), "call_tool", tools[0]))
    assert engine.decide_batch(requests, entities) == [
        allow("lockgate.default.key-tools"),
        Decision(False, "deny", (), ("unknown grant 'grant-gone'",), "unknown grant 'grant-gone'"),
        forbid("lockgate.default.agent-baseline"),
        allow("lockgate.default.key-tools"),
    ]


def test_entity_slices_are_parsed_once(engine: PolicyEngine) -> None:
    entities = engine.entities(RECORDS, cache_size=1)
    key = [PolicyPrincipal("key", "key-bot")]
    first = entities.handle(key, ["agent-bot"], [FAST])
    again = entities.handle(key, ["agent-bot"], [FAST])
    other = entities.handle(key, ["agent-bot"], [BIG])  # evicts the first
    assert (
        first is again,
        other is first,
        entities.handle(key, ["agent-bot"], [FAST]) is first,
    ) == (True, False, False)
    # the key, its agent, the agent's team, the model (and the schema's actions)
    uids = {(e["uid"]["type"], e["uid"]["id"]) for e in json.loads(str(first))}
    assert {u for u in uids if u[0] != "Lockgate::Action"} == {
        ("Lockgate::Key", "key-bot"),
        ("Lockgate::Agent", "agent-bot"),
        ("Lockgate::Team", "team-eng"),
        ("Lockgate::Model", "fast"),
    }


def test_entity_json_of_records() -> None:
    assert [entity_json(KEY_LAB, team_id="team-lab"), entity_json(GRANT)] == [
        {
            "uid": {"type": "Lockgate::Key", "id": "key-lab"},
            "attrs": {
                "name": "lab key",
                "prefix": "lg-lab",
                "allowed_models": [],
                "team": {"__entity": {"type": "Lockgate::Team", "id": "team-lab"}},
            },
            "parents": [{"type": "Lockgate::User", "id": "user-bob"}],
        },
        {
            "uid": {"type": "Lockgate::Grant", "id": "grant-bot"},
            "attrs": {
                "prefix": "lgg-bot",
                "agent": {"__entity": {"type": "Lockgate::Agent", "id": "agent-bot"}},
                "models": ["big"],
                "tools": ["git/*"],
            },
            "parents": [{"type": "Lockgate::Agent", "id": "agent-bot"}],
        },
    ]


def test_records_naming_missing_records_still_decide(engine: PolicyEngine) -> None:
    key = ApiKey(
        "key-x", "x", "lg-x", "h", T, team_id="team-gone", user_id="user-gone", agent_id="agent-bot"
    )
    grant = Grant("grant-x", "agent-gone", "lgg-x", "h", "x", T, T, "admin", models=("big",))
    entities = engine.entities(PolicyRecords(agents=(BOT,), keys=(key,), grants=(grant,)))
    decisions = [
        ask(engine, entities, "key:key-x", FAST),
        ask(engine, entities, "grant:grant-x", BIG),
    ]
    assert decisions == [
        allow("lockgate.default.key-model-allowlist"),  # no team record: no team allow-list
        Decision(False, "deny", (), ("unknown agent 'agent-gone'",), "unknown agent 'agent-gone'"),
    ]


def test_decisions_are_cached_by_what_the_policies_read(
    engine: PolicyEngine, tmp_path: Path
) -> None:
    path = tmp_path / "rules.cedar"
    path.write_text(USER_POLICIES)
    strict = PolicyEngine.load([path])
    entities = engine.entities(RECORDS)  # shared by both engines
    cheap, dear = PolicyContext(estimated_cost_usd=0.5), PolicyContext(estimated_cost_usd=2.0)
    decisions = [
        ask(engine, entities, "key:key-any", FAST, cheap),
        ask(engine, entities, "key:key-any", FAST, dear),  # the defaults never read the cost
        ask(strict, entities, "key:key-any", FAST, cheap),
        ask(strict, entities, "key:key-any", FAST, dear),
        ask(strict, entities, "key:key-any", FAST, dear),
    ]
    assert decisions == [
        allow("lockgate.default.key-model-allowlist"),
        allow("lockgate.default.key-model-allowlist"),
        allow("lockgate.default.key-model-allowlist"),
        forbid("rules.cedar#2"),
        forbid("rules.cedar#2"),
    ]
    assert len(entities.decisions) == 3


@pytest.mark.parametrize(
    ("condition", "reads"),
    [
        ("true", frozenset[str]()),
        (
            'context has agent && context.agent.name == "x" && context["stream"]',
            frozenset({"agent", "stream"}),
        ),
        ('context == {"stream": true}', None),  # the whole context
    ],
)
def test_context_reads(condition: str, reads: frozenset[str] | None) -> None:
    nodes = cedarpy.PolicySet.from_str(
        f"permit (principal, action, resource) when {{ {condition} }};"
    ).to_pst()
    assert context_reads(nodes.static_policies.values()) == reads


@pytest.mark.parametrize("usd", [1e300, float("inf"), float("nan")])
def test_any_cost_fits_a_cedar_long(tmp_path: Path, usd: float) -> None:
    path = tmp_path / "rules.cedar"
    path.write_text(USER_POLICIES)
    engine = PolicyEngine.load([path])
    decision = ask(
        engine, engine.entities(RECORDS), "key:key-any", FAST, PolicyContext(estimated_cost_usd=usd)
    )
    assert decision == forbid("rules.cedar#2")
