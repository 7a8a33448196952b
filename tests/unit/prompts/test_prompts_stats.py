"""Experiment statistics, sticky assignment, the report and the outcome recorder."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from lockgate.prompts.assign import assignment_key, choose_arm, point
from lockgate.prompts.models import Arm, Experiment, Outcome
from lockgate.prompts.recorder import OutcomeRecorder
from lockgate.prompts.report import build_report, format_report
from lockgate.prompts.stats import chi_square_p, mean_ci, percentile, t_975, welch, wilson

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ARMS = (Arm("control", 70, version=1), Arm("warm", 30, version=2))


def experiment(arms: tuple[Arm, ...] = ARMS, sticky: Any = "user") -> Experiment:
    return Experiment(id="e1", name="tone", prompt="support", model=None, label="production", sticky=sticky,
                      arms=arms, status="active", created_at=T0, created_by="test")


@pytest.mark.parametrize(("statistic", "df", "p"), [
    (3.841458820694124, 1, 0.05), (6.634896601021214, 1, 0.01), (10.827566170662733, 1, 0.001),
    (5.991464547107979, 2, 0.05), (31.410432844230918, 20, 0.05), (0.0, 3, 1.0), (124.342, 100, 0.05),
])
def test_chi_square_tail_matches_the_tables(statistic: float, df: int, p: float) -> None:
    assert chi_square_p(statistic, df) == pytest.approx(p, rel=1e-3)


def test_intervals() -> None:
    assert t_975(1) == 12.706 and t_975(30) == pytest.approx(2.042, abs=1e-3) and t_975(1e6) == pytest.approx(1.96, abs=1e-3)
    assert mean_ci([1.0, 2.0, 3.0, 4.0]) == pytest.approx((2.5, 2.5 - 3.182 * math.sqrt(5 / 3 / 4), 2.5 + 3.182 * math.sqrt(5 / 3 / 4)))
    assert mean_ci([1.0]) == (1.0, None, None)
    p, low, high = wilson(0, 20)
    assert p == 0 and low == 0 and high == pytest.approx(0.161, abs=1e-3)
    diff, lo, hi = welch([0.0, 1.0, 0.0, 1.0], [1.0, 1.0, 1.0, 0.0])
    assert diff == 0.25 and lo is not None and hi is not None and lo < 0.25 < hi
    assert percentile([5.0, 1.0, 3.0], 50) == 3.0 and percentile(list(map(float, range(1, 101))), 95) == pytest.approx(95.05)
    assert percentile([], 50) is None


def test_assignment_is_sticky_weighted_and_independent_per_experiment() -> None:
    users = [f"user-{i}" for i in range(10_000)]
    arms = [choose_arm(ARMS, point("tone", u)).name for u in users]
    assert arms == [choose_arm(ARMS, point("tone", u)).name for u in users]  # sticky
    share = Counter(arms)["control"] / len(users)
    assert abs(share - 0.7) < 0.02
    other = [choose_arm(ARMS, point("another", u)).name for u in users]
    agree = sum(a == b for a, b in zip(arms, other, strict=True)) / len(users)
    assert abs(agree - (0.7**2 + 0.3**2)) < 0.03  # independent splits agree by chance only


def test_the_assignment_key() -> None:
    by_user, by_session = experiment(), experiment(sticky="session")
    assert assignment_key(by_user, user="u", session="s", request_id="r") == "user:u"
    assert assignment_key(by_session, user="u", session="s", request_id="r") == "session:s"
    assert assignment_key(by_user, user=None, session="s", request_id="r") == "session:s"
    assert assignment_key(by_session, user="u", session=None, request_id="r") == "user:u"
    assert assignment_key(by_user, user=None, session=None, request_id="r") == "request:r"


def outcome(i: int, arm: str, status: int = 200, latency: float = 10.0) -> Outcome:
    return Outcome(request_id=f"r{i}", experiment="tone", arm=arm, at=T0, status=status, latency_ms=latency,
                   prompt="support", version=1 if arm == "control" else 2, model="fast",
                   input_tokens=10, output_tokens=5, cost_usd=0.001)


def test_report_per_arm_with_scores_and_no_mismatch() -> None:
    outcomes = [outcome(i, "control", latency=float(i)) for i in range(70)] + [outcome(100 + i, "warm") for i in range(30)]
    outcomes[0] = outcome(0, "control", status=502)
    scores = [("control", "helpful", v) for v in (0.0, 1.0, 1.0, 0.0)] + [("warm", "helpful", v) for v in (1.0, 1.0, 1.0, 0.0)]
    report = build_report(experiment(), outcomes, scores)
    control, warm = report.arms
    assert (control.requests, control.errors, warm.requests, warm.errors) == (70, 1, 30, 0)
    assert control.p50_ms == pytest.approx(35.0) and control.p95_ms == pytest.approx(65.6)
    assert (control.input_tokens, control.output_tokens, round(control.cost_usd, 6)) == (700, 350, 0.07)
    assert control.scores[0].mean == 0.5 and control.scores[0].delta is None
    assert warm.scores[0].mean == 0.75 and warm.scores[0].delta == 0.25
    assert report.srm is not None and not report.srm.mismatch and report.srm.p_value == pytest.approx(1.0)
    text = format_report(report)
    assert "control" in text and "helpful" in text and "delta +0.250" in text and "sample ratio: ok" in text


def test_report_flags_a_sample_ratio_mismatch() -> None:
    outcomes = [outcome(i, "control") for i in range(500)] + [outcome(1000 + i, "warm") for i in range(500)]
    report = build_report(experiment(), outcomes, [])
    assert report.srm is not None and report.srm.mismatch and report.srm.p_value < 1e-6
    assert "sample ratio MISMATCH" in format_report(report)
    assert build_report(experiment(), [], []).srm is None


class FlakyStore:
    def __init__(self) -> None:
        self.fail = True
        self.rows: list[Outcome] = []

    async def add_experiment_outcomes(self, rows: list[Outcome]) -> None:
        if self.fail:
            raise ConnectionError("down")
        self.rows += rows


async def test_recorder_keeps_outcomes_through_a_failed_flush_and_stays_bounded() -> None:
    store = FlakyStore()
    recorder = OutcomeRecorder(store, max_pending=100)
    for i in range(60):
        recorder.add(outcome(i, "control"))
    with pytest.raises(ConnectionError):
        await recorder.flush()
    for i in range(60, 120):
        recorder.add(outcome(i, "warm"))
    assert recorder.pending == 100 and recorder.dropped == 20
    store.fail = False
    assert await recorder.flush() == 100
    assert [o.request_id for o in store.rows] == [f"r{i}" for i in range(20, 120)]  # the oldest went
    assert await recorder.flush() == 0
