"""The accuracy targets on the shipped set, measured by the same code as `lockgate guard eval`."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from lockgate.cli.guard import guard
from lockgate.guard.evaluate import evaluate, load_set


@pytest.fixture(scope="module")
def report() -> dict[str, dict[str, Any]]:
    return evaluate(["pii", "secrets", "injection"])


def test_the_set_has_several_hundred_cases_per_scanner_with_hard_negatives() -> None:
    for name in ("pii", "secrets", "injection"):
        cases = list(load_set(name))
        assert len(cases) >= 300, name
        assert len({c["text"] for c in cases}) == len(cases), f"{name}: duplicate texts"
    pii_kinds = {c["kind"] for c in load_set("pii")}
    assert {"order_number", "uuid", "code", "hash", "bad_checksum"} <= pii_kinds
    assert {"placeholder", "hash", "uuid", "code"} <= {c["kind"] for c in load_set("secrets")}
    assert {"direct", "indirect", "benign", "hard_negative"} <= {c["kind"] for c in load_set("injection")}


def test_structured_pii_f1(report: dict[str, dict[str, Any]]) -> None:
    entities = report["pii"]["entities"]
    for entity in ("EMAIL_ADDRESS", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "PHONE_NUMBER"):
        assert entities[entity]["f1"] >= 0.95, (entity, entities[entity])
    assert report["pii"]["structured"]["f1"] >= 0.95


def test_secrets_recall_at_low_false_positive_rate(report: dict[str, dict[str, Any]]) -> None:
    assert report["secrets"]["recall"] >= 0.95
    assert report["secrets"]["fp_rate_benign"] <= 0.01


def test_direct_injection_recall_at_precision(report: dict[str, dict[str, Any]]) -> None:
    direct = report["injection"]["direct"]
    assert direct["recall"] >= 0.85 and direct["precision"] >= 0.95, direct


def test_cli_prints_the_same_numbers_as_json(report: dict[str, dict[str, Any]]) -> None:
    result = CliRunner().invoke(guard, ["eval", "--scanner", "secrets", "--json"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert list(printed) == ["secrets"]
    assert printed["secrets"]["recall"] == report["secrets"]["recall"]
    assert printed["secrets"]["fp_rate_benign"] == report["secrets"]["fp_rate_benign"]


def test_cli_prints_a_table() -> None:
    result = CliRunner().invoke(guard, ["eval", "--scanner", "injection"])
    assert result.exit_code == 0
    assert "direct     precision" in result.output and "false-positive rate on benign text" in result.output
