"""Scanners by name, found through the `lockgate.guardrails` entry points.

A package adds a scanner by declaring
`[project.entry-points."lockgate.guardrails"] myscanner = "pkg.module:MyScanner"`,
where `MyScanner` subclasses `lockgate.guard.types.Scanner`. The built-in scanners are
declared the same way in lockgate's own `pyproject.toml`; they are also listed here so
that a checkout whose installed metadata predates them still finds them.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from lockgate.guard.types import Scanner

__all__ = ["BUILTIN", "scanner_class", "scanner_names"]

BUILTIN: dict[str, str] = {
    "pii": "lockgate.guard.pii:PiiScanner",
    "secrets": "lockgate.guard.secrets:SecretsScanner",
    "injection": "lockgate.guard.injection:InjectionScanner",
    "injection_classifier": "lockgate.guard.classifier:InjectionClassifierScanner",
    "json_schema": "lockgate.guard.output:JsonSchemaScanner",
    "denied_terms": "lockgate.guard.output:DeniedTermsScanner",
    "length": "lockgate.guard.output:LengthScanner",
}


def _targets() -> dict[str, str]:
    found = dict(BUILTIN)
    for ep in entry_points(group="lockgate.guardrails"):
        found[ep.name] = ep.value
    return found


def scanner_names() -> list[str]:
    return sorted(_targets())


def scanner_class(name: str) -> type[Scanner] | None:
    """The scanner class registered as `name`, or None when there is none."""
    target = _targets().get(name)
    if target is None:
        return None
    module, _, attr = target.partition(":")
    loaded: Any = getattr(importlib.import_module(module), attr)
    if not (isinstance(loaded, type) and issubclass(loaded, Scanner)):
        raise TypeError(f"{target} is not a lockgate.guard.types.Scanner subclass")
    return loaded
