"""Guardrail scanner cost: time per 2 KB prompt and throughput (MB/s), per scanner.

    .venv/bin/python bench/guard_bench.py [--repeat 300] [--classifier-repeat 20]

Three 2 KB prompts: `prose` (an ordinary request: text, a few numbers, no personal
data), `mixed` (prose with an e-mail address, a phone number and a card number) and
`dense` (nothing but personal data and keys: the worst case). For each scanner with
its defaults, and for the default input set together (pii + secrets + injection, as
the input stage runs them on one message), the median time per prompt over
`--repeat` runs, after a warm-up. Single-threaded, in-process, no event loop.
`injection_classifier` (MiniLM on onnxruntime, one intra-op thread) is timed over
`--classifier-repeat` runs: it costs milliseconds, not microseconds.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from lockgate.guard.classifier import InjectionClassifierScanner
from lockgate.guard.injection import InjectionScanner
from lockgate.guard.pii import PiiScanner
from lockgate.guard.resources import GuardResources
from lockgate.guard.secrets import SecretsScanner
from lockgate.guard.types import ScanContext, Scanner

PROSE = (
    "I'm preparing the quarterly review for our support team and need help structuring it. "
    "In Q3 we handled 12,480 tickets, up 18% from Q2, with a median first response of 2.4 hours. "
    "The new triage flow cut escalations by a third, but weekend coverage is still thin. "
    "Please draft an outline with sections for volume, quality, staffing and next steps, and "
    "suggest three metrics we should add next quarter. Keep the tone factual and concise. "
)
MIXED_EXTRA = "Send the draft to dana.whitfield@example.com or call +1 415 555 0132; expense it on card 4111 1111 1111 1111. "
DENSE = (
    "Card 4111 1111 1111 1111, mail jane.doe@example.com, call +1 415 555 0132, IBAN DE89 3704 0044 0532 0130 00, "
    "SSN 536-22-1234, born 12/03/1985, ip 10.20.30.40, key AKIAIOSFODNN7EXAMPLE, token ghp_"
    "aB3dE5gH7jK9mN1pQ3sT5vX7zB9dF1hJ3lN5. "
)


def two_kb(base: str, extra: str = "") -> str:
    text = ""
    while len(text) < 2048:
        text += base + extra
    return text[:2048]


def median_us(work: Callable[[], object], repeat: int) -> float:
    for _ in range(min(20, repeat)):
        work()
    samples: list[float] = []
    for _ in range(repeat):
        t = time.perf_counter()
        work()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=300)
    parser.add_argument("--classifier-repeat", type=int, default=20)
    args = parser.parse_args()
    res = GuardResources()
    scanners: dict[str, Scanner] = {
        "pii": PiiScanner(None, entities=None, resources=res),
        "secrets": SecretsScanner(None, entities=None, resources=res),
        "injection": InjectionScanner(None, entities=None, resources=res),
    }
    prompts = {"prose": two_kb(PROSE), "mixed": two_kb(PROSE, MIXED_EXTRA), "dense": two_kb(DENSE)}
    ctx = ScanContext("user")
    print(f"{'scanner':<34}" + "".join(f"{name + ' µs':>12}{'MB/s':>8}" for name in prompts))
    rows: dict[str, dict[str, float]] = {}
    for name, scanner in scanners.items():
        rows[name] = {p: median_us(lambda s=scanner, t=text: s.scan(t, ctx), args.repeat) for p, text in prompts.items()}

    def all_three(text: str) -> None:
        for s in scanners.values():
            s.scan(text, ctx)

    rows["default input set"] = {p: median_us(lambda t=text: all_three(t), args.repeat) for p, text in prompts.items()}
    model = InjectionClassifierScanner(None, entities=None, resources=res)
    model.model()  # load before timing
    rows["injection_classifier"] = {
        p: median_us(lambda t=text: model.scan(t, ctx), args.classifier_repeat) for p, text in prompts.items()
    }
    for name, row in rows.items():
        cells = "".join(f"{us:>12.0f}{2048 / us:>8.1f}" for us in row.values())  # bytes/µs == MB/s
        print(f"{name:<34}{cells}")
    short = "Please summarise this article about renewable energy in three bullet points."
    us = median_us(lambda: model.scan(short, ctx), args.classifier_repeat)
    print(f"injection_classifier on a {len(short)}-character message: {us:.0f} µs")


if __name__ == "__main__":
    main()
