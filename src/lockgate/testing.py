"""Test helpers: a fake upstream model server over real HTTP.

`FakeProvider` serves the OpenAI, Azure OpenAI and Anthropic wire formats the way those
APIs do, so the official SDKs accept it and lockgate's adapters can be tested against it.
It runs in a background thread with its own event loop (or on the current loop with
`async with` / `await start()`):

    with FakeProvider(api_key="sk-test") as fake:
        client = openai.OpenAI(base_url=fake.url + "/v1", api_key="sk-test")
        anthropic.Anthropic(base_url=fake.url, api_key="sk-test")

Endpoints:
    POST /v1/chat/completions             OpenAI chat, JSON or SSE (`stream_options.include_usage`)
    POST /v1/embeddings                   deterministic vectors, `encoding_format` float or base64
    GET  /v1/models                       model list (Anthropic's shape if `anthropic-version` is sent)
    POST /openai/deployments/{name}/chat/completions?api-version=...   Azure (`api-key` header)
    POST /openai/deployments/{name}/embeddings?api-version=...
    POST /v1/messages                     Anthropic messages, JSON or the full SSE event sequence
    POST /v1/messages/count_tokens

Answers are deterministic. The text is "echo: <last user text>" (or what `reply_with` gives).
When tools are given and the answer text contains "call_tool" (or tool_choice forces a tool,
or the `tool` directive is used), the answer is a call to the first (or forced) tool with
arguments `{"x": 1}`. Tokens are words: usage counts the words of the input and of the answer;
`max_tokens` keeps that many words (finish_reason "length", stop_reason "max_tokens"); a stop
sequence ends the answer before it (finish_reason "stop", stop_reason "stop_sequence"). With
`api_key` set, a missing or wrong key gets a 401 in the dialect's error format.

Scripting from Python (thread-safe; persistent settings last until `reset()`):
    fail_next(n, status=500, retry_after=None, body=None)   the next n chat/embedding calls fail
    set_delay(seconds, chunk_gap=0.0)   wait before the first byte, and between SSE events
    cut_stream_after(n_events)          streams close after n SSE events, without their end
    fail_stream_before_first_byte()     streams: the connection closes before any byte
    omit_stream_usage()                 streams: ignore `stream_options.include_usage`
    reply_with(text | callable(request_json) -> text)
    requests, reset()

Scripting by model name, for clients in another process: words after `fake-`, separated by
dashes, in any combination (e.g. `fake-slow-0.5-cut-3`, `fake-fail-503-times-2-retry-1`):
    fail-<status>, <status>   answer with that HTTP error: fake-fail-503, fake-fail-429, fake-400
    times-<n>                 ... only for the first n requests naming this model
    retry-<seconds>           ... with a `retry-after` header (a 429 has `retry-after: 1` by default)
    slow-<seconds>            wait before the first byte: fake-slow-2.5
    gap-<seconds>             wait between SSE events
    cut-<n>                   streams close after n SSE events, without their end: fake-cut-3
    drop                      close the connection before any byte (streaming or not)
    tool                      answer with a tool call when tools are given
    nousage                   streams: ignore `stream_options.include_usage`
Other words are ignored, so `fake-model` is a plain model. Azure directives go in the
deployment name.

Standalone: `python -m lockgate.testing --port 9100 [--api-key KEY]` writes its URL to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import logging
import random
import re
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Literal, NamedTuple, Self, cast

import msgspec
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

__all__ = ["FakeProvider", "RecordedRequest", "Reply"]

Reply = str | Callable[[Any], str]
"""A scripted answer: a text, or a function of the request's JSON body returning one."""

Dialect = Literal["openai", "azure", "anthropic"]

_log = logging.getLogger(__name__)
_TOOL_ARGUMENTS = '{"x": 1}'
_TOOL_FRAGMENTS = ('{"x"', ": ", "1}")
_DONE = b"data: [DONE]\n\n"
_PING = b'event: ping\ndata: {"type":"ping"}\n\n'
_MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
_SSE_HEADERS = {"content-type": "text/event-stream", "cache-control": "no-cache"}
_WORD = re.compile(r"\s*\S+(?:\s+$)?")  # a token: a word with the whitespace before it
_ANTHROPIC_ERRORS = {
    **{401: "authentication_error", 403: "permission_error", 404: "not_found_error", 413: "request_too_large"},
    **{429: "rate_limit_error", 529: "overloaded_error"},
}
_DIRECTIVES_WITH_VALUES = ("fail", "times", "retry", "slow", "gap", "cut")
_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


