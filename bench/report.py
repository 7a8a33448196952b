"""Turn measurements into the report: added latency vs direct, lockgate/LiteLLM ratios,
the issue's targets, and a markdown rendering of it all."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["ACCESS_GOALS", "GOALS", "compare", "render"]

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


# The access-control issue's targets: (key, target judged, description, limit); lower is better.
ACCESS_GOALS: list[tuple[str, str, str, float]] = [
    (
        "cpu_added_json_max_ms",
        "lockgate-keys",
        "keys, limits, budgets on (memory): gateway CPU per JSON request added to plain "
        "lockgate's (worst concurrency), ms",
        0.2,
    ),
    (
        "redis_round_trips_max",
        "lockgate-redis",
        "Redis mode: Redis round trips per request (worst scenario)",
        1.0,
    ),
]
KEYED = ("lockgate-keys", "lockgate-redis")


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
    for mode in ("json", "stream"):
        added = [
            s["cpu_added_ms"]
            for s in scenarios.values()
            if s["mode"] == mode and "cpu_added_ms" in s
        ]
        if added:
            out[f"cpu_added_{mode}_max_ms"] = max(added)
    trips = [s["redis"]["round_trips_per_req"] for s in scenarios.values() if "redis" in s]
    if trips:
        out["redis_round_trips_max"] = max(trips)
    return out


def _cpu_added(results: dict[str, Result]) -> None:
    """For the keyed targets: CPU per request minus plain lockgate's, per scenario."""
    plain = _scenarios(results.get("lockgate", {}))
    for name in KEYED:
        for key, scenario in _scenarios(results.get(name, {})).items():
            base = plain.get(key)
            if base is not None:
                scenario["cpu_added_ms"] = scenario["cpu_ms_per_req"] - base["cpu_ms_per_req"]


_RATIOS: list[tuple[str, str, bool]] = [
    # (ratio key, headline key, True: lockgate's value / LiteLLM's; False: the inverse)
    ("throughput_x", "peak_rps", True),
    ("cpu_per_req_x_less", "cpu_ms_per_req_min", False),
    ("added_p50_c1_x_less", "added_p50_c1_ms", False),
    ("rss_idle_x_less", "rss_idle_mb", False),
    ("cold_start_x_faster", "cold_start_s", False),
    ("added_ttft_x_less", "added_ttft_ms", False),
]


