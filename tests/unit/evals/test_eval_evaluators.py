"""Each built-in evaluator, through the registry (the same door as a plugin's), on
cases built by hand. The embedding evaluator runs the real ONNX model."""

from __future__ import annotations

from typing import Any

import pytest

from lockgate.config.evals import EvalsConfig, EvaluatorConfig
from lockgate.errors import InvalidRequest, UpstreamError
from lockgate.evals.evaluator import Case, Evaluator, EvaluatorEnv, Score
from lockgate.evals.evaluators.model_based import overlap_support, parse_verdict
from lockgate.evals.models import DatasetItem
from lockgate.evals.registry import BUILTIN, build_evaluators, evaluator_types, spec_hash


def build(kind: str, options: dict[str, Any] | None = None, *, chat: Any = None, **config: Any) -> Evaluator:
    cfg = EvalsConfig(evaluators={"e": EvaluatorConfig(type=kind, options=options or {})}, **config)
    [evaluator] = build_evaluators(["e"], cfg, EvaluatorEnv(cfg, chat=chat))
    return evaluator


async def score(evaluator: Evaluator, output: str, expected: Any = None, **item: Any) -> Score:
    case = Case(item=DatasetItem(key="k", messages=[{"role": "user", "content": "q"}], expected=expected, **item),
                output=output)
    return await evaluator.evaluate(case)


def test_every_builtin_is_a_registered_type() -> None:
    assert set(BUILTIN) <= set(evaluator_types())
    assert set(BUILTIN) == {"exact_match", "contains", "regex", "json_schema", "numeric", "embedding_similarity",
                            "judge", "groundedness"}


def test_unknown_names_duplicates_and_bad_options_are_refused() -> None:
    cfg = EvalsConfig()
    with pytest.raises(InvalidRequest, match="Unknown evaluator 'nope'"):
        build_evaluators(["nope"], cfg, EvaluatorEnv(cfg))
    with pytest.raises(InvalidRequest, match="named twice"):
        build_evaluators(["exact_match", "exact_match"], cfg, EvaluatorEnv(cfg))
    with pytest.raises(InvalidRequest, match="unknown option"):
        build("exact_match", {"case_sensitiv": False})
    with pytest.raises(InvalidRequest, match="option 'strip' must be a bool"):
        build("exact_match", {"strip": "yes"})
    with pytest.raises(InvalidRequest, match="invalid pattern"):
        build("regex", {"pattern": "("})
    with pytest.raises(InvalidRequest, match="invalid JSON schema"):
        build("json_schema", {"schema": {"type": "nonsense"}})


def test_spec_hash_follows_the_options() -> None:
    a, b = build("exact_match"), build("exact_match", {"case_sensitive": False})
    assert spec_hash([a]) == spec_hash([build("exact_match")])
    assert spec_hash([a]) != spec_hash([b])


async def test_exact_match() -> None:
    strict, loose = build("exact_match"), build("exact_match", {"case_sensitive": False, "collapse_whitespace": True})
    assert (await score(strict, " Paris\n", "Paris")).value == 1.0
    assert (await score(strict, "paris", "Paris")).value == 0.0
    assert (await score(loose, "new   york", "New York")).value == 1.0
    assert (await score(strict, "4", 4)).value == 1.0  # a number is compared as its JSON text
    assert (await score(strict, "x")).value is None  # nothing expected: unscored, not 0


async def test_contains() -> None:
    contains = build("contains")
    assert (await score(contains, "The capital is PARIS.", "paris")).value == 1.0
    half = await score(contains, "red and blue", ["red", "green"])
    assert half.value == 0.5 and half.detail == {"missing": ["green"]}
    fixed = build("contains", {"substrings": ["sorry"], "case_sensitive": True})
    assert (await score(fixed, "Sorry!")).value == 0.0
    assert (await score(contains, "anything")).value is None


async def test_regex() -> None:
    by_option = build("regex", {"pattern": r"order #\d+", "ignore_case": True})
    assert (await score(by_option, "Your ORDER #123 shipped")).value == 1.0
    assert (await score(by_option, "no order here")).value == 0.0
    by_item = build("regex", {"full": True})
    assert (await score(by_item, " 2024-01-31 ", r"\d{4}-\d{2}-\d{2}")).value == 1.0
    assert (await score(by_item, "on 2024-01-31", r"\d{4}-\d{2}-\d{2}")).value == 0.0
    assert (await score(by_item, "x", "(")).value is None  # a broken per-item pattern: unscored


