"""The state of one request as it moves through the pipeline."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

from lockgate.core.types import ChatRequest, ChatResponse, EmbeddingRequest, Usage
from lockgate.errors import LockgateError

__all__ = ["Dialect", "Principal", "RequestContext"]

Dialect = Literal["openai", "anthropic"]


@dataclass(slots=True)
class Principal:
    """Who is calling, as the identify stage found it.

    kind: `operator` (the admin key), `key` (a virtual key), `grant` (a just-in-time
    grant token) or `anonymous` (no admin key configured, no key presented).
    """

    id: str
    kind: str
    label: str = ""  # what logs show: a key or grant prefix, "admin", "anonymous"
    team_id: str | None = None
    user_id: str | None = None
    agent_id: str | None = None
    agent_name: str | None = None
    delegation: tuple[str, ...] = ()  # hops, e.g. ("user:alice", "agent:planner", "agent:coder")
    shadow_agent: str | None = None  # an unregistered agent name, when only flagged

    @property
    def is_operator(self) -> bool:
        return self.kind in ("operator", "anonymous")


class RequestContext:
    """Filled in by the stages in order; read by the `complete` hooks at the end."""

    __slots__ = (
        "attempts",
        "attrs",
        "chat",
        "cost",
        "credential",
        "dialect",
        "embedding",
        "endpoint",
        "error",
        "finish_reasons",
        "first_token_at",
        "model",
        "principal",
        "provider",
        "provider_system",
        "request_id",
        "response",
        "response_model",
        "route_model",
        "started",
        "started_wall",
        "stream",
        "usage",
    )

    def __init__(
        self,
        *,
        request_id: str,
        dialect: Dialect,
        endpoint: str,
        credential: str | None,
        chat: ChatRequest | None = None,
        embedding: EmbeddingRequest | None = None,
    ) -> None:
        self.request_id = request_id
        self.dialect: Dialect = dialect
        self.endpoint = endpoint  # "chat" | "embeddings"
        self.credential = credential
        self.chat = chat
        self.embedding = embedding
        self.model = chat.model if chat else (embedding.model if embedding else "")
        self.stream = bool(chat and chat.stream)
        self.started = time.perf_counter()
        self.started_wall = time.time()
        self.principal: Principal | None = None
        self.provider: str | None = None  # the configured provider that answered
        self.provider_system: str | None = None
        self.route_model: str | None = None  # the upstream model of that route
        self.response_model: str | None = None
        self.response: ChatResponse | None = None
        self.usage: Usage | None = None
        self.cost: float | None = None
        self.finish_reasons: list[str] = []
        self.first_token_at: float | None = None
        self.attempts = 0
        self.error: LockgateError | None = None
        self.attrs: dict[str, Any] = {}

    def elapsed(self) -> float:
        return time.perf_counter() - self.started
