"""The OpenAPI description of the gateway's own endpoints (served at /openapi.json).

It describes the subset of the OpenAI and Anthropic APIs lockgate serves, so that
API fuzzers (schemathesis) and client generators can use it. The authoritative wire
formats are the providers' own; see docs/api.md.
"""

from __future__ import annotations

from typing import Any

from lockgate import __version__

__all__ = ["openapi_document"]


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


_ERRORS = {
    "400": _error("Invalid request"),
    "401": _error("Missing or wrong credentials"),
    "404": _error("Unknown model"),
    "413": _error("Body too large"),
    "429": _error("Rate limited upstream"),
    "502": _error("Upstream failure"),
    "503": _error("No route available"),
    "504": _error("Upstream timeout"),
}

_MESSAGE = {
    "type": "object",
    "required": ["role", "content"],
    "properties": {
        "role": {"type": "string", "enum": ["system", "developer", "user", "assistant"]},
        "content": {"type": "string"},
    },
}

_CHAT = {
    "type": "object",
    "required": ["model", "messages"],
    "properties": {
        "model": {"type": "string"},
        "messages": {"type": "array", "items": _MESSAGE, "minItems": 1},
        "max_tokens": {"type": "integer", "minimum": 1},
        "max_completion_tokens": {"type": "integer", "minimum": 1},
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        "top_p": {"type": "number", "minimum": 0, "maximum": 1},
        "n": {"type": "integer", "minimum": 1, "maximum": 128},
        "stop": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "seed": {"type": "integer"},
        "user": {"type": "string"},
        "stream": {"type": "boolean"},
        "stream_options": {"type": "object", "properties": {"include_usage": {"type": "boolean"}}},
        "tools": {"type": "array", "items": {"type": "object"}},
        "tool_choice": {},
        "response_format": {"type": "object"},
        "prompt_variables": {"type": "object"},
    },
}

_MESSAGES = {
    "type": "object",
    "required": ["model", "max_tokens", "messages"],
    "properties": {
        "model": {"type": "string"},
        "max_tokens": {"type": "integer", "minimum": 1},
        "messages": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["role", "content"],
                "properties": {
                    "role": {"type": "string", "enum": ["user", "assistant"]},
                    "content": {"type": "string"},
                },
            },
        },
        "system": {"type": "string"},
        "stop_sequences": {"type": "array", "items": {"type": "string"}},
        "stream": {"type": "boolean"},
        "temperature": {"type": "number", "minimum": 0, "maximum": 1},
        "top_p": {"type": "number"},
        "top_k": {"type": "integer"},
        "tools": {"type": "array", "items": {"type": "object"}},
        "tool_choice": {"type": "object"},
    },
}

_EMBEDDINGS = {
    "type": "object",
    "required": ["model", "input"],
    "properties": {
        "model": {"type": "string"},
        "input": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "encoding_format": {"type": "string", "enum": ["float", "base64"]},
        "dimensions": {"type": "integer", "minimum": 1},
        "user": {"type": "string"},
    },
}


def _post(summary: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
            "responses": {"200": {"description": "OK"}, **_ERRORS},
        }
    }


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {"title": "lockgate gateway", "version": __version__},
        "security": [{"bearer": []}],
        "paths": {
            "/v1/chat/completions": _post("OpenAI chat completions", _CHAT),
            "/v1/embeddings": _post("OpenAI embeddings", _EMBEDDINGS),
            "/v1/messages": _post("Anthropic messages", _MESSAGES),
            "/v1/models": {
                "get": {"summary": "Configured models", "responses": {"200": {"description": "OK"}, **_ERRORS}}
            },
            "/healthz": {"get": {"summary": "Readiness", "security": [], "responses": {"200": {"description": "OK"}}}},
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {"error": {"type": "object"}, "type": {"type": "string"}},
                }
            },
        },
    }
