"""Counting tokens offline, to estimate usage when an upstream does not report it.

The BPE ranks come from the `.tiktoken.gz` files that `bpe-openai` ships; tiktoken
never downloads anything. A file is read, checked against the SHA-256 that tiktoken
itself expects for the encoding, and turned into a `tiktoken.Encoding` on first use;
the `TokenCounter` keeps it. Build one counter in the app lifespan (and call `warm()`
in a worker thread there, if the first request should not pay the ~0.1-0.3 s load).

Which encoding: `o200k_base` for the gpt-4o, gpt-4.1, gpt-4.5, gpt-5 and o-series
families, `cl100k_base` for everything else, other vendors' models included (their
own tokenizers differ; cl100k is a stand-in, typically within 10-20%).

Chat prompts are counted the way OpenAI's cookbook does: 3 tokens per message, the
role and the content, 1 more for a `name`, and 3 to prime the reply. Tool
definitions and a JSON schema response format are counted as their JSON text,
images as a fixed estimate (the pixel size is not known here).
"""

from __future__ import annotations

import asyncio
import binascii
import gzip
import hashlib
import importlib.util
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal

import msgspec
import tiktoken

from lockgate.core.types import ChatRequest, ImagePart, Message, TextPart
from lockgate.errors import LockgateError

__all__ = ["EncodingName", "TokenCounter", "encoding_name_for"]

EncodingName = Literal["cl100k_base", "o200k_base"]

_MESSAGE_OVERHEAD: Final = 3  # <|start|>{role}<|message|> ... <|end|>, less the role
_NAME_OVERHEAD: Final = 1
_REPLY_PRIMING: Final = 3  # <|start|>assistant<|message|>
_IMAGE_LOW: Final = 85  # OpenAI's base tokens for a `detail: low` image
_IMAGE_DEFAULT: Final = 765  # a 1024x1024 image at `detail: high` (85 + 4 tiles x 170)

# Model families that use o200k_base, after any "vendor/" prefix: gpt-4o, chatgpt-4o,
# gpt-4.1, gpt-4.5, gpt-5*, gpt-oss, codex-*, o1, o3, o4-mini...
_O200K_MODEL: Final = re.compile(r"(?:chat)?gpt-(?:4o|4\.1|4\.5|5|oss)|o\d(?:$|-)|codex-")


@dataclass(frozen=True, slots=True)
class _EncodingSpec:
    """What tiktoken_ext.openai_public builds for an encoding, minus the download."""

    file: str
    sha256: str  # of the uncompressed file; the `expected_hash` tiktoken checks
    pat_str: str
    special_tokens: tuple[tuple[str, int], ...]


_SPECS: Final[Mapping[EncodingName, _EncodingSpec]] = MappingProxyType(
    {
        "cl100k_base": _EncodingSpec(
            file="cl100k_base.tiktoken.gz",
            sha256="223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
            pat_str=(
                r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+"""
                r"""| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
            ),
            special_tokens=(
                ("<|endoftext|>", 100257),
                ("<|fim_prefix|>", 100258),
                ("<|fim_middle|>", 100259),
                ("<|fim_suffix|>", 100260),
                ("<|endofprompt|>", 100276),
            ),
        ),
        "o200k_base": _EncodingSpec(
            file="o200k_base.tiktoken.gz",
            sha256="446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
            pat_str="|".join(
                (
                    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                    r"""\p{N}{1,3}""",
                    r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
                    r"""\s*[\r\n]+""",
                    r"""\s+(?!\S)""",
                    r"""\s+""",
                )
            ),
            special_tokens=(("<|endoftext|>", 199999), ("<|endofprompt|>", 200018)),
        ),
    }
)


def encoding_name_for(model: str | None) -> EncodingName:
    """The encoding for a model name, e.g. `"openai/gpt-4o-mini"` -> `"o200k_base"`."""
    if model is None:
        return "cl100k_base"
    name = model.rsplit("/", 1)[-1].lower()
    return "o200k_base" if _O200K_MODEL.match(name) else "cl100k_base"


