"""`lockgate policy test`: arguments in, a decision and its explanation out."""

from __future__ import annotations

import pytest
from test_policy import RECORDS

from lockgate.access.policy import PolicyEngine
from lockgate.access.policy_explain import describe_test_request
from lockgate.access.policy_request import (
    Decision,
    ModelResource,
    PolicyContext,
    PolicyPrincipal,
    PolicyRequest,
)
from lockgate.errors import InvalidRequest


@pytest.fixture(scope="module")
def engine() -> PolicyEngine:
    return PolicyEngine.load([])


def test_a_key_bound_to_an_agent_outside_its_baseline(engine: PolicyEngine) -> None:
    result = describe_test_request(
        engine, RECORDS, principal="key:lg-bot", action="invoke_model", resource="model:big",
        context=["stream=true", "estimated_cost_usd=0.25", "delegation=agent:planner"],
    )  # fmt: skip
    assert result.request == PolicyRequest(
        PolicyPrincipal("key", "key-bot"),
        "invoke_model",
        ModelResource("big"),
        PolicyContext(
            agent_id="agent-bot",
            delegation=("agent:planner",),
            estimated_cost_usd=0.25,
            stream=True,
        ),
    )
    assert result.decision == Decision(
        False,
        "deny",
        ("lockgate.default.agent-baseline",),
        (),
        "forbidden by lockgate.default.agent-baseline",
    )
    assert result.explanation == "\n".join([
        "principal  key lg-bot 'bot key' (key-bot)",
        "agent      'support-bot' (risk medium, active; baseline models=['fast'] tools=['fs/*', 'search/query'])",
        "action     invoke_model",
        "resource   model big",
        "context    delegation=['agent:planner'] estimated_cost_usd=0.25 stream=true",
        "decision   DENY: forbidden by lockgate.default.agent-baseline",
        "  lockgate.default.agent-baseline  (forbid, defaults.cedar:55)",
    ])  # fmt: skip


def test_a_team_key_naming_an_agent_for_a_tool(engine: PolicyEngine) -> None:
    result = describe_test_request(
        engine, RECORDS, principal="key:ci", agent="support-bot", action="call_tool",
        resource="tool:fs/read",
    )  # fmt: skip
    assert (result.decision.decision, result.decision.policies) == (
        "allow",
        ("lockgate.default.key-tools",),
    )
    assert result.explanation.splitlines()[3:6] == [
        "resource   tool fs/read",
        "context    delegation=[] estimated_cost_usd=0 stream=false",
        "decision   ALLOW: permitted by lockgate.default.key-tools",
    ]


def test_a_grant_request_by_the_owner(engine: PolicyEngine) -> None:
    result = describe_test_request(
        engine, RECORDS, principal="user:alice@example.com", action="request_grant",
        resource="agent:support-bot", context=["models=big", "tools=git/*,fs/*", "minutes=30"],
    )  # fmt: skip
    assert result.decision.policies == ("lockgate.default.grant-request-owner",)
    assert result.explanation.splitlines()[4] == (
        "context    delegation=[] estimated_cost_usd=0 stream=false "
        "models=['big'] tools=['git/*', 'fs/*'] minutes=30"
    )


def test_the_operator_by_default_name(engine: PolicyEngine) -> None:
    result = describe_test_request(
        engine, RECORDS, principal="operator", action="invoke_model", resource="model:x"
    )
    assert (result.request.principal, result.decision.allowed) == (
        PolicyPrincipal("operator", "admin"),
        True,
    )
    assert result.explanation.splitlines()[:2] == ["principal  operator 'admin'", "agent      none"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"principal": "key:nope"}, "no key 'nope'"),
        (
            {"principal": "robot:x"},
            "--principal: unknown kind 'robot' (operator, key, grant, user)",
        ),
        ({"principal": "key"}, "--principal: 'key' is not KIND:NAME (operator, key, grant, user)"),
        (
            {"action": "delete"},
            "--action: 'delete' is not one of invoke_model, call_tool, request_grant",
        ),
        (
            {"resource": "fast"},
            "--resource: 'fast' is not model:NAME, tool:SERVER/NAME or agent:NAME",
        ),
        ({"agent": "trader"}, "--agent: the key is bound to agent 'support-bot'"),
        ({"context": ["stream=maybe"]}, "--context: 'stream=maybe': bad value for stream"),
        (
            {"context": ["colour=red"]},
            "--context: 'colour=red' is not KEY=VALUE with KEY one of "
            "delegation, estimated_cost_usd, stream, models, tools, minutes",
        ),
    ],
)
def test_arguments_naming_nothing_are_refused(
    engine: PolicyEngine, args: dict[str, object], message: str
) -> None:
    base: dict[str, object] = {
        "principal": "key:lg-bot",
        "action": "invoke_model",
        "resource": "model:fast",
    }
    with pytest.raises(InvalidRequest) as caught:
        describe_test_request(engine, RECORDS, **{**base, **args})  # type: ignore[arg-type]
    assert caught.value.message == message


def test_a_grant_token_acts_for_its_agent(engine: PolicyEngine) -> None:
    result = describe_test_request(
        engine, RECORDS, principal="grant:lgg-bot", action="call_tool", resource="tool:git/push",
        destructive=True,
    )  # fmt: skip
    assert (result.request.context.agent_id, result.decision.policies) == (
        "agent-bot",
        ("lockgate.default.grant-allow",),
    )
    assert result.explanation.splitlines()[:4:3] == [
        "principal  grant lgg-bot (grant-bot) models=['big'] tools=['git/*']",
        "resource   tool git/push (destructive)",
    ]
