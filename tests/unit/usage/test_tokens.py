"""TokenCounter: offline tiktoken counts, checked against tiktoken's own encodings."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
import tiktoken
import tiktoken.load
from tiktoken_ext import openai_public

from lockgate.core.types import (
    ChatRequest,
    ImagePart,
    Message,
    ResponseFormat,
    Role,
    TextPart,
    ToolCall,
    ToolResultPart,
    ToolSpec,
)
from lockgate.errors import LockgateError
from lockgate.usage.tokens import EncodingName, TokenCounter, encoding_name_for

SAMPLES = [
    "hello world",
    "tiktoken is great!",
    "  leading spaces, trailing tabs\t\t\n\n\r\nand CRLF\r\n",
    "def f(x: int) -> int:\n    return x ** 2  # squares\n",
    "Numbers 1234567 and 3.14159, dates 2024-08-06.",
    "Ünïcödé: 日本語のテキスト, العربية, emoji 🚀🔥 and <|endoftext|> as text",
    '{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}',
]

# The OpenAI cookbook's "How to count tokens" example; the API reported 129 prompt
# tokens for gpt-3.5-turbo / gpt-4 (cl100k_base) and 124 for gpt-4o (o200k_base).
COOKBOOK: list[tuple[Role, str | None, str]] = [
    (
        "system",
        None,
        "You are a helpful, pattern-following assistant that translates corporate jargon into plain English.",
    ),
    ("system", "example_user", "New synergies will help drive top-line growth."),
    ("system", "example_assistant", "Things working well together will increase revenue."),
    (
        "system",
        "example_user",
        "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage.",
    ),
    (
        "system",
        "example_assistant",
        "Let's talk later when we're less busy about how to do better.",
    ),
    (
        "user",
        None,
        "This late pivot means we don't have time to boil the ocean for the client deliverable.",
    ),
]


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    return TokenCounter()


def _bpe_data_dir() -> Path:
    # Not `import bpe_openai`: that loads every encoding and warns (DeprecationWarning).
    spec = importlib.util.find_spec("bpe_openai")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def test_hello_world_is_two_tokens_in_both_encodings(counter: TokenCounter) -> None:
    assert counter.encoding("cl100k_base").encode_ordinary("hello world") == [15339, 1917]
    assert counter.encoding("o200k_base").encode_ordinary("hello world") == [24912, 2375]
    assert counter.count_text("hello world", "gpt-4") == 2
    assert counter.count_text("hello world", "gpt-4o") == 2


def test_known_tokens(counter: TokenCounter) -> None:
    assert counter.encoding("cl100k_base").encode_ordinary("tiktoken is great!") == [
        83,
        1609,
        5963,
        374,
        2294,
        0,
    ]
    assert counter.encoding("o200k_base").encode_ordinary("tiktoken is great!") == [
        83,
        8251,
        2488,
        382,
        2212,
        0,
    ]


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        (None, "cl100k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("claude-sonnet-4-5", "cl100k_base"),
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("chatgpt-4o-latest", "o200k_base"),
        ("openai/gpt-4.1-nano", "o200k_base"),
        ("gpt-4.5-preview", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("GPT-5-mini", "o200k_base"),
        ("o1", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("o4-mini-2025-04-16", "o200k_base"),
        ("gpt-oss-20b", "o200k_base"),
        ("omni-moderation-latest", "cl100k_base"),
    ],
)
def test_encoding_name_for(model: str | None, encoding: EncodingName) -> None:
    assert encoding_name_for(model) == encoding


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
def test_matches_tiktoken_reference(
    name: EncodingName, counter: TokenCounter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tiktoken's own constructor, fed the same file through its cache, never the network."""
    constructor = cast(Callable[[], dict[str, Any]], getattr(openai_public, name))
    url = f"https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
    raw = gzip.decompress((_bpe_data_dir() / f"{name}.tiktoken.gz").read_bytes())
    (tmp_path / hashlib.sha1(url.encode()).hexdigest()).write_bytes(raw)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))

    def no_download(blobpath: str) -> bytes:
        raise AssertionError(f"tiktoken tried to download {blobpath}")

    monkeypatch.setattr(tiktoken.load, "read_file", no_download)
    params = constructor()
    reference = tiktoken.Encoding(**params)
    ours = counter.encoding(name)

    assert ours.name == reference.name
    assert ours._pat_str == reference._pat_str  # pyright: ignore[reportPrivateUsage]
    assert ours._special_tokens == reference._special_tokens  # pyright: ignore[reportPrivateUsage]
    assert ours.n_vocab == reference.n_vocab
    assert [ours.encode_ordinary(s) for s in SAMPLES] == [
        reference.encode_ordinary(s) for s in SAMPLES
    ]


