"""Reading dataset items from files: JSONL, CSV, and captured traffic (JSONL).

JSONL, one item per line:

    {"id": "q1", "variables": {"question": "2+2?"}, "expected": "4", "metadata": {"tag": "math"}}
    {"id": "q2", "messages": [{"role": "user", "content": "Hi"}], "expected": "Hello"}
    {"input": "What is the capital of France?", "expected": "Paris", "context": "..."}

`input` is shorthand: an object means `variables`, a string one user message. `context`
is shorthand for `metadata.context`. Other keys are errors.

CSV: a header row; the columns `id`, `expected`, `input` (one user message), `context`
and `metadata` (a JSON object) are reserved; every other column is a variable.

Captured traffic (`--format capture`), one request per line, as a gateway log or a
proxy would record it:

    {"request_id": "...", "request": {"model": "...", "messages": [...], "prompt_variables": {...}},
     "response": {"choices": [{"message": {"content": "..."}}]}}

A line may also be a bare chat request body. The request's messages (up to the last
user turn) and `prompt_variables` become the item's input; the recorded answer, if any,
its expected output (a baseline to hold new versions to); the request id, model and
time go into its metadata.

Item keys: the `id` (or `request_id`), else a hash of the input, so the same input keeps
its key across dataset versions and runs compare item by item.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path
from typing import Any, Literal, cast

from lockgate.errors import InvalidRequest
from lockgate.evals.models import DatasetItem

__all__ = ["Format", "item_from_dict", "parse_items", "read_items", "unique_keys"]

Format = Literal["jsonl", "csv", "capture"]

_JSONL_KEYS = {"id", "variables", "messages", "input", "expected", "metadata", "context"}
_CSV_RESERVED = {"id", "expected", "input", "context", "metadata"}
_ROLES = {"system", "user", "assistant", "tool", "developer"}
MAX_KEY = 200


def read_items(path: str | Path, fmt: Format | None = None) -> list[DatasetItem]:
    """The items of a file; the format from `fmt`, else the file's extension."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"{path}: cannot read: {exc}") from None
    if fmt is None:
        fmt = "csv" if path.suffix.lower() == ".csv" else "jsonl"
    return parse_items(text, fmt, source=str(path))


def parse_items(text: str, fmt: Format, *, source: str = "<input>") -> list[DatasetItem]:
    if fmt == "csv":
        items = [_from_csv_row(row, f"{source}:{n}") for n, row in _csv_rows(text, source)]
    else:
        items = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise InvalidRequest(f"{source}:{n}: not JSON: {exc}") from None
            if not isinstance(record, dict):
                raise InvalidRequest(f"{source}:{n}: each line must be a JSON object")
            where = f"{source}:{n}"
            obj = cast("dict[str, Any]", record)
            items.append(_from_capture(obj, where) if fmt == "capture" else item_from_dict(obj, where))
    if not items:
        raise InvalidRequest(f"{source}: no items")
    return unique_keys(items, source)


def item_from_dict(record: dict[str, Any], where: str = "item") -> DatasetItem:
    """One item from its JSON form (the JSONL line, or the admin API's body)."""
    unknown = sorted(set(record) - _JSONL_KEYS)
    if unknown:
        raise InvalidRequest(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(_JSONL_KEYS))})")
    variables: Any = record.get("variables")
    messages: Any = record.get("messages")
    raw_input: Any = record.get("input")
    if isinstance(raw_input, dict):
        variables = {**cast("dict[str, Any]", raw_input), **cast("dict[str, Any]", variables or {})}
    elif isinstance(raw_input, str):
        messages = [*(messages or []), {"role": "user", "content": raw_input}]
    elif raw_input is not None:
        raise InvalidRequest(f"{where}: input must be an object (variables) or a string (a user message)")
    metadata: Any = record.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise InvalidRequest(f"{where}: metadata must be an object")
    if record.get("context") is not None:
        metadata = {**cast("dict[str, Any]", metadata), "context": record["context"]}
    return _item(record.get("id"), variables, messages, record.get("expected"), cast("dict[str, Any]", metadata), where)


def _item(
    key: Any, variables: Any, messages: Any, expected: Any, metadata: dict[str, Any], where: str
) -> DatasetItem:
    if variables is not None and not isinstance(variables, dict):
        raise InvalidRequest(f"{where}: variables must be an object")
    if messages is not None:
        _check_messages(messages, where)
    if not variables and not messages:
        raise InvalidRequest(f"{where}: an item needs variables or messages (or input)")
    if key is not None and (not isinstance(key, str | int) or isinstance(key, bool) or not str(key).strip()):
        raise InvalidRequest(f"{where}: id must be a non-empty string or number")
    vars_: dict[str, Any] | None = cast("dict[str, Any]", variables) if variables else None
    msgs: list[dict[str, Any]] | None = cast("list[dict[str, Any]]", messages) if messages else None
    final_key = str(key).strip()[:MAX_KEY] if key is not None else _input_hash(vars_, msgs)
    return DatasetItem(key=final_key, variables=vars_, messages=msgs, expected=expected, metadata=metadata)


