"""Which scanners apply to a request: the configured policies, compiled once.

`[guardrails] input`/`output` is the default policy. Named policies
(`[guardrails.policies.NAME]`) are tried in file order; the first whose selectors all
match (models and tools by glob, keys by id or prefix, teams by id, agents by name or
id) replaces the default. A chat request never matches a policy that selects tools,
and a tool check never matches one that selects models. Selection is cached per
(model, principal, tool), so a request pays one dictionary lookup.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from lockgate.config.guard import GuardPolicyConfig, GuardrailsConfig, ScannerConfig
from lockgate.core.context import Principal
from lockgate.guard.registry import scanner_class
from lockgate.guard.resources import GuardResources
from lockgate.guard.types import INPUT_WHERE, OUTPUT_WHERE, Action, Scanner

__all__ = ["BoundScanner", "Policy", "PolicySet"]

_CACHE_MAX = 4096


@dataclass(frozen=True, slots=True)
class BoundScanner:
    """A scanner with its configured action, threshold and texts."""

    scanner: Scanner
    action: Action
    threshold: float
    where: frozenset[str]
    restore: bool


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    input: tuple[BoundScanner, ...] = ()
    output: tuple[BoundScanner, ...] = ()
    models: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    teams: tuple[str, ...] = ()
    agents: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()

    @property
    def restores(self) -> bool:
        return any(b.restore for b in self.input)

    @property
    def empty(self) -> bool:
        return not self.input and not self.output

    def matches(self, model: str | None, principal: Principal | None, tool: str | None) -> bool:
        if self.models and (model is None or not any(fnmatchcase(model, g) for g in self.models)):
            return False
        if self.tools and (tool is None or not any(fnmatchcase(tool, g) for g in self.tools)):
            return False
        if self.keys and (principal is None or not (principal.id in self.keys or principal.label in self.keys)):
            return False
        if self.teams and (principal is None or principal.team_id not in self.teams):
            return False
        return not self.agents or (
            principal is not None
            and (principal.agent_name in self.agents or principal.agent_id in self.agents)
        )


def _bind(configs: list[ScannerConfig], side: str, resources: GuardResources) -> tuple[BoundScanner, ...]:
    bound: list[BoundScanner] = []
    default_where = INPUT_WHERE if side == "input" else OUTPUT_WHERE
    for sc in configs:
        cls = scanner_class(sc.scanner)
        assert cls is not None  # the config validated it
        entities = frozenset(sc.entities) if sc.entities is not None else None
        scanner = cls(sc.options(), entities=entities, resources=resources)
        bound.append(
            BoundScanner(scanner, sc.action, sc.threshold, frozenset(sc.where or default_where), sc.restore)
        )
    return tuple(bound)


def _policy(name: str, pc: GuardPolicyConfig, resources: GuardResources) -> Policy:
    return Policy(
        name,
        _bind(pc.input, "input", resources),
        _bind(pc.output, "output", resources),
        tuple(pc.models), tuple(pc.keys), tuple(pc.teams), tuple(pc.agents), tuple(pc.tools),
    )


class PolicySet:
    def __init__(self, config: GuardrailsConfig, resources: GuardResources) -> None:
        self.default = Policy("default", _bind(config.input, "input", resources), _bind(config.output, "output", resources))
        self.named = [_policy(name, pc, resources) for name, pc in config.policies.items()]
        self._cache: dict[tuple[str | None, ...], Policy] = {}

    def all(self) -> list[Policy]:
        return [self.default, *self.named]

    def select(self, *, model: str | None, principal: Principal | None, tool: str | None = None) -> Policy:
        if not self.named:
            return self.default
        p = principal
        key = (model, tool, p.id if p else None, p.team_id if p else None, p.agent_name if p else None,
               p.agent_id if p else None)
        found = self._cache.get(key)
        if found is None:
            found = next((pol for pol in self.named if pol.matches(model, principal, tool)), self.default)
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[key] = found
        return found
