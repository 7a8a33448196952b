"""The OpenAI streaming dialect: internal `StreamEvent`s to `chat.completion.chunk` SSE frames.

Frames come out exactly as OpenAI sends them:

    data: {"id":..,"object":"chat.completion.chunk","created":..,"model":..,
           "system_fingerprint":null,"choices":[{"index":0,"delta":{..},
           "logprobs":null,"finish_reason":null}]}

- the first frame of each choice carries `delta: {"role": "assistant", "content": ""}`
  (choice 0's is sent on `StreamStart`, the others' before their first delta);
- text: `delta: {"content": ".."}`;
- a tool call's start: `delta: {"tool_calls": [{"index", "id", "type": "function",
  "function": {"name", "arguments": ""}}]}`, then fragments as
  `delta: {"tool_calls": [{"index", "function": {"arguments": ".."}}]}`;
- finish: an empty delta and `finish_reason` (internal "error" becomes "stop");
- with `include_usage`, every chunk has `"usage": null` and usage comes in a last
  chunk with `"choices": []`;
- `done()` is `data: [DONE]`; `error(err)` is `data: {"error": {...}}`, which the
  openai SDK raises as `APIError` mid-stream.

The constant head of each chunk is encoded once per stream.
"""

from __future__ import annotations

from typing import Any

import msgspec

from lockgate.core.types import (
    FinishReason,
    StreamEvent,
    StreamFinish,
    StreamStart,
    StreamTextDelta,
    StreamToolCallDelta,
    StreamToolCallStart,
    StreamUsage,
    Usage,
)
from lockgate.errors import LockgateError
from lockgate.gateway.openai_errors import error_payload

__all__ = ["ChatStreamEncoder", "openai_finish_reason", "openai_usage"]

_encode = msgspec.json.encode


def openai_finish_reason(reason: FinishReason) -> str:
    """OpenAI has no "error" finish reason; a broken stream that still finished says "stop"."""
    return "stop" if reason == "error" else reason


def openai_usage(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_input_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


class ChatStreamEncoder:
    """Encodes one stream's events; `model` is the name the client asked for."""

    __slots__ = ("_head", "_include_usage", "_model", "_started", "_tail")

    def __init__(self, model: str, include_usage: bool) -> None:
        self._model = _encode(model)
        self._include_usage = include_usage
        self._tail = b'],"usage":null}\n\n' if include_usage else b"]}\n\n"
        self._head = self._make_head("", 0)
        self._started: set[int] = set()

    def _make_head(self, chunk_id: str, created: int) -> bytes:
        return (
            b'data: {"id":'
            + _encode(chunk_id)
            + b',"object":"chat.completion.chunk","created":'
            + str(created).encode()
            + b',"model":'
            + self._model
            + b',"system_fingerprint":null,"choices":['
        )

    def _chunk(self, index: int, delta: bytes, finish: bytes = b"null") -> bytes:
        return b"".join(
            (
                self._head,
                b'{"index":',
                str(index).encode(),
                b',"delta":',
                delta,
                b',"logprobs":null,"finish_reason":',
                finish,
                b"}",
                self._tail,
            )
        )

    def _open(self, index: int) -> bytes:
        """The role frame, once per choice, before anything else of that choice."""
        if index in self._started:
            return b""
        self._started.add(index)
        return self._chunk(index, b'{"role":"assistant","content":""}')

    def encode(self, event: StreamEvent) -> bytes:
        """Zero or more complete SSE frames for one event."""
        match event:
            case StreamStart():
                self._head = self._make_head(event.id, event.created)
                return self._open(0)
            case StreamTextDelta():
                if not event.text:
                    return self._open(event.index)
                delta = b'{"content":' + _encode(event.text) + b"}"
                return self._open(event.index) + self._chunk(event.index, delta)
            case StreamToolCallStart():
                call = {
                    "index": event.tool_index,
                    "id": event.id,
                    "type": "function",
                    "function": {"name": event.name, "arguments": ""},
                }
                delta = _encode({"tool_calls": [call]})
                return self._open(event.index) + self._chunk(event.index, delta)
            case StreamToolCallDelta():
                call = {"index": event.tool_index, "function": {"arguments": event.arguments}}
                delta = _encode({"tool_calls": [call]})
                return self._open(event.index) + self._chunk(event.index, delta)
            case StreamFinish():
                finish = _encode(openai_finish_reason(event.finish_reason))
                return self._open(event.index) + self._chunk(event.index, b"{}", finish)
            case StreamUsage():
                if not self._include_usage:
                    return b""
                return self._head + b'],"usage":' + _encode(openai_usage(event.usage)) + b"}\n\n"

    def done(self) -> bytes:
        return b"data: [DONE]\n\n"

    def error(self, err: LockgateError) -> bytes:
        """The frame for an error after the first byte; the openai SDK raises `APIError`."""
        return b"data: " + _encode({"error": error_payload(err)}) + b"\n\n"
