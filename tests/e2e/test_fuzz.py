"""Property-based API fuzzing of the gateway's own OpenAPI description (schemathesis
strategies driven by hypothesis): valid and invalid bodies alike, lockgate never answers
5xx (the upstream here is the fake, healthy), and every error is a dialect error object."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from tests.conftest import ADMIN_KEY, Server

from lockgate.gateway.openapi import openapi_document

_SCHEMA = schemathesis.openapi.from_dict(openapi_document())
_OPERATIONS = [result.ok() for result in _SCHEMA.get_all_operations()]
_AUTH = {"authorization": f"Bearer {ADMIN_KEY}"}
_KNOWN = {"/v1/chat/completions": "fast", "/v1/messages": "claude", "/v1/embeddings": "embed"}


def _check(server: Server, case: Any) -> None:
    response = case.call(base_url=server.url, headers=_AUTH, timeout=30)
    assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:300], case.body)
    if response.status_code >= 400:
        body = response.json()
        assert body["error"]["message"], body


@pytest.mark.fuzz
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_no_server_errors(server: Server, mode: GenerationMode, data: st.DataObject) -> None:
    operation = data.draw(st.sampled_from(_OPERATIONS))
    _check(server, data.draw(operation.as_strategy(generation_mode=mode)))


@pytest.mark.fuzz
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_no_server_errors_on_known_models(server: Server, data: st.DataObject) -> None:
    operation = data.draw(st.sampled_from([op for op in _OPERATIONS if op.path in _KNOWN]))
    case = data.draw(operation.as_strategy())
    if isinstance(case.body, dict):
        case.body["model"] = _KNOWN[case.path]
    _check(server, case)
