"""A tool's arguments are checked against its input schema (`registry.quick_check` for
the schemas SDK servers generate, jsonschema for the rest and for every refusal): the
quick check never passes what jsonschema refuses, and it declines every schema it does
not fully understand."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from jsonschema.validators import validator_for

from lockgate.mcp.registry import quick_check

VALUES: list[Any] = [0, 1, -3, 1.0, 2.5, True, False, None, "", "x", "2024-01-01", [], [1], {}, {"a": 1}]

SCHEMAS: list[dict[str, Any]] = [
    {"properties": {"customer_id": {"title": "Customer Id", "type": "integer"}}, "required": ["customer_id"],
     "title": "lookup_customerArguments", "type": "object"},
    {"properties": {"limit": {"default": 10, "title": "Limit", "type": "integer"}}, "type": "object"},
    {"type": "object", "properties": {"n": {"type": "number"}, "s": {"type": "string", "format": "date"},
                                      "b": {"type": "boolean"}}, "required": ["n"], "additionalProperties": False},
    {"type": "object", "properties": {"v": {"type": ["string", "null"]}, "any": {}, "t": True}},
    {"$schema": "http://json-schema.org/draft-04/schema#", "type": "object",
     "properties": {"i": {"type": "integer"}, "o": {"type": "object"}, "a": {"type": "array"}}},
    {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
     "properties": {"i": {"type": "integer"}}, "required": ["i"], "additionalProperties": True},
    {},
]

DECLINED: list[dict[str, Any]] = [
    {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}},
    {"type": "object", "properties": {"e": {"enum": ["a", "b"]}}},
    {"type": "object", "properties": {"r": {"$ref": "#/$defs/R"}}, "$defs": {"R": {"type": "string"}}},
    {"type": "object", "properties": {"x": {"type": "any"}}},
    {"type": "object", "properties": {"x": False}},
    {"type": "object", "additionalProperties": {"type": "string"}},
    {"type": "object", "patternProperties": {"^x": {"type": "string"}}},
    {"type": "object", "properties": {"x": {"type": "string"}}, "required": [1]},
    {"type": "array"},
    {"anyOf": [{"type": "object"}]},
]


def _argument_sets(schema: dict[str, Any]) -> list[dict[str, Any]]:
    names = [*schema.get("properties", {}), "extra"]
    sets: list[dict[str, Any]] = [{}]
    for name in names:
        sets += [{name: v} for v in VALUES]
    for a, b in itertools.combinations(names, 2):
        sets += [{a: v, b: w} for v, w in itertools.product(VALUES[:8], VALUES[5:])]
    return sets


@pytest.mark.parametrize("schema", SCHEMAS, ids=range(len(SCHEMAS)))
def test_the_quick_check_never_passes_what_jsonschema_refuses(schema: dict[str, Any]) -> None:
    check = quick_check(schema)
    assert check is not None
    validator = validator_for(schema)(schema)
    passed = 0
    for arguments in _argument_sets(schema):
        if check(arguments):
            passed += 1
            assert validator.is_valid(arguments), (schema, arguments)
    assert passed > 0


def test_the_quick_check_passes_the_usual_calls() -> None:
    check = quick_check(SCHEMAS[0])
    assert check is not None
    assert check({"customer_id": 1})
    assert not check({"customer_id": "1"}) and not check({}) and not check({"customer_id": True})
    closed = quick_check(SCHEMAS[2])
    assert closed is not None and closed({"n": 1.5, "s": "not a date", "b": False}) and not closed({"n": 1, "z": 0})


@pytest.mark.parametrize("schema", DECLINED, ids=range(len(DECLINED)))
def test_other_schemas_are_left_to_jsonschema(schema: dict[str, Any]) -> None:
    assert quick_check(schema) is None
