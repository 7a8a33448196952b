"""Datasets: reading JSONL, CSV and captured traffic; versions in the store (SQLite and
PostgreSQL); runs and per-item results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lockgate.errors import InvalidRequest, NotFound
from lockgate.evals.datasets import parse_items, read_items
from lockgate.evals.models import DatasetItem, ItemResult, Target
from lockgate.store import Store


def test_jsonl_items_with_shorthands() -> None:
    text = "\n".join(json.dumps(r) for r in [
        {"id": "q1", "variables": {"question": "2+2?"}, "expected": "4", "metadata": {"tag": "math"}},
        {"id": 7, "messages": [{"role": "user", "content": "Hi"}], "expected": {"greeting": True}},
        {"input": "Capital of France?", "expected": "Paris", "context": "Paris is the capital of France."},
        {"input": {"name": "Ada"}},
    ]) + "\n\n"
    items = parse_items(text, "jsonl")

    assert [i.key for i in items[:2]] == ["q1", "7"]
    assert items[0] == DatasetItem(key="q1", variables={"question": "2+2?"}, expected="4", metadata={"tag": "math"})
    assert items[1].expected == {"greeting": True} and items[1].position == 1
    assert items[2].messages == [{"role": "user", "content": "Capital of France?"}]
    assert items[2].metadata == {"context": "Paris is the capital of France."}
    assert items[2].key.startswith("h-") and items[3].variables == {"name": "Ada"}
    # The same input keeps its key (runs over two versions compare item by item).
    assert parse_items(json.dumps({"input": "Capital of France?"}), "jsonl")[0].key == items[2].key


@pytest.mark.parametrize(("line", "message"), [
    ('{"id": "a", "expectd": "x", "input": "q"}', r"t:1: unknown key\(s\) expectd"),
    ('{"id": "a"}', "needs variables or messages"),
    ('{"messages": [{"role": "robot", "content": "x"}]}', r"messages\[0\].role must be one of"),
    ('[1, 2]', "must be a JSON object"),
    ('{"input": 3}', "input must be an object"),
    ("{nope", "not JSON"),
])
def test_jsonl_errors_name_the_line(line: str, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        parse_items(line, "jsonl", source="t")


def test_duplicate_ids_are_refused_and_duplicate_inputs_kept_apart() -> None:
    with pytest.raises(InvalidRequest, match="the id 'a' is used twice"):
        parse_items('{"id": "a", "input": "x"}\n{"id": "a", "input": "y"}', "jsonl")
    twins = parse_items('{"input": "x"}\n{"input": "x"}', "jsonl")
    assert twins[1].key == twins[0].key + "-2"


def test_csv_columns_are_variables_except_the_reserved_ones(tmp_path: Path) -> None:
    path = tmp_path / "golden.csv"
    path.write_text('id,question,tone,expected,context,metadata\n'
                    'c1,"Where is my order?",warm,Tracking,"Orders ship in 2 days","{""tier"": ""gold""}"\n'
                    ',,,,,\n'
                    'c2,Refund?,dry,,,\n')
    items = read_items(path)

    assert [i.key for i in items] == ["c1", "c2"]
    assert items[0].variables == {"question": "Where is my order?", "tone": "warm"}
    assert items[0].expected == "Tracking" and items[1].expected is None
    assert items[0].metadata == {"tier": "gold", "context": "Orders ship in 2 days"}
    with pytest.raises(InvalidRequest, match="metadata cell must be a JSON object"):
        parse_items("id,q,metadata\na,b,[1]\n", "csv")


def test_captured_traffic_becomes_items_with_the_answer_as_expected() -> None:
    lines = [
        {"request_id": "req-1", "time": "2025-01-01T00:00:00Z",
         "request": {"model": "prompt:support@production", "messages": [], "prompt_variables": {"q": "Hi"}},
         "response": {"choices": [{"message": {"role": "assistant", "content": "Hello!"}}]}},
        {"request": {"model": "fast", "messages": [{"role": "user", "content": "a"},
                                                   {"role": "assistant", "content": "b"},
                                                   {"role": "user", "content": "c"},
                                                   {"role": "assistant", "content": "d"}]},
         "response": {"content": [{"type": "text", "text": "Anthropic"}, {"type": "text", "text": " answer"}]}},
        {"model": "fast", "messages": [{"role": "user", "content": "bare body"}]},
    ]
    items = parse_items("\n".join(json.dumps(x) for x in lines), "capture")

    assert items[0].key == "req-1" and items[0].variables == {"q": "Hi"} and items[0].messages is None
    assert items[0].expected == "Hello!"
    assert items[0].metadata == {"captured": True, "request_id": "req-1", "time": "2025-01-01T00:00:00Z",
                                 "model": "prompt:support@production"}
    assert [m["content"] for m in items[1].messages or []] == ["a", "b", "c"]  # up to the last user turn
    assert items[1].expected == "Anthropic answer"
    assert items[2].expected is None and items[2].messages == [{"role": "user", "content": "bare body"}]


ITEMS = [DatasetItem(key="a", messages=[{"role": "user", "content": "one"}], expected="1"),
         DatasetItem(key="b", variables={"x": 2}, expected="2", position=1)]


async def test_dataset_versions(store: Store) -> None:
    v1, created = await store.create_dataset("golden", ITEMS, source="jsonl:g.jsonl", description="first")
    same, again = await store.create_dataset("golden", ITEMS, source="jsonl:g.jsonl")
    v2, _ = await store.create_dataset("golden", [ITEMS[0]], source="jsonl:g2.jsonl")

    assert created and not again and same == v1
    assert (v1.version, v2.version, v1.ref, v1.item_count, v2.item_count) == (1, 2, "golden@1", 2, 1)
    assert await store.get_dataset("golden") == v2
    assert await store.get_dataset("golden", 1) == v1
    assert await store.dataset_items(v1.id) == ITEMS
    assert [d.ref for d in await store.list_datasets()] == ["golden@1", "golden@2"]
    with pytest.raises(NotFound, match="No dataset golden@9"):
        await store.get_dataset("golden", 9)
    with pytest.raises(InvalidRequest, match="unique"):
        await store.create_dataset("dup", [ITEMS[0], ITEMS[0]], source="x")


async def test_runs_and_results(store: Store) -> None:
    dataset, _ = await store.create_dataset("golden", ITEMS, source="x")
    target = Target(prompt="support", version=3)
    run = await store.create_eval_run(target, dataset, ["exact_match"], "h" * 64)
    other = await store.create_eval_run(Target(model="fast"), dataset, ["exact_match"], "h" * 64)

    first = ItemResult(item_key="a", position=0, output=None, error="502 boom", scores={"exact_match": None}, details={})
    await store.save_eval_result(run.id, first)
    retried = ItemResult(item_key="a", position=0, output="1", error=None, scores={"exact_match": 1.0},
                         details={"exact_match": {"why": "same"}}, latency_ms=12.5, input_tokens=3, output_tokens=1)
    await store.save_eval_result(run.id, retried)

    [stored] = await store.eval_results(run.id)
    assert (stored.output, stored.error, stored.scores, stored.details) == ("1", None, {"exact_match": 1.0},
                                                                           {"exact_match": {"why": "same"}})
    assert await store.count_eval_results(run.id) == 1
    assert run.target == target and run.dataset == dataset and run.status == "running"
    assert [r.id for r in await store.find_eval_runs(target=target)] == [run.id]
    assert {r.id for r in await store.find_eval_runs(dataset_id=dataset.id)} == {other.id, run.id}
    assert (await store.get_eval_run(run.id[:13])).id == run.id  # a unique prefix
    finished = await store.finish_eval_run(run.id, {"metrics": {}})
    assert finished.status == "finished" and finished.finished_at is not None and finished.summary == {"metrics": {}}
    assert [r.id for r in await store.find_eval_runs(status="finished")] == [run.id]
    assert (await store.reopen_eval_run(run.id)).status == "running"
    with pytest.raises(NotFound):
        await store.get_eval_run("no-such-run")
