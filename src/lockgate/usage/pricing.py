"""What a request cost, in USD, from its `Usage` and a `Price` (USD per million tokens).

`PriceTable` answers "what does this model cost": a price configured for the gateway
model (`[models.NAME.price]`) wins; otherwise the built-in list price of the upstream
model that served the request, looked up after normalising its name.

The built-in figures are the providers' public list prices for standard (not batch,
not priority) processing as of 2025-11, USD per million tokens; Anthropic's
cache-write price is the 5-minute cache's (1.25x input). Anthropic's long-context
surcharge (prompts over 200K tokens on Sonnet 4 / 4.5) is not modelled. Prices
change: configure `price` for any model where the figure matters.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Final

from lockgate.config.schema import Config, Price
from lockgate.core.types import Usage

__all__ = ["PriceTable", "cost", "normalize_model_name"]

# name: (input, output, cached input, cache write); None: the input price.
_Row = tuple[float, float, float | None, float | None]

_OPENAI: Final[tuple[tuple[str, _Row], ...]] = (
    ("gpt-5", (1.25, 10.00, 0.125, None)),
    ("gpt-5.1", (1.25, 10.00, 0.125, None)),
    ("gpt-5-chat-latest", (1.25, 10.00, 0.125, None)),
    ("gpt-5-mini", (0.25, 2.00, 0.025, None)),
    ("gpt-5-nano", (0.05, 0.40, 0.005, None)),
    ("gpt-4.1", (2.00, 8.00, 0.50, None)),
    ("gpt-4.1-mini", (0.40, 1.60, 0.10, None)),
    ("gpt-4.1-nano", (0.10, 0.40, 0.025, None)),
    ("gpt-4o", (2.50, 10.00, 1.25, None)),
    ("gpt-4o-2024-05-13", (5.00, 15.00, None, None)),
    ("chatgpt-4o-latest", (5.00, 15.00, None, None)),
    ("gpt-4o-mini", (0.15, 0.60, 0.075, None)),
    ("gpt-4-turbo", (10.00, 30.00, None, None)),
    ("gpt-4", (30.00, 60.00, None, None)),
    ("gpt-3.5-turbo", (0.50, 1.50, None, None)),
    ("o1", (15.00, 60.00, 7.50, None)),
    ("o1-mini", (1.10, 4.40, 0.55, None)),
    ("o1-pro", (150.00, 600.00, None, None)),
    ("o3", (2.00, 8.00, 0.50, None)),
    ("o3-mini", (1.10, 4.40, 0.55, None)),
    ("o3-pro", (20.00, 80.00, None, None)),
    ("o4-mini", (1.10, 4.40, 0.275, None)),
    ("text-embedding-3-small", (0.02, 0.0, None, None)),
    ("text-embedding-3-large", (0.13, 0.0, None, None)),
    ("text-embedding-ada-002", (0.10, 0.0, None, None)),
)

_ANTHROPIC: Final[tuple[tuple[str, _Row], ...]] = (
    ("claude-opus-4-5", (5.00, 25.00, 0.50, 6.25)),
    ("claude-opus-4-1", (15.00, 75.00, 1.50, 18.75)),
    ("claude-opus-4", (15.00, 75.00, 1.50, 18.75)),
    ("claude-opus-4-0", (15.00, 75.00, 1.50, 18.75)),
    ("claude-sonnet-4-5", (3.00, 15.00, 0.30, 3.75)),
    ("claude-sonnet-4", (3.00, 15.00, 0.30, 3.75)),
    ("claude-sonnet-4-0", (3.00, 15.00, 0.30, 3.75)),
    ("claude-3-7-sonnet", (3.00, 15.00, 0.30, 3.75)),
    ("claude-3-5-sonnet", (3.00, 15.00, 0.30, 3.75)),
    ("claude-haiku-4-5", (1.00, 5.00, 0.10, 1.25)),
    ("claude-3-5-haiku", (0.80, 4.00, 0.08, 1.00)),
    ("claude-3-haiku", (0.25, 1.25, 0.03, 0.30)),
    ("claude-3-opus", (15.00, 75.00, 1.50, 18.75)),
)

# Trailing snapshot dates and version tags: -2024-08-06 and -0613 (OpenAI), -20241022
# (Anthropic), @20241022 (Vertex AI), -v1:0 (Bedrock), -latest (a moving alias).
_SUFFIXES: Final = re.compile(r"(?:-\d{4}-\d{2}-\d{2}|[-@]\d{8}|-\d{4}|-v\d+(?::\d+)?|-latest)+$")
# Bedrock: [us.|eu.|global.]anthropic.claude-...
_VENDOR_DOT: Final = re.compile(r"^(?:[a-z]+\.)?(?:anthropic|openai)\.")


def normalize_model_name(model: str) -> str:
    """The price-table key for an upstream model name.

    `"openai/gpt-4o-2024-08-06"` -> `"gpt-4o"`,
    `"us.anthropic.claude-3-5-haiku-20241022-v1:0"` -> `"claude-3-5-haiku"`.
    """
    name = model.strip().lower().rsplit("/", 1)[-1]
    name = _VENDOR_DOT.sub("", name)
    return _SUFFIXES.sub("", name)


class PriceTable:
    """Prices by model: configured overrides (by gateway model name) over built-ins.

    `overrides` maps gateway model names to prices. `defaults=False` leaves the
    built-in table out (every model not configured is then unpriced).
    """

    def __init__(
        self, overrides: Mapping[str, Price] | None = None, *, defaults: bool = True
    ) -> None:
        self._overrides: dict[str, Price] = dict(overrides or {})
        self._builtin: dict[str, Price] = {}
        if defaults:
            for name, (inp, out, cached, write) in (*_OPENAI, *_ANTHROPIC):
                self._builtin[name] = Price(
                    input_per_mtok=inp,
                    output_per_mtok=out,
                    cached_input_per_mtok=cached,
                    cache_write_per_mtok=write,
                )

    @classmethod
    def from_config(cls, config: Config) -> PriceTable:
        """The built-in table plus each `[models.NAME.price]` in the config."""
        return cls({name: m.price for name, m in config.models.items() if m.price is not None})

    def builtin_price(self, upstream_model: str) -> Price | None:
        """The built-in price of an upstream model, by exact name, then normalised."""
        name = upstream_model.strip().lower().rsplit("/", 1)[-1]
        price = self._builtin.get(name)  # a snapshot priced apart, e.g. gpt-4o-2024-05-13
        return price if price is not None else self._builtin.get(normalize_model_name(name))

    def price_for(self, model: str, upstream_model: str | None = None) -> Price | None:
        """The price of gateway model `model` served by `upstream_model`; None: unknown.

        A configured price for `model` wins; otherwise the built-in price of
        `upstream_model` (default: `model` itself).
        """
        configured = self._overrides.get(model)
        if configured is not None:
            return configured
        return self.builtin_price(upstream_model if upstream_model is not None else model)


def cost(price: Price | None, usage: Usage) -> float:
    """The USD cost of `usage` at `price`; 0.0 when the price is unknown.

    `usage.input_tokens` includes the cached and cache-write tokens, and
    `output_tokens` includes the reasoning tokens; each part is billed at its own rate.
    """
    if price is None:
        return 0.0
    cached_rate = price.cached_input_per_mtok
    write_rate = price.cache_write_per_mtok
    reasoning_rate = price.reasoning_per_mtok
    cached = usage.cached_input_tokens
    written = usage.cache_write_tokens
    reasoning = min(usage.reasoning_tokens, usage.output_tokens)
    plain_input = max(usage.input_tokens - cached - written, 0)
    plain_output = usage.output_tokens - reasoning
    micro_usd = math.fsum(
        (
            plain_input * price.input_per_mtok,
            cached * (price.input_per_mtok if cached_rate is None else cached_rate),
            written * (price.input_per_mtok if write_rate is None else write_rate),
            plain_output * price.output_per_mtok,
            reasoning * (price.output_per_mtok if reasoning_rate is None else reasoning_rate),
        )
    )
    return micro_usd / 1_000_000
