"""Guardrails: PII, secrets, prompt injection and output checks on requests, answers and
tool calls, with their accuracy measured on a shipped, labelled set (`lockgate guard eval`).

`engine.GuardEngine` runs the configured scanners (`registry`: entry points in the
`lockgate.guardrails` group); `stage.GuardStage` is its pipeline stage; `tools.check_tool`
serves the MCP gateway; `evaluate` measures precision and recall. See docs/guardrails.md.
"""

__all__: list[str] = []
