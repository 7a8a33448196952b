"""lockgate: a self-hosted control plane for production AI."""

from lockgate._version import __version__

__all__ = ["__version__"]
