"""Turn measurements into the report: added latency vs direct, lockgate/LiteLLM ratios,
the issue's targets, and a markdown rendering of it all."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["GOALS", "compare", "render"]

Result = dict[str, Any]

# The performance targets for lockgate (issue text): (key, description, limit, higher is better).
GOALS: list[tuple[str, str, float, bool]] = [
    ("added_p50_c1_ms", "added p50 at concurrency 1 (JSON), ms", 0.5, False),
    ("cpu_ms_per_req_max", "gateway CPU per JSON request (worst concurrency), ms", 0.5, False),
    ("throughput_vs_litellm", "peak JSON throughput / LiteLLM's, x", 15.0, True),
    ("added_ttft_ms", "streaming: added time to first token, ms", 1.0, False),
    ("rss_idle_mb", "idle RSS, MB", 120.0, False),
    ("cold_start_s", "cold start, s", 1.5, False),
]


def _scenarios(target: Result) -> dict[str, Result]:
    return target.get("scenarios", {})


def _added(results: dict[str, Result]) -> None:
    direct = _scenarios(results.get("direct", {}))
    for name, target in results.items():
        for key, scenario in _scenarios(target).items():
            base = direct.get(key)
            if base is not None:
                scenario["added_p50_ms"] = scenario["p50_ms"] - base["p50_ms"]
                scenario["added_p99_ms"] = scenario["p99_ms"] - base["p99_ms"]
        for probe in ("ttft", "ttft_burst"):
            ttft = target.get(probe)
            base_ttft = results.get("direct", {}).get(probe, {}).get("ttft_p50_ms")
            if ttft and "ttft_p50_ms" in ttft and base_ttft is not None and name != "direct":
                ttft["added_ttft_ms"] = ttft["ttft_p50_ms"] - base_ttft


def _headline(target: Result) -> Result:
    """The few numbers a target is judged by."""
    scenarios = _scenarios(target)
    # A run where more than 1% of responses failed does not count as throughput.
    json_runs = [
        s for s in scenarios.values() if s["mode"] == "json" and s["errors"] <= 0.01 * s["requests"]
    ]
    out: Result = {
        "cold_start_s": target.get("cold_start_s"),
        "rss_idle_mb": target.get("rss_idle_mb"),
        "added_ttft_ms": target.get("ttft", {}).get("added_ttft_ms"),
        "added_p50_c1_ms": scenarios.get("json-c1", {}).get("added_p50_ms"),
    }
    if json_runs:
        out["peak_rps"] = max(s["rps"] for s in json_runs)
        cpu = [s["cpu_ms_per_req"] for s in json_runs if s.get("cpu_ms_per_req") is not None]
        out["cpu_ms_per_req_max"] = max(cpu) if cpu else None
        out["cpu_ms_per_req_min"] = min(cpu) if cpu else None
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def compare(results: dict[str, Result]) -> Result:
    """Fill in added latency; return headlines, lockgate/LiteLLM ratios and goal checks."""
    _added(results)
    heads = {name: _headline(t) for name, t in results.items() if "error" not in t}
    lg, ll = heads.get("lockgate"), heads.get("litellm")
    ratios: Result = {}
    checks: list[Result] = []
    if lg and ll:
        ratios = {
            "throughput_x": _ratio(lg.get("peak_rps"), ll.get("peak_rps")),
            "cpu_per_req_x_less": _ratio(
                ll.get("cpu_ms_per_req_min"), lg.get("cpu_ms_per_req_min")
            ),
            "added_p50_c1_x_less": _ratio(ll.get("added_p50_c1_ms"), lg.get("added_p50_c1_ms")),
            "rss_idle_x_less": _ratio(ll.get("rss_idle_mb"), lg.get("rss_idle_mb")),
            "cold_start_x_faster": _ratio(ll.get("cold_start_s"), lg.get("cold_start_s")),
            "added_ttft_x_less": _ratio(ll.get("added_ttft_ms"), lg.get("added_ttft_ms")),
        }
        lg["throughput_vs_litellm"] = ratios["throughput_x"]
    if lg:
        for key, label, limit, higher in GOALS:
            value = lg.get(key)
            ok = None if value is None else (value >= limit if higher else value <= limit)
            checks.append({"key": key, "goal": label, "limit": limit, "value": value, "ok": ok})
    return {"headlines": heads, "ratios": ratios, "checks": checks}


def _f(value: Any, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def _target_rows(results: dict[str, Result]) -> list[list[str]]:
    rows: list[list[str]] = []
    for name, t in results.items():
        if "error" in t:
            rows.append([name, f"error: {t['error']}", *["—"] * 9])
            continue
        ttft = t.get("ttft", {})
        rows.append(
            [
                name,
                _f(t.get("cold_start_s")),
                _f(t.get("first_request_ms"), 1),
                _f(t.get("rss_ready_mb"), 0),
                _f(t.get("rss_idle_mb"), 0),
                _f(t.get("rss_peak_mb"), 0),
                _f(t.get("idle_cpu_pct"), 1),
                _f(t.get("processes")),
                _f(ttft.get("ttft_p50_ms"), 3),
                _f(ttft.get("added_ttft_ms"), 3),
                _f(t.get("ttft_burst", {}).get("added_ttft_ms"), 3),
            ]
        )
    return rows


def _errors(scenario: Result) -> str:
    kinds = scenario.get("error_kinds") or {}
    detail = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
    return f"{scenario['errors']} ({detail})" if detail else str(scenario["errors"])


def _load_rows(results: dict[str, Result]) -> list[list[str]]:
    keys: list[str] = []
    for t in results.values():
        keys += [k for k in _scenarios(t) if k not in keys]
    rows: list[list[str]] = []
    for key in keys:
        for name, t in results.items():
            s = _scenarios(t).get(key)
            if s is None:
                continue
            rows.append(
                [
                    key,
                    name,
                    _f(s["rps"], 0),
                    _f(s["p50_ms"], 3),
                    _f(s["p99_ms"], 3),
                    _f(s.get("added_p50_ms"), 3),
                    _f(s.get("added_p99_ms"), 3),
                    _f(s.get("cpu_ms_per_req"), 3),
                    _f(s.get("upstream_cpu_ms_per_req"), 3),
                    _f(s.get("other_cpu_cores"), 2),
                    _errors(s),
                ]
            )
    return rows


def _ratio_rows(summary: Result) -> list[list[str]]:
    heads = summary["headlines"]
    lg, ll = heads.get("lockgate", {}), heads.get("litellm", {})
    r = summary["ratios"]
    spec: list[tuple[str, str, str, Callable[[Any], str]]] = [
        ("peak JSON req/s", "peak_rps", "throughput_x", lambda v: _f(v, 0)),
        ("CPU ms per JSON request (best)", "cpu_ms_per_req_min", "cpu_per_req_x_less", _f),
        ("added p50 at c=1 (JSON), ms", "added_p50_c1_ms", "added_p50_c1_x_less", _f),
        ("idle RSS, MB", "rss_idle_mb", "rss_idle_x_less", lambda v: _f(v, 0)),
        ("cold start, s", "cold_start_s", "cold_start_x_faster", _f),
        ("streaming: added TTFT, ms", "added_ttft_ms", "added_ttft_x_less", lambda v: _f(v, 3)),
    ]
    return [[label, fmt(lg.get(k)), fmt(ll.get(k)), _f(r.get(rk), 1)] for label, k, rk, fmt in spec]


def render(meta: Result, results: dict[str, Result], summary: Result) -> str:
    lines = [f"# lockgate benchmark {meta['timestamp']}", ""]
    lines += [f"- {k}: {v}" for k, v in meta.items() if k != "timestamp"]
    lines += ["", "## Per target", ""]
    lines += _table(
        [
            "target",
            "cold start s",
            "1st request ms",
            "RSS ready MB",
            "RSS idle MB",
            "RSS peak MB",
            "idle CPU %",
            "processes",
            "TTFT p50 ms",
            "added TTFT ms",
            "added TTFT burst ms",
        ],
        _target_rows(results),
    )
    lines += ["## Load (closed loop; latencies from wrk, CPU = gateway process tree)", ""]
    lines += _table(
        [
            "scenario",
            "target",
            "req/s",
            "p50 ms",
            "p99 ms",
            "added p50 ms",
            "added p99 ms",
            "CPU ms/req",
            "upstream CPU ms/req",
            "other CPU, cores",
            "errors",
        ],
        _load_rows(results),
    )
    others = [
        s.get("other_cpu_cores", 0.0) for t in results.values() for s in _scenarios(t).values()
    ]
    if others and max(others) > 0.25:
        lines += [
            f"Note: other processes used up to {max(others):.2f} of the CPUs during some runs "
            "(column 'other CPU'): those rows are noisy; rerun on a quiet machine.",
            "",
        ]
    if summary["ratios"]:
        lines += ["## lockgate vs LiteLLM", ""]
        lines += _table(["metric", "lockgate", "litellm", "ratio (x better)"], _ratio_rows(summary))
    if summary["checks"]:
        lines += ["## lockgate vs its targets", ""]
        rows = [
            [
                c["goal"],
                _f(c["value"], 3),
                ("≥ " if c["key"] == "throughput_vs_litellm" else "≤ ") + _f(c["limit"], 1),
                {True: "yes", False: "NO", None: "—"}[c["ok"]],
            ]
            for c in summary["checks"]
        ]
        lines += _table(["target", "measured", "goal", "met"], rows)
    return "\n".join(lines)