def _check_messages(messages: Any, where: str) -> None:
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest(f"{where}: messages must be a non-empty list")
    for i, raw in enumerate(cast("list[Any]", messages)):
        if not isinstance(raw, dict):
            raise InvalidRequest(f"{where}: messages[{i}] must be an object with role and content")
        message = cast("dict[str, Any]", raw)
        if message.get("role") not in _ROLES:
            raise InvalidRequest(f"{where}: messages[{i}].role must be one of {', '.join(sorted(_ROLES))}")
        if not isinstance(message.get("content"), str | list) and not message.get("tool_calls"):
            raise InvalidRequest(f"{where}: messages[{i}].content must be a string or a list of parts")


def _input_hash(variables: dict[str, Any] | None, messages: list[dict[str, Any]] | None) -> str:
    raw = json.dumps({"v": variables, "m": messages}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "h-" + hashlib.sha256(raw.encode()).hexdigest()[:16]


def unique_keys(items: list[DatasetItem], source: str) -> list[DatasetItem]:
    seen: dict[str, int] = {}
    out: list[DatasetItem] = []
    for position, item in enumerate(items):
        key = item.key
        if key in seen:
            if not key.startswith("h-"):
                raise InvalidRequest(f"{source}: the id {key!r} is used twice")
            seen[key] += 1
            key = f"{key}-{seen[item.key]}"  # the same input twice: keep both, apart
        else:
            seen[key] = 1
        out.append(DatasetItem(key=key, variables=item.variables, messages=item.messages,
                               expected=item.expected, metadata=item.metadata, position=position))
    return out


def _csv_rows(text: str, source: str) -> list[tuple[int, dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames:
        raise InvalidRequest(f"{source}: no header row")
    if len(set(reader.fieldnames)) != len(reader.fieldnames):
        raise InvalidRequest(f"{source}: a column name is used twice")
    rows: list[tuple[int, dict[str, str]]] = []
    for row in reader:
        if None in row:
            raise InvalidRequest(f"{source}:{reader.line_num}: more cells than columns")
        if any((v or "").strip() for v in row.values()):
            rows.append((reader.line_num, {k: v or "" for k, v in row.items()}))
    return rows


def _from_csv_row(row: dict[str, str], where: str) -> DatasetItem:
    metadata: dict[str, Any] = {}
    if row.get("metadata", "").strip():
        try:
            parsed = json.loads(row["metadata"])
        except ValueError:
            raise InvalidRequest(f"{where}: the metadata cell must be a JSON object") from None
        if not isinstance(parsed, dict):
            raise InvalidRequest(f"{where}: the metadata cell must be a JSON object")
        metadata = cast("dict[str, Any]", parsed)
    if row.get("context", "").strip():
        metadata["context"] = row["context"]
    variables = {k: v for k, v in row.items() if k not in _CSV_RESERVED}
    messages = [{"role": "user", "content": row["input"]}] if row.get("input", "").strip() else None
    expected = row.get("expected") if row.get("expected", "") != "" else None
    return _item(row.get("id") or None, variables or None, messages, expected, metadata, where)


def _from_capture(record: dict[str, Any], where: str) -> DatasetItem:
    request: Any = record.get("request", record)
    if not isinstance(request, dict):
        raise InvalidRequest(f"{where}: request must be an object")
    body = cast("dict[str, Any]", request)
    messages: list[Any] = list(body.get("messages") or [])
    # Up to the last user turn: what the model was asked, not what it answered.
    last_user = max((i for i, m in enumerate(messages) if isinstance(m, dict) and cast("dict[str, Any]", m).get("role") == "user"),
                    default=len(messages) - 1)
    messages = messages[: last_user + 1]
    metadata: dict[str, Any] = {"captured": True}
    for key in ("request_id", "time", "timestamp"):
        if record.get(key) is not None:
            metadata[key] = record[key]
    if body.get("model") is not None:
        metadata["model"] = body["model"]
    return _item(record.get("request_id") or record.get("id"), body.get("prompt_variables") or None,
                 messages or None, _captured_answer(record.get("response")), metadata, where)


def _captured_answer(response: Any) -> str | None:
    if isinstance(response, str):
        return response
    if not isinstance(response, dict):
        return None
    body = cast("dict[str, Any]", response)
    choices: Any = body.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        message: Any = cast("dict[str, Any]", choices[0]).get("message") or {}
        content = cast("dict[str, Any]", message).get("content") if isinstance(message, dict) else None
        return content if isinstance(content, str) else None
    content = body.get("content")  # Anthropic: [{"type": "text", "text": ...}]
    if isinstance(content, list):
        texts = [cast("dict[str, Any]", c).get("text") for c in cast("list[Any]", content) if isinstance(c, dict)]
        joined = "".join(t for t in texts if isinstance(t, str))
        return joined or None
    return None
