"""The statistics an experiment report needs, in plain Python (no SciPy).

- `percentile`: linear interpolation between the closest ranks (NumPy's default).
- `mean_ci`: the mean with a 95% Student-t interval (`t_975` from a table for small
  samples, the Cornish-Fisher expansion beyond).
- `wilson`: a proportion (an error rate) with its 95% Wilson score interval, which
  behaves at 0 and 1 where the normal approximation does not.
- `welch`: the difference of two means with a 95% Welch interval (unequal variances).
- `chi_square_p`: the upper tail of the chi-square distribution (the regularized upper
  incomplete gamma function, by series or continued fraction), for the sample-ratio
  mismatch test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["Z_975", "chi_square_p", "mean_ci", "percentile", "t_975", "welch", "wilson"]

Z_975 = 1.959963984540054
_T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)  # df 1..10


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) of `values`; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def t_975(df: float) -> float:
    """The 97.5% quantile of Student's t with `df` degrees of freedom (df >= 1)."""
    if df < 1:
        raise ValueError("df must be at least 1")
    if df < 11:
        return _T_975[int(df) - 1]  # rounding df down keeps the interval conservative
    z = Z_975
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    return z + g1 / df + g2 / df**2 + g3 / df**3


def _variance(values: Sequence[float], mean: float) -> float:
    return sum((v - mean) ** 2 for v in values) / (len(values) - 1)


def mean_ci(values: Sequence[float]) -> tuple[float, float | None, float | None]:
    """(mean, low, high); the interval is None below two values."""
    n = len(values)
    if n == 0:
        raise ValueError("no values")
    mean = sum(values) / n
    if n < 2:
        return mean, None, None
    half = t_975(n - 1) * math.sqrt(_variance(values, mean) / n)
    return mean, mean - half, mean + half


def wilson(k: int, n: int) -> tuple[float, float, float]:
    """(k/n, low, high) with the 95% Wilson score interval; n > 0."""
    p = k / n
    z2 = Z_975**2
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z_975 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return p, max(0.0, centre - half), min(1.0, centre + half)


def welch(a: Sequence[float], b: Sequence[float]) -> tuple[float, float | None, float | None]:
    """mean(b) - mean(a), with a 95% Welch interval (None below two values a side)."""
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    diff = mb - ma
    if len(a) < 2 or len(b) < 2:
        return diff, None, None
    va, vb = _variance(a, ma) / len(a), _variance(b, mb) / len(b)
    se2 = va + vb
    if se2 == 0:
        return diff, diff, diff
    df = se2**2 / ((va**2 / (len(a) - 1)) + (vb**2 / (len(b) - 1)))
    half = t_975(max(1.0, df)) * math.sqrt(se2)
    return diff, diff - half, diff + half


def chi_square_p(statistic: float, df: int) -> float:
    """P(X >= statistic) for X ~ chi-square(df)."""
    if df < 1:
        raise ValueError("df must be at least 1")
    if statistic <= 0:
        return 1.0
    return _gamma_q(df / 2.0, statistic / 2.0)


def _gamma_q(a: float, x: float) -> float:
    """The regularized upper incomplete gamma function Q(a, x)."""
    log_prefix = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1:  # the series for P converges fast here
        term = total = 1.0 / a
        n = 1
        while abs(term) > abs(total) * 1e-15 and n < 10_000:
            term *= x / (a + n)
            total += term
            n += 1
        return max(0.0, 1.0 - total * math.exp(log_prefix))
    tiny = 1e-300  # the continued fraction for Q (modified Lentz)
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return min(1.0, math.exp(log_prefix) * h)
