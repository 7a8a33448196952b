"""The child process that runs llama.cpp's server (from the `xllamacpp` wheel).

`lockgate.providers.local.LocalProvider` starts it so that loading a model, or a crash
in native code, never blocks or takes down the gateway:

    python -m lockgate.providers._local_server --model PATH [--host 127.0.0.1] [--port 0]
        [--threads 1] [--ctx 2048] [--parallel 1] [--alias NAME]

Protocol with the parent:
- stdin, first line: the API key the server will require (empty: none). Sent on stdin,
  not argv, so other local users cannot read it from the process list.
- stdout, one line once the model is loaded and the server listens:
  `LISTENING http://HOST:PORT`. Nothing else is written to stdout.
- stderr: llama.cpp's warnings and errors.
- The child exits when its stdin closes (the parent closed it, or died), when the
  parent process goes away, or on SIGTERM. Exit status 3: the server could not start.

`--ctx` is the context of one request: the server gets `ctx * parallel` in all, split
evenly between its `parallel` slots.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any

__all__ = ["main"]

_PARENT_POLL_SECONDS = 1.0
_EXIT_START_FAILED = 3


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m lockgate.providers._local_server")
    parser.add_argument("--model", required=True, help="a GGUF file")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--ctx", type=int, default=2048, help="tokens per request")
    parser.add_argument("--parallel", type=int, default=1, help="requests served at once")
    parser.add_argument("--alias", default=None, help="the model name the server answers with")
    return parser.parse_args(argv)


def _read_line(fd: int) -> str:
    """One line from `fd`, read unbuffered so nothing after it is consumed."""
    line = bytearray()
    while (byte := os.read(fd, 1)) and byte != b"\n":
        line += byte
    return line.decode()


def _watch_stdin(done: threading.Event) -> None:
    """Set `done` when stdin reaches its end: the parent closed it or died. (Raw reads:
    a thread blocked in `sys.stdin` would hold its lock when the interpreter exits.)"""
    while os.read(0, 4096):
        pass
    done.set()


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    api_key = _read_line(0).strip()
    parent = os.getppid()
    done = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_term)
    threading.Thread(target=_watch_stdin, args=(done,), name="stdin-watch", daemon=True).start()

    # The `local` extra, imported here so the parent never loads it; a compiled module
    # without type information, hence Any.
    xllamacpp: Any = importlib.import_module("xllamacpp")

    params = xllamacpp.CommonParams()
    params.model.path = args.model
    params.hostnames = [args.host]
    params.port = args.port
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    params.n_parallel = args.parallel
    params.n_ctx = args.ctx * args.parallel
    params.verbosity = 1  # warnings and errors only
    if args.alias:
        params.model_alias = {args.alias}
    if api_key:
        params.api_keys = [api_key]
    try:
        server = xllamacpp.Server(params)
    except RuntimeError as exc:  # llama.cpp has written the cause to stderr
        sys.stderr.write(f"lockgate local server: {exc}\n")
        return _EXIT_START_FAILED
    sys.stdout.write(f"LISTENING {server.listening_address}\n")
    sys.stdout.flush()
    while not done.wait(_PARENT_POLL_SECONDS):
        if os.getppid() != parent:
            break
    del server  # stops the server's threads
    return 0


if __name__ == "__main__":
    sys.exit(main())