class RecordedRequest(NamedTuple):
    """One request the fake received. `path` includes the query string."""

    path: str
    headers: CIMultiDictProxy[str]
    json: Any


@dataclass(frozen=True, slots=True)
class _Failure:
    status: int
    retry_after: float | None = None
    body: str | dict[str, Any] | None = None


@dataclass(slots=True)
class _Script:
    failures: deque[_Failure] = field(default_factory=lambda: deque[_Failure]())
    delay: float = 0.0
    gap: float = 0.0
    cut_after: int | None = None
    drop_streams: bool = False
    no_stream_usage: bool = False
    reply: Reply | None = None
    hits: dict[str, int] = field(default_factory=lambda: dict[str, int]())


@dataclass(frozen=True, slots=True)
class _Plan:
    """What to do with one request: the script and the model's directives merged."""

    delay: float
    gap: float
    failure: _Failure | None
    cut_after: int | None
    drop: bool
    tool: bool
    no_usage: bool
    reply: Reply | None


@dataclass(frozen=True, slots=True)
class _Chat:
    """A chat request, whatever its dialect."""

    model: str
    last_text: str
    input_tokens: int
    tools: list[str]
    forced_tool: str | None
    no_tools: bool
    stop: list[str]
    max_tokens: int | None
    stream: bool
    include_usage: bool
    n: int


@dataclass(frozen=True, slots=True)
class _Answer:
    pieces: list[str]  # the text, one token per piece
    tool: str | None  # the called tool's name
    finish: Literal["stop", "length", "tool_calls"]
    stop_sequence: str | None
    input_tokens: int

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def output_tokens(self) -> int:
        return len(_TOOL_FRAGMENTS) if self.tool else len(self.pieces)


# --- parsing -------------------------------------------------------------------------


def _number(word: str) -> float | None:
    try:
        return float(word)
    except ValueError:
        return None


def _parse_directives(model: str) -> dict[str, float]:
    """The model name's directives (see the module docstring): word -> value (1 for flags)."""
    if not model.startswith("fake-"):
        return {}
    words = model[5:].split("-")
    found: dict[str, float] = {}
    for i, word in enumerate(words):
        arg = _number(words[i + 1]) if i + 1 < len(words) else None
        if word in _DIRECTIVES_WITH_VALUES and arg is not None:
            found[word] = arg
        elif len(word) == 3 and word.isdigit() and word[0] in "45":
            found.setdefault("fail", float(word))
        elif word in ("drop", "tool", "nousage"):
            found[word] = 1.0
    return found


def _obj(value: Any) -> dict[str, Any]:
    """A JSON object, or {} for anything else."""
    return cast("dict[str, Any]", value) if isinstance(value, dict) else {}


def _text(content: Any) -> str:
    """The text of a message's content in either dialect (tool results included)."""
    if isinstance(content, str):
        return content
    parts = [_obj(p) for p in cast("list[Any]", content)] if isinstance(content, list) else []
    texts = [str(p.get("text", "")) if p.get("type") == "text" else _text(p.get("content")) for p in parts]
    return " ".join(t for t in texts if t)


def _forced_tool(dialect: Dialect, choice: Any, tools: list[str]) -> tuple[str | None, bool]:
    """(the tool a tool_choice forces, whether it forbids tools)."""
    if dialect == "anthropic":
        kind = _obj(choice).get("type")
        if kind == "tool":
            return str(_obj(choice)["name"]), False
        return (tools[0] if kind == "any" and tools else None), kind == "none"
    if isinstance(choice, dict):
        return str(_obj(_obj(choice)["function"])["name"]), False
    return (tools[0] if choice == "required" and tools else None), choice == "none"