async def test_json_schema() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    with_schema = build("json_schema", {"schema": schema})
    assert (await score(with_schema, '```json\n{"n": 3}\n```')).value == 1.0
    wrong = await score(with_schema, '{"n": "three"}')
    assert wrong.value == 0.0 and wrong.detail["error"].startswith("n: 'three' is not of type 'integer'")
    assert (await score(with_schema, "not json")).value == 0.0
    any_json = build("json_schema")
    assert (await score(any_json, "[1, 2]")).value == 1.0
    from_item = await score(any_json, '{"a": 1}', metadata={"schema": {"type": "array"}})
    assert from_item.value == 0.0


async def test_numeric() -> None:
    exact = build("numeric")
    assert (await score(exact, "42", 42)).value == 1.0
    assert (await score(exact, "There are 3 apples and 4 pears, so 7 fruits.", "7")).value == 1.0
    assert (await score(exact, "It costs 1,234.50 dollars", 1234.5)).value == 1.0
    assert (await score(exact, "41", 42)).value == 0.0
    assert (await score(exact, "no idea", 42)).detail == {"error": "no number in the answer"}
    assert (await score(exact, "42", "forty-two")).value is None
    tolerant = build("numeric", {"abs_tol": 0.5, "pick": "first"})
    assert (await score(tolerant, "3.4 then 9", 3)).value == 1.0
    relative = build("numeric", {"rel_tol": 0.01})
    assert (await score(relative, "100.9", 100)).value == 1.0
    assert (await score(relative, "101.5", 100)).value == 0.0


async def test_embedding_similarity_orders_paraphrases_above_unrelated_text() -> None:
    similarity = build("embedding_similarity", {"threshold": 0.7})
    cases = [
        ("A man is playing a guitar.", "A person plays the guitar.", "The stock market fell sharply today."),
        ("How do I reset my password?", "I forgot my password, how can I change it?", "What is the weather in Paris?"),
        ("The cat sits on the mat.", "A cat is sitting on a rug.", "Quarterly earnings beat expectations."),
    ]
    for reference, paraphrase, unrelated in cases:
        close = await score(similarity, paraphrase, reference)
        far = await score(similarity, unrelated, reference)
        assert close.value is not None and far.value is not None
        assert close.value > 0.6 > 0.3 > far.value
        assert close.detail["passed"] and not far.detail["passed"]
    same = await score(similarity, "identical text", "identical text")
    assert same.value == pytest.approx(1.0, abs=1e-5)
    assert (await score(similarity, "x")).value is None


class ScriptedJudge:
    """A chat function that answers the judge from a list, recording what it was sent."""

    def __init__(self, answers: list[str | Exception]) -> None:
        self.answers = list(answers)
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, model: str, messages: list[dict[str, Any]], **params: Any) -> str:
        self.calls.append({"model": model, "messages": messages, **params})
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


async def test_judge_averages_trials_and_counts_unparseable_verdicts() -> None:
    chat = ScriptedJudge(["Polite enough.\nVERDICT: PASS", "I cannot decide.", "VERDICT: FAIL"])
    judge = build("judge", {"rubric": "Is it polite?"}, chat=chat, judge_model="judge-model")

    result = await score(judge, "Thank you!", "Thanks")

    assert result.value == 0.5  # two parsed verdicts: PASS, FAIL
    assert result.detail["verdicts"] == [1.0, None, 0.0]
    assert result.detail["unparseable"] == 1 and result.detail["failed"] == 0
    assert result.detail["unparsed_answers"] == ["I cannot decide."]
    assert [c["model"] for c in chat.calls] == ["judge-model"] * 3  # the pinned model, every trial
    assert all(c["temperature"] == 0.0 for c in chat.calls)
    prompt = chat.calls[0]["messages"][1]["content"]
    assert "Is it polite?" in prompt and "Thank you!" in prompt and "Thanks" in prompt


