"""The OpenAI embeddings dialect: `POST /v1/embeddings` bodies in, `list` objects out.

`input` may be a string, a list of strings, a list of token ids, or a list of token
id lists; it may not be empty, nor hold empty strings or empty token lists.

The openai SDK asks for `encoding_format: "base64"` unless the caller names a
format, and decodes the answer as little-endian float32 (`array("f")`); so
`encode_embedding_response` writes base64 of little-endian float32 when asked, and
plain float lists otherwise (also when the request named no format).
"""

from __future__ import annotations

import base64
import sys
from array import array
from typing import Literal

import msgspec

from lockgate.core.types import EmbeddingRequest, EmbeddingResponse
from lockgate.errors import InvalidRequest
from lockgate.gateway.openai_errors import check_range, decode_openai
from lockgate.gateway.openai_types import EmbeddingBody

__all__ = ["decode_embedding_request", "encode_embedding_response"]


def decode_embedding_request(body: bytes) -> EmbeddingRequest:
    """An embeddings body as an `EmbeddingRequest`; raises `InvalidRequest`."""
    wire = decode_openai(body, EmbeddingBody)
    if not wire.model:
        raise InvalidRequest("you must provide a model parameter", param="model")
    check_range("dimensions", wire.dimensions, 1)
    return EmbeddingRequest(
        model=wire.model,
        input=_input(wire.input),
        dimensions=wire.dimensions,
        user=wire.user,
        encoding_format=wire.encoding_format or "float",
    )


def _empty(param: str, what: str) -> InvalidRequest:
    return InvalidRequest(
        f"Invalid '{param}': empty {what}. Expected a non-empty {what}, but got an empty {what} instead.",
        param=param,
    )


def _input(value: str | list[str | int | list[int]]) -> list[str] | list[list[int]]:
    if isinstance(value, str):
        if not value:
            raise _empty("input", "string")
        return [value]
    if not value:
        raise _empty("input", "array")
    if len(strings := [v for v in value if isinstance(v, str)]) == len(value):
        for i, text in enumerate(strings):
            if not text:
                raise _empty(f"input[{i}]", "string")
        return strings
    if len(tokens := [v for v in value if isinstance(v, int)]) == len(value):
        return [tokens]
    if len(lists := [v for v in value if isinstance(v, list)]) == len(value):
        for i, ids in enumerate(lists):
            if not ids:
                raise _empty(f"input[{i}]", "array")
        return lists
    raise InvalidRequest(
        "Invalid 'input': expected a string, an array of strings, an array of integers or an "
        "array of integer arrays, but got an array mixing these.",
        param="input",
    )


def _vector(values: list[float], encoding_format: Literal["float", "base64"]) -> list[float] | str:
    if encoding_format == "float":
        return values
    packed = array("f", values)
    if sys.byteorder == "big":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


def encode_embedding_response(
    resp: EmbeddingResponse, *, model: str, encoding_format: Literal["float", "base64"]
) -> bytes:
    """A `list` of `embedding` objects; `model` is the name the client asked for."""
    data = [
        {"object": "embedding", "index": i, "embedding": _vector(v, encoding_format)}
        for i, v in enumerate(resp.data)
    ]
    usage = {"prompt_tokens": resp.usage.input_tokens, "total_tokens": resp.usage.total_tokens}
    return msgspec.json.encode({"object": "list", "data": data, "model": model, "usage": usage})