def test_special_token_markup_counts_as_text(counter: TokenCounter) -> None:
    assert counter.count_text("<|endoftext|>") == 7


def test_empty_text_is_zero_tokens(counter: TokenCounter) -> None:
    assert counter.count_text("") == 0
    assert counter.count_output("", []) == 0


@pytest.mark.parametrize(
    ("model", "tokens"), [("gpt-4-0613", 129), ("gpt-4o", 124), ("gpt-4o-mini", 124)]
)
def test_count_chat_matches_the_cookbook(counter: TokenCounter, model: str, tokens: int) -> None:
    messages = [
        Message(role=role, name=name, content=[TextPart(text=text)])
        for role, name, text in COOKBOOK
    ]
    assert counter.count_chat(ChatRequest(model=model, messages=messages)) == tokens


def test_count_chat_model_argument_picks_the_encoding(counter: TokenCounter) -> None:
    req = ChatRequest(
        model="my-alias", messages=[Message(role="user", content=[TextPart(text=SAMPLES[5])])]
    )
    o200k = 3 + 3 + 1 + counter.count_text(SAMPLES[5], "gpt-4o")
    cl100k = 3 + 3 + 1 + counter.count_text(SAMPLES[5], "gpt-4")
    assert (counter.count_chat(req), counter.count_chat(req, model="gpt-4o")) == (cl100k, o200k)


def test_count_chat_every_kind_of_part(counter: TokenCounter) -> None:
    def n(text: str) -> int:
        return counter.count_text(text, "gpt-4o")

    req = ChatRequest(
        model="gpt-4o",
        system="Be brief.",
        messages=[
            Message(
                role="user",
                content=[
                    TextPart(text="What is in this picture?"),
                    ImagePart(url="https://example.com/a.png", detail="low"),
                    ImagePart(url="https://example.com/b.png"),
                ],
            ),
            Message(
                role="assistant",
                tool_calls=[ToolCall(id="call_1", name="lookup", arguments='{"q": "cat"}')],
            ),
            Message(role="user", content=[ToolResultPart(tool_call_id="call_1", content="A cat.")]),
        ],
        tools=[ToolSpec(name="lookup", description="Look it up.", parameters={"type": "object"})],
        response_format=ResponseFormat(type="json_schema", name="a", schema={"type": "string"}),
    )
    tools_json = '[{"type":"function","function":{"name":"lookup","description":"Look it up.","parameters":{"type":"object"}}}]'
    expected = (
        3  # reply priming
        + 3 + n("system") + n("Be brief.")
        + 3 + n("user") + n("What is in this picture?") + 85 + 765
        + 3 + n("assistant") + n("lookup") + n('{"q": "cat"}')
        + 3 + n("user") + 3 + n("tool") + n("A cat.")
        + n(tools_json)
        + n('{"type":"string"}')
    )  # fmt: skip
    assert counter.count_chat(req) == expected
    assert expected == 922


def test_count_output_adds_tool_arguments(counter: TokenCounter) -> None:
    args = ['{"city": "Paris"}', '{"city": "Rome"}']
    assert counter.count_output("Let me check.", args, "gpt-4o") == 4 + 6 + 6
    assert counter.count_output("Let me check.", args, "gpt-4o") == sum(
        counter.count_text(t, "gpt-4o") for t in ["Let me check.", *args]
    )


def test_loading_is_lazy_and_errors_are_clear(tmp_path: Path) -> None:
    missing = TokenCounter(data_dir=tmp_path / "absent")  # nothing is read yet
    with pytest.raises(LockgateError, match="cannot read the cl100k_base token ranks"):
        missing.count_text("hi")

    (tmp_path / "o200k_base.tiktoken.gz").write_bytes(gzip.compress(b"aGk= 0\n"))
    with pytest.raises(LockgateError, match="are not the expected file"):
        TokenCounter(data_dir=tmp_path).count_text("hi", "gpt-4o")


def test_warm_loads_both_encodings() -> None:
    counter = TokenCounter()
    counter.warm()
    assert [counter.encoding(name).name for name in ("cl100k_base", "o200k_base")] == [
        "cl100k_base",
        "o200k_base",
    ]
