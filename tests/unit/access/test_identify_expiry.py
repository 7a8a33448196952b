"""The identify stage with an injected clock: a grant (and a key) stops working exactly
at its `expires_at`, not a tick later; revocation removes it from the state."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from lockgate.access.identify import IdentifyStage
from lockgate.access.models import Agent, ApiKey, Grant
from lockgate.access.state import AccessState, hash_secret
from lockgate.config.schema import AccessConfig
from lockgate.core.context import RequestContext
from lockgate.errors import AuthenticationFailed

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
TICK = timedelta(microseconds=1)
TOKEN = "lgt-TestToken0123456789abcdefghijklmnop"
KEY = "lg-TestKey0123456789abcdefghijklmnopqrs"

AGENT = Agent(
    id="agent-1", name="researcher", owner="alice", purpose="tests", risk_tier="low", status="active",
    created_at=T0 - timedelta(days=1), allowed_models=("fast",),
)
GRANT = Grant(
    id="grant-1", agent_id=AGENT.id, prefix=TOKEN[:12], token_hash=hash_secret(TOKEN), purpose="tests",
    created_at=T0, expires_at=T0 + timedelta(minutes=15), requested_by="admin", models=("fast",),
)
APIKEY = ApiKey(
    id="key-1", name="k", prefix=KEY[:11], key_hash=hash_secret(KEY), created_at=T0,
    agent_id=AGENT.id, expires_at=T0 + timedelta(days=1),
)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _state(grant: Grant = GRANT, key: ApiKey = APIKEY) -> AccessState:
    return AccessState.build(version=1, keys=[key], grants=[grant], agents=[AGENT], teams=[], users=[], kills=[])


def _identify(stage: IdentifyStage, credential: str) -> RequestContext:
    ctx = RequestContext(request_id="r1", dialect="openai", endpoint="chat", credential=credential)
    ctx.principal = stage.identify(ctx)
    return ctx


@pytest.mark.parametrize(("credential", "expires_at", "label"), [
    (TOKEN, GRANT.expires_at, GRANT.prefix),
    (KEY, APIKEY.expires_at, APIKEY.prefix),
])
def test_a_credential_expires_exactly_at_expires_at(credential: str, expires_at: datetime, label: str) -> None:
    assert expires_at is not None
    clock = Clock(T0)
    state = _state()
    stage = IdentifyStage("sk-admin", state=lambda: state, config=AccessConfig(), clock=clock)

    ctx = _identify(stage, credential)
    assert ctx.principal is not None and ctx.principal.label == label
    assert ctx.principal.agent_id == AGENT.id and ctx.principal.agent_name == "researcher"

    clock.now = expires_at - TICK  # the last instant it is valid
    assert _identify(stage, credential).principal is not None

    clock.now = expires_at  # valid up to, not including, expires_at
    with pytest.raises(AuthenticationFailed) as expired:
        _identify(stage, credential)
    assert "expired" in expired.value.message and label in expired.value.message
    assert expired.value.status == 401

    clock.now = expires_at + timedelta(days=365)
    with pytest.raises(AuthenticationFailed):
        _identify(stage, credential)


def test_a_revoked_grant_is_unknown() -> None:
    state = _state(grant=replace(GRANT, revoked_at=T0))
    stage = IdentifyStage("sk-admin", state=lambda: state, config=AccessConfig(), clock=Clock(T0))
    with pytest.raises(AuthenticationFailed) as unknown:
        _identify(stage, TOKEN)
    assert "Incorrect API key" in unknown.value.message


def test_the_grant_principal_acts_for_its_agent() -> None:
    state = _state()
    stage = IdentifyStage("sk-admin", state=lambda: state, config=AccessConfig(), clock=Clock(T0))
    ctx = _identify(stage, TOKEN)
    assert ctx.principal is not None and ctx.principal.kind == "grant"
    assert ctx.attrs["grant"] is state.grants_by_hash[GRANT.token_hash]