def _parse_chat(dialect: Dialect, body: dict[str, Any], model: str) -> _Chat:
    messages: list[dict[str, Any]] = body["messages"]
    texts = [_text(m.get("content")) for m in messages]
    last = next(
        (t for m, t in zip(reversed(messages), reversed(texts), strict=True) if m.get("role") in ("user", "tool")), ""
    )
    system = _text(body.get("system"))
    raw_tools: list[dict[str, Any]] = body.get("tools") or []
    if dialect == "anthropic":
        tools = [str(t["name"]) for t in raw_tools]
        stop: Any = body.get("stop_sequences") or []
        max_tokens = body.get("max_tokens")
    else:
        tools = [str(t["function"]["name"]) for t in raw_tools if t.get("type") == "function"]
        stop = body.get("stop") or []
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    forced, no_tools = _forced_tool(dialect, body.get("tool_choice"), tools)
    return _Chat(
        model=model,
        last_text=last,
        input_tokens=sum(len(t.split()) for t in [system, *texts]),
        tools=tools,
        forced_tool=forced,
        no_tools=no_tools,
        stop=[stop] if isinstance(stop, str) else [str(s) for s in cast("list[Any]", stop)],
        max_tokens=int(max_tokens) if max_tokens is not None else None,
        stream=bool(body.get("stream")),
        include_usage=bool(_obj(body.get("stream_options")).get("include_usage")),
        n=int(body.get("n") or 1),
    )


def _decide(chat: _Chat, text: str, tool_directive: bool) -> _Answer:
    wants_tool = bool(chat.tools) and not chat.no_tools and (tool_directive or "call_tool" in text)
    if chat.forced_tool or wants_tool:
        return _Answer([], chat.forced_tool or chat.tools[0], "tool_calls", None, chat.input_tokens)
    stop_at, stop_sequence = len(text), None
    for s in chat.stop:
        at = text.find(s) if s else -1
        if 0 <= at < stop_at:
            stop_at, stop_sequence = at, s
    pieces = _WORD.findall(text[:stop_at])
    if chat.max_tokens is not None and len(pieces) > chat.max_tokens:
        return _Answer(pieces[: chat.max_tokens], None, "length", None, chat.input_tokens)
    return _Answer(pieces, None, "stop", stop_sequence, chat.input_tokens)


# --- rendering -----------------------------------------------------------------------


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=msgspec.json.encode(payload), status=status, headers=headers, content_type="application/json")


def _error(dialect: Dialect, status: int, message: str, failure: _Failure | None = None) -> web.Response:
    headers: dict[str, str] = {}
    if failure is not None and failure.retry_after is not None:
        headers["retry-after"] = f"{failure.retry_after:g}"
    if failure is not None and isinstance(failure.body, str):
        return web.Response(text=failure.body, status=status, headers=headers, content_type="text/plain")
    if failure is not None and failure.body is not None:
        return _json(failure.body, status, headers)
    if dialect == "anthropic":
        kind = _ANTHROPIC_ERRORS.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return _json({"type": "error", "error": {"type": kind, "message": message}}, status, headers)
    codes = {401: "invalid_api_key", 404: "model_not_found", 429: "rate_limit_exceeded"}
    kind = "server_error" if status >= 500 else "rate_limit_exceeded" if status == 429 else "invalid_request_error"
    error = {"message": message, "type": kind, "param": None, "code": codes.get(status)}
    return _json({"error": error}, status, headers)


def _openai_usage(a: _Answer, n: int) -> dict[str, int]:
    out = a.output_tokens * n
    return {"prompt_tokens": a.input_tokens, "completion_tokens": out, "total_tokens": a.input_tokens + out}


def _openai_completion(a: _Answer, chat: _Chat, ident: str, created: int) -> dict[str, Any]:
    if a.tool:
        call = {"id": f"call_{ident}", "type": "function", "function": {"name": a.tool, "arguments": _TOOL_ARGUMENTS}}
        message: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [call], "refusal": None}
    else:
        message = {"role": "assistant", "content": a.text, "refusal": None}
    choices = [{"index": i, "message": message, "logprobs": None, "finish_reason": a.finish} for i in range(chat.n)]
    return {
        "id": f"chatcmpl-{ident}",
        "object": "chat.completion",
        "created": created,
        "model": chat.model,
        "choices": choices,
        "usage": _openai_usage(a, chat.n),
        "system_fingerprint": "fp_fake",
    }


