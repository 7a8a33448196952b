"""The Anthropic streaming dialect: internal `StreamEvent`s to Messages API SSE events.

Events come out as Anthropic sends them (`event: NAME\\ndata: {json}\\n\\n`):

    message_start        on StreamStart: the message with empty content; usage holds
                         `input_tokens_estimate` (the real count comes at the end)
    content_block_start  a text block when text first arrives (or follows a tool
                         block); a tool_use block (`input: {}`) on each tool start
    content_block_delta  text_delta / input_json_delta (`partial_json`)
    content_block_stop   when the next block starts, or at the finish
    message_delta        from `finish()`: stop_reason, stop_sequence, and the usage
    message_stop         from `finish()`

`finish()` is called once the provider stream has ended, because `StreamUsage` comes
after `StreamFinish`. Only choice 0 is rendered. `error(err)` is the `error` event,
which the anthropic SDK raises as an `APIStatusError`. Should a provider yield
anything before `StreamStart` (it should not), message_start goes out first anyway,
with the id "msg_lockgate".
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
from lockgate.gateway.anthropic_errors import error_payload

__all__ = [
    "MessageStreamEncoder",
    "anthropic_message_id",
    "anthropic_stop_reason",
    "anthropic_usage",
]

_encode = msgspec.json.encode


def anthropic_message_id(message_id: str) -> str:
    """Anthropic message ids start with "msg_"."""
    return message_id if message_id.startswith("msg_") else "msg_" + message_id


def anthropic_stop_reason(reason: FinishReason, stop_sequence: str | None) -> str:
    match reason:
        case "stop":
            return "stop_sequence" if stop_sequence else "end_turn"
        case "length":
            return "max_tokens"
        case "tool_calls":
            return "tool_use"
        case "content_filter":
            return "refusal"
        case "error":
            return "end_turn"


def anthropic_usage(usage: Usage) -> dict[str, int]:
    """Anthropic counts cache reads and writes apart from `input_tokens`; the internal
    `input_tokens` includes both."""
    uncached = usage.input_tokens - usage.cached_input_tokens - usage.cache_write_tokens
    return {
        "input_tokens": max(0, uncached),
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cached_input_tokens,
    }


def _frame(name: bytes, payload: dict[str, Any]) -> bytes:
    return b"event: " + name + b"\ndata: " + _encode(payload) + b"\n\n"


class MessageStreamEncoder:
    """Encodes one stream's events; `model` is the name the client asked for."""

    __slots__ = (
        "_finished",
        "_input_estimate",
        "_model",
        "_next_index",
        "_open",
        "_open_is_text",
        "_started",
        "_stop_reason",
        "_stop_sequence",
        "_tool_blocks",
        "_usage",
    )

    def __init__(self, model: str, *, input_tokens_estimate: int = 0) -> None:
        self._model = model
        self._input_estimate = input_tokens_estimate
        self._started = False
        self._finished = False
        self._next_index = 0
        self._open: int | None = None  # the open content block
        self._open_is_text = False
        self._tool_blocks: dict[int, int] = {}  # tool_index -> block index
        self._stop_reason = "end_turn"
        self._stop_sequence: str | None = None
        self._usage: Usage | None = None

    def encode(self, event: StreamEvent) -> bytes:
        """Zero or more complete SSE events for one internal event."""
        match event:
            case StreamStart():
                return self._begin(event.id)
            case StreamUsage():
                self._usage = event.usage
                return b""
            case _ if event.index != 0:
                return b""
            case StreamTextDelta():
                return self._text(event.text)
            case StreamToolCallStart():
                return self._tool_start(event)
            case StreamToolCallDelta():
                return self._tool_delta(event)
            case StreamFinish():
                self._stop_reason = anthropic_stop_reason(event.finish_reason, event.stop_sequence)
                is_sequence = self._stop_reason == "stop_sequence"
                self._stop_sequence = event.stop_sequence if is_sequence else None
                return self._close()

    def finish(self) -> bytes:
        """The closing events: the open block's stop, message_delta, message_stop."""
        if self._finished:
            return b""
        self._finished = True
        usage = anthropic_usage(self._usage) if self._usage else {"output_tokens": 0}
        delta = {"stop_reason": self._stop_reason, "stop_sequence": self._stop_sequence}
        return (
            self._begin()
            + self._close()
            + _frame(b"message_delta", {"type": "message_delta", "delta": delta, "usage": usage})
            + b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
        )

    def error(self, err: LockgateError) -> bytes:
        """The `error` event for a failure after the first byte."""
        return _frame(b"error", error_payload(err))

    # --- blocks ---------------------------------------------------------------------

    def _begin(self, message_id: str = "lockgate") -> bytes:
        if self._started:
            return b""
        self._started = True
        usage = {
            "input_tokens": self._input_estimate,
            "output_tokens": 0,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
        message: dict[str, Any] = {
            "id": anthropic_message_id(message_id),
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        return _frame(b"message_start", {"type": "message_start", "message": message})

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        index, self._open, self._open_is_text = self._open, None, False
        return (
            b'event: content_block_stop\ndata: {"type":"content_block_stop","index":%d}\n\n' % index
        )

    def _start_block(self, block: dict[str, Any]) -> bytes:
        """Closes the open block, opens the next one."""
        out = self._begin() + self._close()
        index = self._next_index
        self._next_index += 1
        self._open = index
        payload = {"type": "content_block_start", "index": index, "content_block": block}
        return out + _frame(b"content_block_start", payload)

    def _delta(self, index: int, delta: bytes) -> bytes:
        return (
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,"delta":'
            % index
            + delta
            + b"}\n\n"
        )

    def _text(self, text: str) -> bytes:
        if not text:
            return b""
        out = b""
        if not self._open_is_text:
            out = self._start_block({"type": "text", "text": ""})
            self._open_is_text = True
        assert self._open is not None
        return out + self._delta(self._open, b'{"type":"text_delta","text":' + _encode(text) + b"}")

    def _tool_start(self, event: StreamToolCallStart) -> bytes:
        block: dict[str, Any] = {
            "type": "tool_use",
            "id": event.id,
            "name": event.name,
            "input": {},
        }
        out = self._start_block(block)
        assert self._open is not None
        self._tool_blocks[event.tool_index] = self._open
        return out

    def _tool_delta(self, event: StreamToolCallDelta) -> bytes:
        index = self._tool_blocks.get(event.tool_index)
        if index is None or not event.arguments:
            return b""
        partial = b'{"type":"input_json_delta","partial_json":' + _encode(event.arguments) + b"}"
        return self._delta(index, partial)
