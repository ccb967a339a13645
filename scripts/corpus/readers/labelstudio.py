"""Label Studio exports: the full JSON export (a list of tasks) and JSON_MIN.

    [{"data": {"text": "Sundar Pichai is the CEO."}, "annotations": [{"result": [{"type": "labels",
      "to_name": "text", "value": {"start": 0, "end": 13, "labels": ["PERSON"]}}]}]}]
    [{"text": "...", "label": [{"start": 0, "end": 13, "labels": ["PERSON"]}],
      "sentiment": "Neutral"}]

One annotation per task: not cancelled, ground truth first, else the latest (legacy `completions`
too). Spans come from results with start/end/labels, categories from `choices`; relations and other
result types are ignored and counted. When a file has spans anywhere, tasks without spans are NER
documents with no entities. Overlapping spans (Label Studio allows them) are all kept in
doc.spans["sc"]; doc.ents gets the longest of them.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterator

from spacy.tokens import Doc

from .records import Annotated, RecordParser, iter_json_array, make_docs
from .spans import STRUCTURE_ERRORS, DataError, Log, NumberedLines, ReadOptions, structure_error

MIN_META_KEYS = frozenset(
    {"id", "annotator", "annotation_id", "created_at", "updated_at", "lead_time", "agreement"}
)


def read_labelstudio(lines: NumberedLines, *, options: ReadOptions, log: Log) -> Iterator[Doc]:
    tasks = list(iter_json_array(lines))
    ignored: Counter[str] = Counter()
    parsed: list[Annotated] = []
    fallback = RecordParser(log)
    for line, task in tasks:
        try:
            item = _parse_task(task, line, log, ignored, fallback)
        except DataError as error:
            log.skip(error)
            continue
        except STRUCTURE_ERRORS as error:
            log.skip(structure_error(line, error))
            continue
        if item is not None:
            parsed.append(item)
    has_spans = any(item.spans for item in parsed)
    for item in parsed:
        if has_spans and item.spans is None:
            item.spans = []
    yield from make_docs(parsed, options, log)
    if ignored:
        log.note(
            "Label Studio result types ignored: "
            + ", ".join(f"{k} {v}" for k, v in sorted(ignored.items()))
        )


def _parse_task(
    task: Any, line: int, log: Log, ignored: Counter[str], fallback: RecordParser
) -> Annotated | None:
    if not isinstance(task, dict):
        raise DataError(
            line,
            f"task is a {type(task).__name__}, not an object",
            "export the project again as JSON",
        )
    if isinstance(task.get("data"), dict):
        annotation = choose_annotation(task, line, log)
        if annotation is None:
            return None
        return parse_annotation(task["data"], annotation, line=line, log=log, ignored=ignored)
    if any(_is_min_spans(v) or isinstance(v, dict) and "choices" in v for v in task.values()):
        return _parse_min(task, line, log)
    return fallback.parse(task, line)


def parse_annotation(
    data: dict[str, Any],
    annotation: dict[str, Any],
    *,
    line: int,
    log: Log,
    ignored: Counter[str],
) -> Annotated:
    """One annotation of a task with data `data`, as this reader converts it: the text its results
    point to, spans from results with start/end/labels, categories from choices; the types of the
    results it cannot read are counted in `ignored`. DataError when no data key holds the text."""
    results = [r for r in annotation.get("result") or [] if isinstance(r, dict)]
    text = _task_text(data, results, line)
    return _from_results(text, results, line, log, ignored)


def choose_annotation(task: dict[str, Any], line: int, log: Log) -> dict[str, Any] | None:
    """Ground truth first, else the latest; cancelled annotations are skipped and counted."""
    annotations = [
        a for a in task.get("annotations") or task.get("completions") or [] if isinstance(a, dict)
    ]
    text = str(task["data"])
    usable = [a for a in annotations if not a.get("was_cancelled")]
    for _ in range(len(annotations) - len(usable)):
        log.drop("cancelled annotation skipped", line, text)
    if not usable:
        log.drop("task without a usable annotation (predictions are not used)", line, text)
        return None
    ranked = sorted(
        enumerate(usable),
        key=lambda ia: (
            bool(ia[1].get("ground_truth")),
            str(ia[1].get("updated_at") or ia[1].get("created_at") or ""),
            ia[0],
        ),
    )
    for _ in range(len(usable) - 1):
        log.drop("other annotation of a task (ground truth, else the latest, kept)", line, text)
    return ranked[-1][1]


def _task_text(data: dict[str, Any], results: list[dict[str, Any]], line: int) -> str:
    """The data value the results point to (to_name), else the only string, else `text`."""
    strings = {k: v for k, v in data.items() if isinstance(v, str)}
    if not strings:
        kinds = ", ".join(f"{k}: {type(v).__name__}" for k, v in sorted(data.items()))
        raise DataError(
            line,
            f"the task's data holds no text ({kinds or 'no data'})",
            "the text to annotate must be a JSON string",
        )
    for result in results:
        if isinstance(result.get("to_name"), str) and result["to_name"] in strings:
            return strings[result["to_name"]]
    if len(strings) == 1:
        return next(iter(strings.values()))
    if "text" in strings:
        return strings["text"]
    spans = [
        r["value"] for r in results if isinstance(r.get("value"), dict) and "start" in r["value"]
    ]
    for value in strings.values():
        if spans and all(_slice_matches(value, s) for s in spans):
            return value
    raise DataError(
        line,
        f"cannot tell which data key holds the text ({', '.join(sorted(data)) or 'none'})",
        "name the text field `text` in the labelling config",
    )


def _from_results(
    text: str, results: list[dict[str, Any]], line: int, log: Log, ignored: Counter[str]
) -> Annotated:
    item = Annotated(text=text, line=line)
    for result in results:
        value = result.get("value")
        if not isinstance(value, dict):
            ignored[str(result.get("type", "unknown"))] += 1
        elif isinstance(value.get("labels"), list) and "start" in value and "end" in value:
            start, end = _offsets(text, value, line, log)
            item.spans = (item.spans or []) + [(start, end, label) for label in value["labels"]]
        elif isinstance(value.get("choices"), list):
            item.cats.update({str(choice): 1.0 for choice in value["choices"]})
        else:
            ignored[str(result.get("type", "unknown"))] += 1
    return item


def _offsets(text: str, value: dict[str, Any], line: int, log: Log) -> tuple[int, int]:
    """value.start/end; when value.text disagrees, try offsets counted in UTF-16 units (emoji)."""
    start, end = value["start"], value["end"]
    if (
        "text" not in value
        or not isinstance(start, int)
        or not isinstance(end, int)
        or _slice_matches(text, value)
    ):
        return start, end
    fixed = _from_utf16(text, start), _from_utf16(text, end)
    if text[fixed[0] : fixed[1]] == value["text"]:
        log.repair(
            "offsets counted in UTF-16 units (emoji before the span) converted", line, value["text"]
        )
        return fixed
    log.record(
        "suspect",
        "value.text differs from the text at its offsets (offsets kept)",
        line,
        f"{value['text']!r} vs {text[start:end]!r}",
    )
    return start, end


def _from_utf16(text: str, units: int) -> int:
    position = 0
    for index, char in enumerate(text):
        if position >= units:
            return index
        position += 2 if ord(char) > 0xFFFF else 1
    return len(text)


def _slice_matches(text: str, value: dict[str, Any]) -> bool:
    start, end = value.get("start"), value.get("end")
    return (
        isinstance(start, int)
        and isinstance(end, int)
        and text[start:end] == value.get("text", text[start:end])
    )


def _is_min_spans(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, dict) and "start" in v and "end" in v for v in value)
    )


def _parse_min(task: dict[str, Any], line: int, log: Log) -> Annotated:
    """JSON_MIN: the text, span lists (any key) and choices (a string or {"choices": [...]})."""
    span_lists = [v for v in task.values() if _is_min_spans(v)]
    text = task.get("text")
    if not isinstance(text, str):
        strings = [v for k, v in task.items() if isinstance(v, str) and k not in MIN_META_KEYS]
        text = max(strings, key=len) if strings else None
    if not isinstance(text, str):
        raise DataError(line, "JSON_MIN task has no text", "export with the text field included")
    item = Annotated(text=text, line=line)
    for spans in span_lists:
        for span in spans:
            labels = span.get("labels") or [span.get("label")]
            start, end = _offsets(text, span, line, log)
            item.spans = (item.spans or []) + [(start, end, label) for label in labels]
    for key, value in task.items():
        if key in MIN_META_KEYS or value is text:
            continue
        if isinstance(value, str):
            item.cats[value] = 1.0
        elif isinstance(value, dict) and isinstance(value.get("choices"), list):
            item.cats.update({str(c): 1.0 for c in value["choices"]})
    return item