async def test_judge_all_unparseable_is_unscored_and_failures_are_apart() -> None:
    chat = ScriptedJudge(["maybe", UpstreamError("judge down")])
    judge = build("judge", {"rubric": "r", "trials": 2, "model": "j"}, chat=chat)

    result = await score(judge, "answer")

    assert result.value is None
    assert result.detail["unparseable"] == 1 and result.detail["failed"] == 1
    assert result.detail["errors"] == ["judge down"]


async def test_judge_numeric_scale() -> None:
    chat = ScriptedJudge(["SCORE: 5", "score: 3", "SCORE: 9"])  # 9 is out of range: unparseable
    judge = build("judge", {"rubric": "r", "scale": [1, 5], "model": "j"}, chat=chat)
    result = await score(judge, "a")
    assert result.value == pytest.approx(0.75) and result.detail["unparseable"] == 1


def test_judge_model_must_be_given_and_pinned() -> None:
    with pytest.raises(InvalidRequest, match="no judge model"):
        build("judge", {"rubric": "r"})
    with pytest.raises(InvalidRequest, match="must be pinned"):
        build("judge", {"rubric": "r", "model": "prompt:grader@production"})
    assert build("judge", {"rubric": "r", "model": "prompt:grader@2"}).spec()["model"] == "prompt:grader@2"
    with pytest.raises(ValueError, match="NAME@VERSION"):
        EvalsConfig(judge_model="prompt:grader@staging")


def test_parse_verdict() -> None:
    assert parse_verdict("blah\nVERDICT: **PASS**", None) == 1.0
    assert parse_verdict("VERDICT: PASS ... on reflection VERDICT: FAIL", None) == 0.0  # the last one counts
    assert parse_verdict("fail.", None) == 0.0
    assert parse_verdict("It passes", None) is None
    assert parse_verdict("SCORE: 2", (0, 4)) == 0.5
    assert parse_verdict("no score", (0, 4)) is None


async def test_groundedness_by_overlap() -> None:
    grounded = build("groundedness")
    context = "The Eiffel Tower is in Paris. It was completed in 1889 and is 330 metres tall."
    supported = await score(grounded, "The Eiffel Tower was completed in 1889.", metadata={"context": context})
    assert supported.value == 1.0
    half = await score(grounded, "The tower is 330 metres tall. It was designed by aliens from Mars.",
                       metadata={"context": context})
    assert half.value == 0.5 and half.detail["unsupported"] == ["It was designed by aliens from Mars."]
    from_variable = await score(grounded, "Paris.", variables={"context": [context]})
    assert from_variable.value == 1.0
    assert (await score(grounded, "anything")).value is None  # no context: unscored
    assert overlap_support("", "ctx", threshold=0.5) == (1.0, [])


async def test_groundedness_by_judge_sends_the_context() -> None:
    chat = ScriptedJudge(["VERDICT: FAIL"])
    grounded = build("groundedness", {"method": "judge", "trials": 1, "model": "j"}, chat=chat)
    result = await score(grounded, "It is in Rome.", metadata={"context": "It is in Paris."})
    assert result.value == 0.0
    content = chat.calls[0]["messages"][1]["content"]
    assert "CONTEXT:\nIt is in Paris." in content and "supported by the CONTEXT" in content
    with pytest.raises(InvalidRequest, match="method is"):
        build("groundedness", {"method": "vibes"})


class Shouty:
    def __init__(self, name: str, options: dict[str, Any], env: EvaluatorEnv) -> None:
        self.name = name

    def spec(self) -> dict[str, Any]:
        return {"type": "shouty"}

    async def evaluate(self, case: Case) -> Score:
        return Score(1.0 if case.output.isupper() else 0.0)


async def test_a_custom_evaluator_plugs_in_through_the_entry_point_group(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import EntryPoint

    import lockgate.evals.registry as registry

    here = EntryPoint(name="shouty", value=f"{__name__}:Shouty", group=registry.GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [here] if group == registry.GROUP else [])
    cfg = EvalsConfig()
    [shouty] = build_evaluators(["shouty"], cfg, EvaluatorEnv(cfg))
    assert (await score(shouty, "HEY")).value == 1.0
    assert (await score(shouty, "hey")).value == 0.0
