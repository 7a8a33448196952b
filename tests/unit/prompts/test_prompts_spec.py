"""Prompt specs, templates and prompt files: canonical form and hash, the Jinja2
sandbox, variable checks, and the TOML round trip that keeps `push` idempotent."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from lockgate.errors import InvalidRequest
from lockgate.prompts.files import dumps_prompt, read_prompt_dir, write_prompt
from lockgate.prompts.render import check_templates, compile_prompt, make_environment
from lockgate.prompts.spec import PromptSpec, parse_spec
from lockgate.prompts.toml_writer import dumps

CHAT: dict[str, Any] = {
    "model": "fast",
    "params": {"temperature": 0.2, "max_tokens": 50},
    "variables": {"customer": "string", "tier": {"type": "string", "default": "free"}, "n": "integer"},
    "messages": [
        {"role": "system", "content": "You help {{ customer }} ({{ tier }}).\nAnswer in {{ n }} lines."},
        {"role": "user", "content": "{% for i in range(n) %}line {{ i }} {% endfor %}"},
    ],
    "response_schema": {"type": "object", "properties": {"answer": {"type": "string", "default": None}}},
}


def compiled(content: dict[str, Any], name: str = "support") -> Any:
    env = make_environment()
    spec = parse_spec(content)
    check_templates(env, spec)
    return compile_prompt(env, name, 1, spec.content_hash(), spec)


def test_shorthands_and_full_forms_hash_the_same() -> None:
    full = {**CHAT, "kind": "chat", "variables": {
        "customer": {"type": "string"}, "tier": {"type": "string", "default": "free"}, "n": {"type": "integer"}}}
    reordered = dict(reversed(list(CHAT.items())))
    assert parse_spec(full).content_hash() == parse_spec(CHAT).content_hash() == parse_spec(reordered).content_hash()
    changed = {**CHAT, "params": {"temperature": 0.3, "max_tokens": 50}}
    assert parse_spec(changed).content_hash() != parse_spec(CHAT).content_hash()
    assert parse_spec(CHAT).canonical()["response_schema"] == {"type": "object", "properties": {"answer": {"type": "string"}}}


def test_render_fills_defaults_and_keeps_the_roles() -> None:
    messages = compiled(CHAT).render({"customer": "Ada", "n": 2})
    assert [(m.role, m.text()) for m in messages] == [
        ("system", "You help Ada (free).\nAnswer in 2 lines."),
        ("user", "line 0 line 1 "),
    ]


def test_a_text_prompt_is_one_user_message() -> None:
    prompt = compiled({"kind": "text", "model": "fast", "template": "Summarise: {{ doc }}", "variables": ["doc"]})
    assert [(m.role, m.text()) for m in prompt.render({"doc": "abc"})] == [("user", "Summarise: abc")]


@pytest.mark.parametrize(("variables", "expected"), [
    ({}, "missing customer, n"),
    ({"customer": "Ada", "n": 1, "colour": "red"}, "not declared by the prompt: colour"),
    ({"customer": "Ada", "n": "two"}, "n must be of type integer, got string"),
    ({"customer": 7, "n": True}, "customer must be of type string, got integer; n must be of type integer, got boolean"),
])
def test_variable_problems_are_named(variables: dict[str, Any], expected: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        compiled(CHAT).render(variables)
    assert expected in err.value.message
    assert "Declared variables: customer (string), tier (string), n (integer)." in err.value.message
    assert err.value.param == "prompt_variables"
    assert err.value.status == 400


@pytest.mark.parametrize(("template", "expected"), [
    ("{{ ''.__class__.__mro__ }}", "could not be rendered"),
    ("{{ 'x' * 1000000 }}", "repetition too large"),
    ("{{ 10 ** 100000 }}", "exponent too large"),
    ("{% for i in range(10**7) %}{% endfor %}", "could not be rendered"),
    ("{{ doc.missing_attribute.deeper }}", "could not be rendered"),
])
def test_the_sandbox_refuses_unsafe_templates(template: str, expected: str) -> None:
    prompt = compiled({"kind": "text", "model": "fast", "template": template, "variables": ["doc"]})
    with pytest.raises(InvalidRequest) as err:
        prompt.render({"doc": "abc"})
    assert expected in err.value.message


@pytest.mark.parametrize(("content", "expected"), [
    ({"model": "fast", "messages": [{"role": "user", "content": "{{ who }}"}]}, "uses who, which is not declared"),
    ({"model": "fast", "messages": [{"role": "user", "content": "{% if %}"}]}, "template syntax error on line 1"),
    ({"model": "fast", "messages": []}, "a chat prompt has at least one message"),
    ({"model": "fast", "kind": "text"}, "a text prompt has a `template`"),
    ({"model": "fast", "template": "x", "messages": [{"role": "user", "content": "y"}]}, "not `template`"),
    ({"model": "fast", "messages": [{"role": "user", "content": "x"}], "colour": 1}, "colour: unknown key"),
    ({"model": "fast", "messages": [{"role": "tool", "content": "x"}]}, "messages.0.role"),
    ({"model": "fast", "messages": [{"role": "user", "content": "x"}], "params": {"temperature": 5}}, "params.temperature"),
    ({"model": "fast", "messages": [{"role": "user", "content": "x"}], "variables": {"for": "string"}}, "not a usable variable name"),
    ({"model": "fast", "messages": [{"role": "user", "content": "x"}],
      "variables": {"n": {"type": "integer", "default": "x"}}}, "is not of type integer"),
])
def test_bad_prompts_are_refused_with_the_reason(content: dict[str, Any], expected: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        env = make_environment()
        check_templates(env, parse_spec(content))
    assert expected in err.value.message


def test_toml_writer_round_trips() -> None:
    data: dict[str, Any] = {
        "name": "x", "n": 1, "f": 2.5, "b": True, "empty": {}, "list": [1, "two", {"k": "v"}],
        "text": 'line 1\n"""quoted"""\n\ttab \\ back \x01 control\r\n',
        "table": {"a": {"b": {"c": [1, 2]}}, "weird key": "v"},
        "rows": [{"role": "user", "content": "one\ntwo"}, {"role": "assistant", "content": "x"}],
    }
    assert tomllib.loads(dumps(data)) == data


def test_pulled_files_push_back_unchanged(tmp_path: Path) -> None:
    spec = parse_spec(CHAT)
    write_prompt(tmp_path, "support", spec.canonical())
    text = (tmp_path / "support.toml").read_text()
    assert 'customer = "string"' in text and "[[messages]]" in text and "{{ customer }}" in text
    (read,) = read_prompt_dir(tmp_path).items()
    assert read[0] == "support"
    assert PromptSpec.model_validate(read[1]).content_hash() == spec.content_hash()
    text_prompt = parse_spec({"kind": "text", "model": "m", "template": "T {{ a }}\n", "variables": ["a"]})
    data = tomllib.loads(dumps_prompt("t", text_prompt.canonical()))
    assert data.pop("name") == "t"
    assert parse_spec(data).content_hash() == text_prompt.content_hash()


def test_prompt_dir_problems_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('model = "fast"\n[[messages]\n')
    with pytest.raises(InvalidRequest, match=r"a\.toml: invalid TOML"):
        read_prompt_dir(tmp_path)
    (tmp_path / "a.toml").write_text('name = "b"\nmodel = "fast"\n')
    (tmp_path / "b.toml").write_text('model = "fast"\n')
    with pytest.raises(InvalidRequest, match=r"prompt 'b' is also defined in .*a\.toml"):
        read_prompt_dir(tmp_path)
    with pytest.raises(InvalidRequest, match="not a folder"):
        read_prompt_dir(tmp_path / "missing")