def _ratios(ours: Result, theirs: Result) -> Result:
    return {
        rk: _ratio(ours.get(k), theirs.get(k)) if up else _ratio(theirs.get(k), ours.get(k))
        for rk, k, up in _RATIOS
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def compare(results: dict[str, Result], skipped: dict[str, str] | None = None) -> Result:
    """Fill in added latency and added CPU; return headlines, lockgate/LiteLLM ratios,
    the keyed targets' ratios against LiteLLM with keys (plain LiteLLM when that could
    not run, saying why) and the goal checks."""
    _added(results)
    _cpu_added(results)
    skipped = dict(skipped or {})
    for name, t in results.items():
        if "error" in t:
            skipped.setdefault(name, f"failed: {t['error']}")
    heads = {name: _headline(t) for name, t in results.items() if "error" not in t}
    lg, ll = heads.get("lockgate"), heads.get("litellm")
    ratios: Result = {}
    checks: list[Result] = []
    if lg and ll:
        ratios = _ratios(lg, ll)
        lg["throughput_vs_litellm"] = ratios["throughput_x"]
    if lg:
        for key, label, limit, higher in GOALS:
            value = lg.get(key)
            ok = None if value is None else (value >= limit if higher else value <= limit)
            checks.append({"key": key, "goal": label, "limit": limit, "value": value, "ok": ok})
    baseline = "litellm-keys" if "litellm-keys" in heads else "litellm"
    keyed: Result = {"baseline": baseline, "baseline_note": None, "ratios": {}}
    if baseline == "litellm" and "litellm-keys" in skipped:
        keyed["baseline_note"] = skipped["litellm-keys"]
    if baseline in heads:
        keyed["ratios"] = {n: _ratios(heads[n], heads[baseline]) for n in KEYED if n in heads}
    access: list[Result] = []
    for key, name, label, limit in ACCESS_GOALS:
        value = heads.get(name, {}).get(key)
        if name in results or name in skipped:
            ok = None if value is None else value <= limit
            access.append(
                {
                    "key": key,
                    "target": name,
                    "goal": label,
                    "limit": limit,
                    "value": value,
                    "ok": ok,
                    "note": skipped.get(name),
                }
            )
    return {
        "headlines": heads,
        "ratios": ratios,
        "checks": checks,
        "keyed": keyed,
        "access_checks": access,
        "skipped": skipped,
    }


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
    kinds: dict[str, int] = scenario.get("error_kinds") or {}
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


_SPEC: list[tuple[str, str, str, Callable[[Any], str]]] = [
    ("peak JSON req/s", "peak_rps", "throughput_x", lambda v: _f(v, 0)),
    ("CPU ms per JSON request (best)", "cpu_ms_per_req_min", "cpu_per_req_x_less", _f),
    ("added p50 at c=1 (JSON), ms", "added_p50_c1_ms", "added_p50_c1_x_less", _f),
    ("idle RSS, MB", "rss_idle_mb", "rss_idle_x_less", lambda v: _f(v, 0)),
    ("cold start, s", "cold_start_s", "cold_start_x_faster", _f),
    ("streaming: added TTFT, ms", "added_ttft_ms", "added_ttft_x_less", lambda v: _f(v, 3)),
]


def _ratio_rows(summary: Result) -> list[list[str]]:
    heads = summary["headlines"]
    lg, ll = heads.get("lockgate", {}), heads.get("litellm", {})
    r = summary["ratios"]
    return [
        [label, fmt(lg.get(k)), fmt(ll.get(k)), _f(r.get(rk), 1)] for label, k, rk, fmt in _SPEC
    ]


def _keyed_ratio_rows(summary: Result) -> tuple[list[str], list[list[str]]]:
    heads, keyed = summary["headlines"], summary["keyed"]
    names = [n for n in KEYED if n in keyed["ratios"]]
    base = heads[keyed["baseline"]]
    header = ["metric", *names, keyed["baseline"], *(f"{n} ratio (x better)" for n in names)]
    rows = [
        [
            label,
            *(fmt(heads[n].get(k)) for n in names),
            fmt(base.get(k)),
            *(_f(keyed["ratios"][n].get(rk), 1) for n in names),
        ]
        for label, k, rk, fmt in _SPEC
    ]
    return header, rows


def _access_rows(results: dict[str, Result]) -> list[list[str]]:
    rows: list[list[str]] = []
    names = [n for n in ("lockgate", *KEYED) if n in results and "error" not in results[n]]
    keys: list[str] = []
    for n in names:
        keys += [k for k in _scenarios(results[n]) if k not in keys]
    for key in keys:
        for name in names:
            s = _scenarios(results[name]).get(key)
            if s is None:
                continue
            r = s.get("redis", {})
            rows.append(
                [
                    key,
                    name,
                    _f(s["rps"], 0),
                    _f(s.get("added_p50_ms"), 3),
                    _f(s.get("cpu_ms_per_req"), 3),
                    _f(s.get("cpu_added_ms"), 3),
                    _f(r.get("round_trips_per_req"), 3),
                    _f(r.get("scripts_per_req"), 3),
                    _f(r.get("commands_per_req"), 2),
                    _f(r.get("cpu_ms_per_req"), 3),
                ]
            )
    return rows


def render(meta: Result, results: dict[str, Result], summary: Result) -> str:
    lines = [f"# lockgate benchmark {meta['timestamp']}", ""]
    lines += [f"- {k}: {v}" for k, v in meta.items() if k != "timestamp"]
    lines += [f"- not measured: {name}: {why}" for name, why in summary.get("skipped", {}).items()]
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
    if any(n in results for n in KEYED):
        lines += _render_access(results, summary)
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
    if summary.get("access_checks"):
        lines += ["## Keys, limits and budgets vs their targets", ""]
        rows = [
            [
                c["goal"],
                c["target"],
                _f(c["value"], 3),
                "≤ " + _f(c["limit"], 1),
                {True: "yes", False: "NO", None: "—"}[c["ok"]]
                + (f" ({c['note']})" if c["note"] else ""),
            ]
            for c in summary["access_checks"]
        ]
        lines += _table(["target", "measured on", "measured", "goal", "met"], rows)
    return "\n".join(lines)


def _render_access(results: dict[str, Result], summary: Result) -> list[str]:
    lines = [
        "## Keys, limits and budgets",
        "",
        "`lockgate-keys` and `lockgate-redis` authenticate every request with a virtual key "
        "(SHA-256 lookup) that has rpm, tpm and daily budget limits, in a team with daily and "
        "monthly budgets: each request reserves against both scopes before the upstream call and "
        "settles its real usage and cost after. Plain `lockgate` uses the static operator key "
        "(no limits). CPU added = the keyed target's CPU per request minus plain lockgate's in "
        "the same scenario. Redis columns (server-wide counters, less the rate the server showed "
        "while the gateway was idle): round trips = read events on client sockets; scripts = "
        "EVAL/EVALSHA runs; commands include those run inside scripts.",
        "",
    ]
    lines += _table(
        [
            "scenario",
            "target",
            "req/s",
            "added p50 ms",
            "CPU ms/req",
            "CPU added ms/req",
            "Redis round trips/req",
            "Redis scripts/req",
            "Redis commands/req",
            "Redis CPU ms/req",
        ],
        _access_rows(results),
    )
    bg = results.get("lockgate-redis", {}).get("redis_background_per_s")
    if bg:
        lines += [
            f"Redis background while lockgate-redis was idle (subtracted): {bg['reads']:.1f} reads/s, "
            f"{bg['commands']:.1f} commands/s, {bg['scripts']:.1f} scripts/s, {bg['cpu_ms']:.2f} ms CPU/s.",
            "",
        ]
    keyed = summary.get("keyed", {})
    if keyed.get("ratios"):
        title = (
            "LiteLLM with keys and budgets"
            if keyed["baseline"] == "litellm-keys"
            else "plain LiteLLM"
        )
        lines += [f"## With keys and budgets on vs {title}", ""]
        if keyed.get("baseline_note"):
            lines += [
                f"LiteLLM with virtual keys and budgets was not measured: {keyed['baseline_note']}. "
                "The comparison is against plain LiteLLM (static master key, no database), "
                "which does less work per request than LiteLLM with keys and budgets would.",
                "",
            ]
        header, rows = _keyed_ratio_rows(summary)
        lines += _table(header, rows)
    return lines