def _default_data_dir() -> Path:
    # find_spec locates the package without importing it (and its native module).
    spec = importlib.util.find_spec("bpe_openai")
    if spec is None or not spec.submodule_search_locations:
        raise LockgateError("token counting needs the bpe-openai package, which is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _load(name: EncodingName, data_dir: Path) -> tiktoken.Encoding:
    spec = _SPECS[name]
    path = data_dir / spec.file
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as exc:
        raise LockgateError(f"cannot read the {name} token ranks at {path}: {exc}") from exc
    if hashlib.sha256(raw).hexdigest() != spec.sha256:
        raise LockgateError(f"the {name} token ranks at {path} are not the expected file")
    ranks: dict[bytes, int] = {}
    for line in raw.splitlines():
        if line:
            token, rank = line.split()
            ranks[binascii.a2b_base64(token)] = int(rank)
    return tiktoken.Encoding(
        name,
        pat_str=spec.pat_str,
        mergeable_ranks=ranks,
        special_tokens=dict(spec.special_tokens),
    )


class TokenCounter:
    """Counts tokens with tiktoken, offline. Thread-safe; encodings load on first use.

    `data_dir` holds the `*.tiktoken.gz` files; default: bpe-openai's `data` folder.
    """

    def __init__(self, data_dir: Path | None = None) -> None:
        self._data_dir = data_dir
        self._encodings: dict[EncodingName, tiktoken.Encoding] = {}
        self._lock = threading.Lock()

    def encoding(self, name: EncodingName) -> tiktoken.Encoding:
        """The named encoding, loaded now if it has not been."""
        enc = self._encodings.get(name)
        if enc is None:
            with self._lock:
                enc = self._encodings.get(name)
                if enc is None:
                    enc = _load(name, self._data_dir or _default_data_dir())
                    self._encodings[name] = enc
        return enc

    def is_loaded(self, name: EncodingName) -> bool:
        return name in self._encodings

    async def ensure_loaded(self, model: str | None) -> None:
        """Load the encoding `model` needs in a worker thread (off the event loop).
        Encodings load on first need: each costs 50-100 MB and 0.1-0.2 s."""
        name = encoding_name_for(model)
        if name not in self._encodings:
            await asyncio.to_thread(self.encoding, name)

    def warm(self, *names: EncodingName) -> None:
        """Load encodings now (default: both), e.g. from a worker thread at startup."""
        for name in names or tuple(_SPECS):
            self.encoding(name)

    def count_text(self, text: str, model: str | None = None) -> int:
        """Tokens in `text`; special-token markup such as `<|endoftext|>` counts as text."""
        if not text:
            return 0
        return len(self.encoding(encoding_name_for(model)).encode_ordinary(text))

    def count_chat(self, req: ChatRequest, model: str | None = None) -> int:
        """Estimated prompt tokens of a chat request.

        `model` picks the encoding (default `req.model`); pass the upstream's model
        name when `req.model` is a gateway alias.
        """
        enc = self.encoding(encoding_name_for(model or req.model))
        n = _REPLY_PRIMING
        if req.system:
            n += _MESSAGE_OVERHEAD + _count(enc, "system") + _count(enc, req.system)
        for message in req.messages:
            n += _count_message(enc, message)
        if req.tools:
            tools = [_tool_json(t.name, t.description, t.parameters) for t in req.tools]
            n += _count(enc, msgspec.json.encode(tools).decode())
        if req.response_format is not None and req.response_format.schema is not None:
            n += _count(enc, msgspec.json.encode(req.response_format.schema).decode())
        return n

    def count_output(
        self, text: str, tool_args: Sequence[str] = (), model: str | None = None
    ) -> int:
        """Estimated completion tokens: the text plus each tool call's JSON arguments."""
        enc = self.encoding(encoding_name_for(model))
        return _count(enc, text) + sum(_count(enc, args) for args in tool_args)


def _count(enc: tiktoken.Encoding, text: str) -> int:
    return len(enc.encode_ordinary(text)) if text else 0


def _count_message(enc: tiktoken.Encoding, message: Message) -> int:
    n = _MESSAGE_OVERHEAD + _count(enc, message.role)
    if message.name:
        n += _NAME_OVERHEAD + _count(enc, message.name)
    for part in message.content:
        if isinstance(part, TextPart):
            n += _count(enc, part.text)
        elif isinstance(part, ImagePart):
            n += _IMAGE_LOW if part.detail == "low" else _IMAGE_DEFAULT
        else:  # a tool result, which OpenAI sends as a message of its own
            n += _MESSAGE_OVERHEAD + _count(enc, "tool") + _count(enc, part.content)
    for call in message.tool_calls:
        n += _count(enc, call.name) + _count(enc, call.arguments)
    return n


def _tool_json(name: str, description: str | None, parameters: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": name}
    if description:
        spec["description"] = description
    spec["parameters"] = parameters
    return {"type": "function", "function": spec}