def _openai_deltas(a: _Answer, ident: str) -> list[dict[str, Any]]:
    if not a.tool:
        return [{"content": p} for p in a.pieces]
    start = {"index": 0, "id": f"call_{ident}", "type": "function", "function": {"name": a.tool, "arguments": ""}}
    rest = [{"tool_calls": [{"index": 0, "function": {"arguments": f}}]} for f in _TOOL_FRAGMENTS]
    return [{"tool_calls": [start]}, *rest]


def _openai_events(a: _Answer, chat: _Chat, ident: str, created: int) -> list[bytes]:
    head = {
        "id": f"chatcmpl-{ident}",
        "object": "chat.completion.chunk",
        "created": created,
        "model": chat.model,
        "system_fingerprint": "fp_fake",
    }

    def chunk(choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> bytes:
        payload = {**head, "choices": choices, "usage": usage} if chat.include_usage else {**head, "choices": choices}
        return b"data: " + msgspec.json.encode(payload) + b"\n\n"

    events: list[bytes] = []
    first = {"role": "assistant", "content": None if a.tool else "", "refusal": None}
    for i in range(chat.n):
        deltas = [first, *_openai_deltas(a, ident)]
        events.extend(chunk([{"index": i, "delta": d, "logprobs": None, "finish_reason": None}]) for d in deltas)
        events.append(chunk([{"index": i, "delta": {}, "logprobs": None, "finish_reason": a.finish}]))
    if chat.include_usage:
        events.append(chunk([], _openai_usage(a, chat.n)))
    events.append(_DONE)
    return events


def _anthropic_block(a: _Answer, ident: str, *, empty: bool) -> dict[str, Any]:
    if a.tool:
        return {"type": "tool_use", "id": f"toolu_{ident}", "name": a.tool, "input": {} if empty else {"x": 1}}
    return {"type": "text", "text": "" if empty else a.text}


def _anthropic_message(a: _Answer, chat: _Chat, ident: str, *, start: bool = False) -> dict[str, Any]:
    stop_reason = "stop_sequence" if a.stop_sequence else _STOP_REASONS[a.finish]
    return {
        "id": f"msg_{ident}",
        "type": "message",
        "role": "assistant",
        "model": chat.model,
        "content": [] if start else [_anthropic_block(a, ident, empty=False)],
        "stop_reason": None if start else stop_reason,
        "stop_sequence": None if start else a.stop_sequence,
        "usage": {"input_tokens": a.input_tokens, "output_tokens": 1 if start else a.output_tokens},
    }


def _sse(event: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + msgspec.json.encode(payload) + b"\n\n"


def _anthropic_events(a: _Answer, chat: _Chat, ident: str) -> list[bytes]:
    if a.tool:
        deltas = [{"type": "input_json_delta", "partial_json": f} for f in _TOOL_FRAGMENTS]
    else:
        deltas = [{"type": "text_delta", "text": p} for p in a.pieces]
    stop_reason = "stop_sequence" if a.stop_sequence else _STOP_REASONS[a.finish]
    return [
        _sse("message_start", {"type": "message_start", "message": _anthropic_message(a, chat, ident, start=True)}),
        _sse(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": _anthropic_block(a, ident, empty=True)},
        ),
        _PING,
        *(_sse("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": d}) for d in deltas),
        _sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
        _sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": a.stop_sequence},
                "usage": {"output_tokens": a.output_tokens},
            },
        ),
        _MESSAGE_STOP,
    ]


def _vector(key: str, dimensions: int) -> bytes:
    """A unit vector determined by `key`, as little-endian float32."""
    rng = random.Random(key)
    values = [rng.uniform(-1.0, 1.0) for _ in range(dimensions)]
    norm = sum(v * v for v in values) ** 0.5 or 1.0
    return struct.pack(f"<{dimensions}f", *(v / norm for v in values))


# --- the server ----------------------------------------------------------------------


