"""Provider adapters by `type`, found through the `lockgate.providers` entry points.

Built-in adapters register through the same door as third-party ones: a package
that declares `[project.entry-points."lockgate.providers"] mytype = "pkg:Adapter"`
adds `type = "mytype"` (its config model is the adapter's `config_model`, when it
has one; see docs/extending.md).
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

__all__ = ["load_adapters"]


def load_adapters() -> dict[str, Any]:
    """Entry point name -> adapter class. Loaded lazily: only the types a config uses."""
    return {ep.name: ep for ep in entry_points(group="lockgate.providers")}
