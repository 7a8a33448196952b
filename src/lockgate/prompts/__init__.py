"""The prompt registry and experiments (docs/prompts.md).

Versioned prompts with labels, served by the gateway (`prompt:NAME@LABEL` models,
rendered by the `resolve` stage from an in-memory registry), prompts as code, promotion
through the quality gate, and sticky A/B experiments with outcomes written behind.

    spec.py, render.py     what a version holds; Jinja2 sandboxed templates
    files.py               prompt files (TOML) for push and pull
    service.py             versions, diffs, labels, promotion (the control plane)
    experiments.py         experiments and scores (the control plane)
    registry.py            the gateway's in-memory registry, reloaded on change
    resolve.py, assign.py  the gateway stage; sticky arm assignment
    recorder.py            experiment outcomes, written behind in batches
    report.py, stats.py    the experiment report and its statistics
    plane.py               all of it, opened and closed with the gateway
"""

from __future__ import annotations

__all__: list[str] = []
