"""Malformed, oversized and hostile input gets the right status and the dialect's error object."""

from __future__ import annotations

import httpx
import pytest
from tests.conftest import ADMIN_KEY, Server

AUTH = {"authorization": f"Bearer {ADMIN_KEY}", "content-type": "application/json"}
MSG = [{"role": "user", "content": "x"}]


def _openai_error(r: httpx.Response, status: int) -> dict[str, object]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}
    err = body["error"]
    assert {"message", "type", "code"} <= set(err) and err["message"]
    return err


def _anthropic_error(r: httpx.Response, status: int) -> dict[str, object]:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["type"] == "error" and body["error"]["message"]
    return body["error"]


OPENAI_CASES = [
    (b"{not json", 400),
    (b"", 400),
    (b"[]", 400),
    (b'{"messages": [{"role": "user", "content": "x"}]}', 400),  # no model
    (b'{"model": 5, "messages": []}', 400),
    (b'{"model": "fast", "messages": []}', 400),
    (b'{"model": "fast", "messages": "hello"}', 400),
    (b'{"model": "fast", "messages": [{"role": "wizard", "content": "x"}]}', 400),
    (b'{"model": "fast", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}', 400),
    (b'{"model": "fast", "messages": [{"role": "user", "content": "x"}], "bogus_field": 1}', 400),
    (b'{"model": "fast", "messages": [{"role": "user", "content": "x"}], "n": 0}', 400),
    (b'{"model": "fast", "messages": [{"role": "user", "content": "\xff\xfe"}]}', 400),  # invalid UTF-8
    (b'{"model": "unknown-model", "messages": [{"role": "user", "content": "x"}]}', 404),
]


@pytest.mark.parametrize(("body", "status"), OPENAI_CASES)
def test_openai_bad_bodies(server: Server, body: bytes, status: int) -> None:
    r = httpx.post(server.url + "/v1/chat/completions", headers=AUTH, content=body)
    _openai_error(r, status)


ANTHROPIC_CASES = [
    (b"{not json", 400),
    (b'{"model": "claude", "messages": [{"role": "user", "content": "x"}]}', 400),  # no max_tokens
    (b'{"model": "claude", "max_tokens": 5, "messages": []}', 400),
    (b'{"model": "claude", "max_tokens": "five", "messages": [{"role": "user", "content": "x"}]}', 400),
    (b'{"model": "claude", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "bogus": 1}', 400),
    (b'{"model": "nope", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}', 404),
]


@pytest.mark.parametrize(("body", "status"), ANTHROPIC_CASES)
def test_anthropic_bad_bodies(server: Server, body: bytes, status: int) -> None:
    r = httpx.post(server.url + "/v1/messages", headers={"x-api-key": ADMIN_KEY}, content=body)
    _anthropic_error(r, status)


def test_oversized_body_is_413(server: Server) -> None:
    big = b'{"model": "fast", "messages": [{"role": "user", "content": "' + b"a" * (33 * 1024 * 1024) + b'"}]}'
    r = httpx.post(server.url + "/v1/chat/completions", headers=AUTH, content=big, timeout=60)
    _openai_error(r, 413)


def test_unknown_path_and_method(server: Server) -> None:
    _openai_error(httpx.get(server.url + "/v1/nothing-here", headers=AUTH), 404)
    _openai_error(httpx.get(server.url + "/v1/chat/completions", headers=AUTH), 405)
    _anthropic_error(httpx.get(server.url + "/v1/messages", headers=AUTH), 405)


def test_missing_key_beats_bad_body(server: Server) -> None:
    r = httpx.post(server.url + "/v1/chat/completions", content=b"{not json")
    _openai_error(r, 401)


def test_server_survives_and_still_serves(server: Server) -> None:
    r = httpx.post(server.url + "/v1/chat/completions", headers=AUTH, json={"model": "fast", "messages": MSG})
    assert r.status_code == 200


def test_numbers_beyond_rfc_8785_are_recorded_not_a_server_error(server: Server) -> None:
    """An integer past 2^53 (JSON allows it, RFC 8785 does not) with a character outside
    the BMP (which sends the digest to the RFC 8785 reference): the audit digest falls
    back to plain sorted JSON instead of failing the request (found by the fuzz test)."""
    huge = 9007199254740993
    r = httpx.post(server.url + "/v1/embeddings", headers=AUTH,
                   json={"input": "\U00010000", "model": "unknown-model", "dimensions": huge})
    _openai_error(r, 404)
    r = httpx.post(server.url + "/v1/chat/completions", headers=AUTH,
                   json={"model": "unknown-model", "max_tokens": huge, "messages": [{"role": "user", "content": "\U00010000"}]})
    _openai_error(r, 404)
