"""Evaluations: versioned datasets, evaluators (a plugin protocol), eval runs through
the gateway that resume after an interruption, run comparison, and quality gates that
guard prompt promotions. See docs/evals.md."""

__all__: list[str] = []
