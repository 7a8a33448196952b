"""Prices and costs: the built-in table, configured overrides, name normalisation."""

from __future__ import annotations

import pytest

from lockgate.config.schema import Config, Price
from lockgate.core.types import Usage
from lockgate.usage.pricing import PriceTable, cost, normalize_model_name

GPT_4O = Price(input_per_mtok=2.5, output_per_mtok=10.0, cached_input_per_mtok=1.25)
SONNET = Price(
    input_per_mtok=3.0, output_per_mtok=15.0, cached_input_per_mtok=0.3, cache_write_per_mtok=3.75
)


def test_unknown_price_costs_nothing() -> None:
    assert cost(None, Usage(input_tokens=1000, output_tokens=1000)) == 0.0


def test_input_and_output() -> None:
    price = Price(input_per_mtok=2.5, output_per_mtok=10.0)
    assert cost(price, Usage(input_tokens=1000, output_tokens=500)) == 0.0075


def test_cached_and_cache_write_default_to_the_input_price() -> None:
    price = Price(input_per_mtok=2.0, output_per_mtok=8.0)
    usage = Usage(input_tokens=1000, cached_input_tokens=400, cache_write_tokens=100)
    assert cost(price, usage) == 0.002


def test_cached_input_at_its_own_price() -> None:
    # 600 uncached at 2.5 + 400 cached at 1.25 + 100 output at 10
    usage = Usage(input_tokens=1000, cached_input_tokens=400, output_tokens=100)
    assert cost(GPT_4O, usage) == 0.003


def test_cache_write_at_its_own_price() -> None:
    price = Price(
        input_per_mtok=4.0,
        output_per_mtok=16.0,
        cached_input_per_mtok=0.5,
        cache_write_per_mtok=5.0,
    )
    # 2000 plain at 4 + 6000 read at 0.5 + 2000 written at 5 + 1000 output at 16
    usage = Usage(
        input_tokens=10_000, cached_input_tokens=6000, cache_write_tokens=2000, output_tokens=1000
    )
    assert cost(price, usage) == 0.037


def test_anthropic_sonnet_with_cache() -> None:
    usage = Usage(
        input_tokens=10_000, cached_input_tokens=6000, cache_write_tokens=2000, output_tokens=1000
    )
    # 2000 x 3 + 6000 x 0.3 + 2000 x 3.75 + 1000 x 15 = 30300 micro-USD
    assert cost(SONNET, usage) == pytest.approx(0.0303, rel=1e-15)


def test_reasoning_defaults_to_the_output_price() -> None:
    price = Price(input_per_mtok=1.0, output_per_mtok=4.0)
    assert cost(price, Usage(output_tokens=1000, reasoning_tokens=600)) == 0.004


def test_reasoning_at_its_own_price() -> None:
    price = Price(input_per_mtok=1.0, output_per_mtok=4.0, reasoning_per_mtok=2.0)
    # 400 visible at 4 + 600 reasoning at 2
    assert cost(price, Usage(output_tokens=1000, reasoning_tokens=600)) == 0.0028


def test_inconsistent_usage_is_never_negative() -> None:
    price = Price(input_per_mtok=2.0, output_per_mtok=8.0, cached_input_per_mtok=1.0)
    usage = Usage(input_tokens=100, cached_input_tokens=300, output_tokens=10, reasoning_tokens=50)
    # cached billed as reported, no negative plain input; reasoning capped at output
    assert cost(price, usage) == 0.00038


def test_a_million_each_is_the_list_price_exactly() -> None:
    mini = PriceTable().builtin_price("gpt-4o-mini")
    assert cost(mini, Usage(input_tokens=1_000_000, output_tokens=1_000_000)) == 0.75


@pytest.mark.parametrize(
    ("name", "normal"),
    [
        ("gpt-4o", "gpt-4o"),
        ("GPT-4o", "gpt-4o"),
        ("openai/gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4-0613", "gpt-4"),
        ("o3-mini-2025-01-31", "o3-mini"),
        ("gpt-4.1-nano", "gpt-4.1-nano"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("anthropic/claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet"),
        ("us.anthropic.claude-3-5-haiku-20241022-v1:0", "claude-3-5-haiku"),
        ("global.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5"),
        ("claude-opus-4-1", "claude-opus-4-1"),
        ("text-embedding-3-small", "text-embedding-3-small"),
    ],
)
def test_normalize_model_name(name: str, normal: str) -> None:
    assert normalize_model_name(name) == normal


def test_builtin_prices() -> None:
    table = PriceTable()
    names = [
        "openai/gpt-4o-2024-08-06",
        "gpt-4o-2024-05-13",
        "gpt-5-mini-2025-08-07",
        "o4-mini",
        "text-embedding-3-large",
        "claude-3-7-sonnet-20250219",
        "claude-opus-4-1-20250805",
        "claude-haiku-4-5",
        "unknown-model",
    ]
    assert [table.builtin_price(n) for n in names] == [
        GPT_4O,
        Price(input_per_mtok=5.0, output_per_mtok=15.0),  # this snapshot is priced apart
        Price(input_per_mtok=0.25, output_per_mtok=2.0, cached_input_per_mtok=0.025),
        Price(input_per_mtok=1.1, output_per_mtok=4.4, cached_input_per_mtok=0.275),
        Price(input_per_mtok=0.13, output_per_mtok=0.0),
        SONNET,
        Price(
            input_per_mtok=15.0,
            output_per_mtok=75.0,
            cached_input_per_mtok=1.5,
            cache_write_per_mtok=18.75,
        ),
        Price(
            input_per_mtok=1.0,
            output_per_mtok=5.0,
            cached_input_per_mtok=0.1,
            cache_write_per_mtok=1.25,
        ),
        None,
    ]


def test_configured_price_wins_over_the_upstream_builtin() -> None:
    mine = Price(input_per_mtok=1.0, output_per_mtok=2.0)
    table = PriceTable({"fast": mine})
    assert [
        table.price_for("fast", "gpt-4o"),
        table.price_for("other", "gpt-4o-2024-08-06"),
        table.price_for("gpt-4o"),
        table.price_for("other", "my-azure-deployment"),
    ] == [mine, GPT_4O, GPT_4O, None]


def test_without_defaults_only_configured_models_are_priced() -> None:
    mine = Price(input_per_mtok=1.0, output_per_mtok=2.0)
    table = PriceTable({"fast": mine}, defaults=False)
    assert [
        table.price_for("fast", "gpt-4o"),
        table.price_for("gpt-4o"),
        table.builtin_price("gpt-4o"),
    ] == [
        mine,
        None,
        None,
    ]


def test_from_config() -> None:
    config = Config.model_validate(
        {
            "providers": {"openai": {"type": "openai"}},
            "models": {
                "fast": {
                    "routes": [{"provider": "openai", "model": "gpt-4o-mini"}],
                    "price": {"input_per_mtok": 0.5, "output_per_mtok": 1.5},
                },
                "smart": {"routes": [{"provider": "openai", "model": "gpt-4o"}]},
            },
        }
    )
    table = PriceTable.from_config(config)
    assert [table.price_for("fast", "gpt-4o-mini"), table.price_for("smart", "gpt-4o")] == [
        Price(input_per_mtok=0.5, output_per_mtok=1.5),
        GPT_4O,
    ]