class FakeProvider:
    """A fake OpenAI / Azure OpenAI / Anthropic upstream. See the module docstring."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        models: Sequence[str] = ("fake-model", "fake-embed"),
        embedding_dimensions: int = 16,
        record: bool = True,
    ) -> None:
        self.api_key = api_key
        self.host = host
        self.models = tuple(models)
        self.embedding_dimensions = embedding_dimensions
        self._wanted_port = port
        self._port: int | None = None
        self._record = record
        self._lock = threading.Lock()
        self._script = _Script()
        self._requests: list[RecordedRequest] = []
        self._counter = 0
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._started = threading.Event()
        self._startup_error: Exception | None = None

    # --- lifecycle -------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the fake provider is not running")
        return self._port

    @property
    def url(self) -> str:
        """`http://HOST:PORT`, without a trailing slash or `/v1`."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        """Serve on the running event loop (the `async with` form)."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.add_routes(
            [
                web.post("/v1/chat/completions", partial(self._chat, dialect="openai")),
                web.post("/v1/embeddings", partial(self._embeddings, dialect="openai")),
                web.get("/v1/models", self._models),
                web.post("/openai/deployments/{deployment}/chat/completions", partial(self._chat, dialect="azure")),
                web.post("/openai/deployments/{deployment}/embeddings", partial(self._embeddings, dialect="azure")),
                web.post("/v1/messages", partial(self._chat, dialect="anthropic")),
                web.post("/v1/messages/count_tokens", self._anthropic_count),
            ]
        )
        sock = socket.create_server((self.host, self._wanted_port), backlog=1024)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.SockSite(self._runner, sock, backlog=1024).start()
        self._port = sock.getsockname()[1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._port = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def __enter__(self) -> Self:
        """Serve from a background thread with its own event loop."""
        self._started.clear()
        self._startup_error = None
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._serve_in_thread(),), name="lockgate-fake", daemon=True
        )
        self._thread.start()
        if not self._started.wait(30):
            raise RuntimeError("the fake provider did not start")
        if self._startup_error is not None:
            raise self._startup_error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(30)
        self._thread = self._loop = self._stopping = None

    async def _serve_in_thread(self) -> None:
        self._loop, self._stopping = asyncio.get_running_loop(), asyncio.Event()
        try:
            await self.start()
        except Exception as exc:  # reported to the thread that called __enter__
            self._startup_error = exc
            self._started.set()
            return
        self._started.set()
        try:
            await self._stopping.wait()
        finally:
            await self.stop()

    # --- scripting -------------------------------------------------------------------

    def fail_next(
        self, n: int = 1, status: int = 500, retry_after: float | None = None, body: str | dict[str, Any] | None = None
    ) -> None:
        """The next `n` model calls fail with `status` (in the dialect's error format, or
        `body`: a dict as JSON, a str as text), with a `retry-after` header if given."""
        with self._lock:
            self._script.failures.extend([_Failure(status, retry_after, body)] * n)

    def set_delay(self, seconds: float, chunk_gap: float = 0.0) -> None:
        """Wait `seconds` before the first byte of each answer and `chunk_gap` between SSE events."""
        with self._lock:
            self._script.delay, self._script.gap = seconds, chunk_gap

    def cut_stream_after(self, n_events: int | None) -> None:
        """Close streams after `n_events` SSE events, without their end (None: don't)."""
        with self._lock:
            self._script.cut_after = n_events

    def fail_stream_before_first_byte(self, enabled: bool = True) -> None:
        """Close the connection of streaming requests before sending any byte."""
        with self._lock:
            self._script.drop_streams = enabled

    def omit_stream_usage(self, enabled: bool = True) -> None:
        """Ignore `stream_options.include_usage`, as some OpenAI-compatible servers do."""
        with self._lock:
            self._script.no_stream_usage = enabled

    def reply_with(self, reply: Reply | None) -> None:
        """Answer with this text, or the text `reply(request_json)` returns (None: echo).
        The function runs on the server's thread."""
        with self._lock:
            self._script.reply = reply

    @property
    def requests(self) -> list[RecordedRequest]:
        """The requests received so far, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        """Forget the received requests and every scripted behaviour."""
        with self._lock:
            self._script = _Script()
            self._requests.clear()

    # --- handling --------------------------------------------------------------------

    def _plan(self, model: str, stream: bool) -> _Plan:
        d = _parse_directives(model)
        with self._lock:
            s = self._script
            failure = s.failures.popleft() if s.failures else None
            hits = s.hits[model] = s.hits.get(model, 0) + 1
            if failure is None and "fail" in d and hits <= d.get("times", hits):
                status = int(d["fail"])
                failure = _Failure(status, d.get("retry", 1.0 if status == 429 else None))
            cut = d.get("cut")
            return _Plan(
                delay=d.get("slow", s.delay),
                gap=d.get("gap", s.gap),
                failure=failure,
                cut_after=int(cut) if cut is not None else s.cut_after,
                drop="drop" in d or (stream and s.drop_streams),
                tool="tool" in d,
                no_usage="nousage" in d or s.no_stream_usage,
                reply=s.reply,
            )

    def _next_id(self) -> str:
        with self._lock:
            self._counter += 1
            return f"fake{self._counter:06d}"

    async def _receive(self, request: web.Request, dialect: Dialect) -> dict[str, Any] | web.Response:
        """The JSON body, recorded; or the error response for a bad body or key."""
        raw = await request.read()
        try:
            body = msgspec.json.decode(raw) if raw else None
        except msgspec.DecodeError:
            body = None
        if self._record:
            record = RecordedRequest(request.path_qs, CIMultiDictProxy(CIMultiDict(request.headers)), body)
            with self._lock:
                self._requests.append(record)
        if self.api_key is not None and not self._authorized(request, dialect):
            return _error(dialect, 401, "Incorrect API key provided.")
        if not isinstance(body, dict):
            return _error(dialect, 400, "The request body is not valid JSON.")
        if dialect == "azure" and "api-version" not in request.query:
            return _error(dialect, 404, "Resource not found (no api-version).")
        if dialect == "anthropic" and "anthropic-version" not in request.headers:
            return _error(dialect, 400, "anthropic-version: header is required")
        return _obj(body)

    def _authorized(self, request: web.Request, dialect: Dialect) -> bool:
        bearer = request.headers.get("authorization") == f"Bearer {self.api_key}"
        if dialect == "azure":
            return request.headers.get("api-key") == self.api_key
        if dialect == "anthropic":
            return bearer or request.headers.get("x-api-key") == self.api_key
        return bearer

    async def _prelude(self, request: web.Request, plan: _Plan, dialect: Dialect) -> web.Response | None:
        """Apply the delay and a scripted failure; a response ends the request."""
        if plan.delay:
            await asyncio.sleep(plan.delay)
        if plan.drop:
            if request.transport is not None:
                request.transport.abort()
            return web.Response()
        if plan.failure is not None:
            return _error(dialect, plan.failure.status, f"Scripted failure ({plan.failure.status}).", plan.failure)
        return None

    async def _chat(self, request: web.Request, dialect: Dialect) -> web.StreamResponse:
        body = await self._receive(request, dialect)
        if isinstance(body, web.Response):
            return body
        model = request.match_info.get("deployment") or body.get("model")
        if not isinstance(model, str) or not isinstance(body.get("messages"), list):
            return _error(dialect, 400, "`model` and `messages` are required.")
        if dialect == "anthropic" and not isinstance(body.get("max_tokens"), int):
            return _error(dialect, 400, "max_tokens: Field required")
        try:
            chat = _parse_chat(dialect, body, model)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            return _error(dialect, 400, f"Malformed request: {exc!r}")
        plan = self._plan(model, chat.stream)
        if (ended := await self._prelude(request, plan, dialect)) is not None:
            return ended
        if plan.no_usage:
            chat = replace(chat, include_usage=False)
        reply = plan.reply(body) if callable(plan.reply) else plan.reply
        answer = _decide(chat, reply if reply is not None else f"echo: {chat.last_text}", plan.tool)
        ident, created = self._next_id(), int(time.time())
        if dialect == "anthropic":
            if not chat.stream:
                return _json(_anthropic_message(answer, chat, ident), headers={"request-id": f"req_{ident}"})
            events = _anthropic_events(answer, chat, ident)
        else:
            if not chat.stream:
                return _json(_openai_completion(answer, chat, ident, created), headers={"x-request-id": f"req_{ident}"})
            events = _openai_events(answer, chat, ident, created)
        return await self._stream(request, events, plan)

    async def _stream(self, request: web.Request, events: list[bytes], plan: _Plan) -> web.StreamResponse:
        response = web.StreamResponse(headers=_SSE_HEADERS)
        await response.prepare(request)
        if plan.cut_after is None and not plan.gap:
            await response.write(b"".join(events))
            return response
        for i, event in enumerate(events):
            if plan.cut_after is not None and i >= plan.cut_after:
                if request.transport is not None:
                    request.transport.abort()
                return response
            if plan.gap and i:
                await asyncio.sleep(plan.gap)
            await response.write(event)
        return response

    async def _embeddings(self, request: web.Request, dialect: Dialect) -> web.Response:
        body = await self._receive(request, dialect)
        if isinstance(body, web.Response):
            return body
        model = request.match_info.get("deployment") or body.get("model")
        raw: Any = body.get("input")
        if isinstance(raw, str) or (isinstance(raw, list) and raw and isinstance(raw[0], int)):
            raw = [raw]
        if not isinstance(model, str) or not isinstance(raw, list) or not raw:
            return _error(dialect, 400, "`model` and a non-empty `input` are required.")
        plan = self._plan(model, False)
        if (ended := await self._prelude(request, plan, dialect)) is not None:
            return ended
        dimensions = int(body.get("dimensions") or self.embedding_dimensions)
        if not 1 <= dimensions <= 4096:  # as OpenAI: a model has a maximum
            return _error(dialect, 400, "This model does not support specifying dimensions beyond 4096.")
        as_base64 = body.get("encoding_format") == "base64"
        data: list[dict[str, Any]] = []
        tokens = 0
        for i, item in enumerate(cast("list[Any]", raw)):
            key = item if isinstance(item, str) else ",".join(map(str, cast("list[int]", item)))
            tokens += len(key.split()) if isinstance(item, str) else len(cast("list[int]", item))
            packed = _vector(key, dimensions)
            vector: Any = base64.b64encode(packed).decode() if as_base64 else list(struct.unpack(f"<{dimensions}f", packed))
            data.append({"object": "embedding", "index": i, "embedding": vector})
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return _json({"object": "list", "data": data, "model": model, "usage": usage})

    async def _anthropic_count(self, request: web.Request) -> web.Response:
        body = await self._receive(request, "anthropic")
        if isinstance(body, web.Response):
            return body
        try:
            chat = _parse_chat("anthropic", body, str(body.get("model", "")))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            return _error("anthropic", 400, f"Malformed request: {exc!r}")
        return _json({"input_tokens": chat.input_tokens})

    async def _models(self, request: web.Request) -> web.Response:
        dialect: Dialect = "anthropic" if "anthropic-version" in request.headers else "openai"
        if self.api_key is not None and not self._authorized(request, dialect):
            return _error(dialect, 401, "Incorrect API key provided.")
        if dialect == "anthropic":
            data = [{"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"} for m in self.models]
            ends = {"first_id": data[0]["id"], "last_id": data[-1]["id"]} if data else {"first_id": None, "last_id": None}
            return _json({"data": data, "has_more": False, **ends})
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "lockgate-fake"} for m in self.models]
        return _json({"object": "list", "data": data})


# --- standalone ----------------------------------------------------------------------


async def _serve_forever(fake: FakeProvider) -> None:
    async with fake:
        sys.stdout.write(f"{fake.url}\n")
        sys.stdout.flush()
        _log.info("fake provider listening on %s", fake.url)
        await asyncio.Event().wait()


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lockgate.testing", description="Serve the fake OpenAI/Anthropic upstream."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100, help="0 picks a free port (default: 9100)")
    parser.add_argument("--api-key", default=None, help="require this key (default: none)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_forever(FakeProvider(api_key=args.api_key, host=args.host, port=args.port, record=False)))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
