"""The built-in evaluators, registered under the `lockgate.evaluators` entry points."""

__all__: list[str] = []
