"""Readers for JSON records with character offsets: spaCy, Prodigy and doccano JSONL, cats JSONL.

    spaCy:       {"text": "Who is Shaka Khan?", "entities": [[7, 17, "PERSON"]]}
    Prodigy:     {"text": "Old Navy", "spans": [{"start": 0, "end": 8, "label": "BRAND"}],
                  "answer": "accept"}
    doccano:     {"text": "EU rejects ...", "label": [[0, 2, "ORG"]]}
                 {"text": "Great.", "label": ["positive"]}
    cats JSONL:  {"text": "add please", "cats": {"DOCUMENTATION": 0.0, "OTHER": 1.0}}

Prodigy: only accepted answers give spans; a binary label gives 1.0 (accept) or 0.0 (reject);
`ignore` answers are dropped; several answers for one _input_hash merge into one document.
Every span is kept in doc.spans["sc"], overlapping ones too (doccano allows them); doc.ents gets
those that do not overlap, and the longest where spans overlap.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Iterable, Iterator, Literal

from spacy.tokens import Doc

from .spans import (
    STRUCTURE_ERRORS,
    DataError,
    Log,
    NumberedLines,
    RawSpan,
    ReadOptions,
    set_entities,
    shorten,
    structure_error,
)


@dataclass
class Annotated:
    """One text with its annotations: spans None means no NER annotation (missing, not O)."""

    text: str
    line: int
    spans: list[RawSpan] | None = None
    cats: dict[str, float] = field(default_factory=dict)
    # Binary NER answers (Prodigy ner.teach): tokens outside the spans stay missing.
    partial: bool = False


def make_doc(item: Annotated, *, options: ReadOptions, log: Log) -> Doc:
    doc = options.tokenizer(item.text)
    if item.spans is not None:
        default: Literal["outside", "missing"] = "missing" if item.partial else "outside"
        set_entities(
            doc, item.spans, policy=options.misaligned, log=log, line=item.line, default=default
        )
    if item.cats:
        doc.cats = dict(item.cats)
    return doc


def load_json(text: str, line: int) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(
            line,
            f"invalid JSON ({error.msg} at column {error.colno})",
            "fix the line: each line must be one JSON object",
        ) from None


def iter_json_array(lines: NumberedLines) -> Iterator[tuple[int, Any]]:
    """The elements of a JSON array (or a single JSON object) with the line each starts on."""
    numbered = iter(lines)
    first = next(numbered, None)
    if first is None:
        return
    base, head = first
    text = "\n".join([head, *(t for _, t in numbered)])
    decoder = json.JSONDecoder()
    position, line = 0, base

    def skip(pos: int) -> int:
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        return pos

    def decode(pos: int) -> tuple[Any, int]:
        try:
            return decoder.raw_decode(text, pos)
        except json.JSONDecodeError as error:
            raise DataError(
                base + text.count("\n", 0, error.pos),
                f"invalid JSON ({error.msg})",
                "fix the file or export it again",
            ) from None

    position = skip(0)
    if text.startswith("{", position):
        value, _ = decode(position)
        yield base + text.count("\n", 0, position), value
        return
    if not text.startswith("[", position):
        raise DataError(base, "not a JSON array or object", "check --format")
    position = skip(position + 1)
    counted = 0
    while position < len(text) and text[position] != "]":
        line += text.count("\n", counted, position)
        counted = position
        value, position = decode(position)
        yield line, value
        position = skip(position)
        if text.startswith(",", position):
            position = skip(position + 1)
        elif not text.startswith("]", position):
            raise DataError(
                base + text.count("\n", 0, position),
                "invalid JSON (expected ',' or ']' between elements)",
                "fix the file or export it again",
            )


class RecordParser:
    """Reads one record of any known shape; remembers whether the file is NER or classification
    (doccano writes `"label": []` for both)."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self.kind: str | None = None

    def parse(self, record: Any, line: int) -> Annotated | None:
        if not isinstance(record, dict):
            raise DataError(
                line,
                f"expected a JSON object, found {type(record).__name__}",
                'write one object per line with a "text" field',
            )
        text = record_text(record, line)
        answer = record.get("answer")
        if answer == "ignore":
            self.log.drop("Prodigy answer 'ignore'", line, text)
            return None
        item = Annotated(text=text, line=line, cats=self._cats(record, answer, line))
        if item.cats:
            self.kind = self.kind or "textcat"
        spans = self._spans(record, line)
        if spans is not None and (spans or not item.cats):
            item.partial = record.get("_view_id") == "ner"
            if answer == "reject":
                if not item.cats:
                    self.log.drop(
                        "Prodigy answer 'reject' on spans (cannot be full annotation)", line, text
                    )
                    return None
            else:
                item.spans = spans
                self.kind = self.kind or ("ner" if spans else None)
        if item.spans is None and not item.cats:
            if _has_empty_label(record) and self.kind == "textcat":
                self.log.drop("record has no label", line, text)
                return None
            if _has_empty_label(record):
                item.spans = []
            elif not any(key in record for key in ("spans", "entities", "cats", "accept")):
                raise DataError(
                    line,
                    "record has no annotation (spans, entities, label, cats)",
                    "add annotations, or check --format",
                )
        if not text:
            self.log.drop("empty text", line, "")
            return None
        return item

    def _cats(self, record: dict[str, Any], answer: object, line: int) -> dict[str, float]:
        cats = record.get("cats")
        if isinstance(cats, dict):
            return {str(k): _category_value(v, k, line) for k, v in cats.items()}
        label = record.get("label", record.get("labels"))
        if isinstance(label, str) and label:
            if answer is None:
                return {label: 1.0}
            return {label: 1.0 if answer == "accept" else 0.0}
        if isinstance(label, list) and label and all(isinstance(x, str) for x in label):
            return {x: 1.0 for x in label}
        options = record.get("options")
        if isinstance(record.get("accept"), list) and isinstance(options, list):
            if answer == "reject":
                self.log.drop(
                    "Prodigy answer 'reject' on a choice", line, record_text(record, line)
                )
                return {}
            chosen = {str(x) for x in record["accept"]}
            ids = [str(o.get("id")) if isinstance(o, dict) else str(o) for o in options]
            return {label: 1.0 if label in chosen else 0.0 for label in ids}
        return {}

    def _spans(self, record: dict[str, Any], line: int) -> list[RawSpan] | None:
        for key in ("spans", "entities", "label", "labels"):
            value = record.get(key)
            if isinstance(value, list) and value and not all(isinstance(x, str) for x in value):
                return [span_tuple(item, line) for item in value]
            if key in ("spans", "entities") and value == []:
                return []
        return None


def record_text(record: dict[str, Any], line: int) -> str:
    for key in ("text", "data"):
        if isinstance(record.get(key), str):
            return record[key]
    raise DataError(line, 'record has no "text" string', 'give every record a "text" field')


def span_tuple(item: Any, line: int) -> RawSpan:
    """[start, end, label] or {"start"|"start_offset", "end"|"end_offset", "label"}."""
    if isinstance(item, (list, tuple)) and len(item) >= 3:
        return item[0], item[1], item[2]
    if isinstance(item, dict):
        start = item.get("start", item.get("start_offset"))
        end = item.get("end", item.get("end_offset"))
        label = item.get("label")
        if label is None and isinstance(item.get("labels"), list) and item["labels"]:
            label = item["labels"][0]
        return start, end, label
    raise DataError(
        line,
        f"span {shorten(json.dumps(item))} is not [start, end, label] "
        "or an object with start, end, label",
        "fix the span",
    )


def _category_value(value: object, label: object, line: int) -> float:
    if isinstance(value, (bool, int, float)) and 0.0 <= float(value) <= 1.0:
        return float(value)
    raise DataError(
        line,
        f"category {label!r} has value {value!r}",
        "category values are numbers from 0.0 to 1.0",
    )


def _has_empty_label(record: dict[str, Any]) -> bool:
    return any(record.get(key) == [] for key in ("label", "labels"))


def read_jsonl(lines: NumberedLines, *, options: ReadOptions, log: Log) -> Iterator[Doc]:
    """One JSON record per line (spaCy, Prodigy, doccano, cats JSONL; the shape of each record)."""
    loaders = ((line, partial(load_json, text, line)) for line, text in lines if text.strip())
    yield from read_records(loaders, options=options, log=log)


def read_json_records(lines: NumberedLines, *, options: ReadOptions, log: Log) -> Iterator[Doc]:
    """A JSON array of records in any of the JSONL shapes."""
    loaders = ((line, partial(_same, record)) for line, record in iter_json_array(lines))
    yield from read_records(loaders, options=options, log=log)


def _same(record: object) -> object:
    return record


def read_records(
    loaders: Iterable[tuple[int, Callable[[], object]]], *, options: ReadOptions, log: Log
) -> Iterator[Doc]:
    """Docs from (line, load record) pairs; a record that fails to load or parse is one error of
    its line."""
    parser = RecordParser(log)
    merged: dict[object, Annotated] = {}
    for line, load in loaders:
        try:
            record = load()
            item = parser.parse(record, line)
            if item is None:
                continue
            if isinstance(record, dict) and "answer" in record and "_input_hash" in record:
                merge_answer(merged, str(record["_input_hash"]), item, log)
                continue
            yield make_doc(item, options=options, log=log)
        except DataError as error:
            log.skip(error)
        except STRUCTURE_ERRORS as error:
            log.skip(structure_error(line, error))
    yield from make_docs(merged.values(), options, log)


def merge_answer(merged: dict[object, Annotated], key: object, item: Annotated, log: Log) -> None:
    """Several Prodigy answers for one input: spans and categories are combined, the later wins."""
    first = merged.get(key)
    if first is None:
        merged[key] = item
        return
    log.record("merged", "Prodigy answers for the same _input_hash merged", item.line, item.text)
    if item.spans is not None:
        first.spans = (first.spans or []) + item.spans
    for label, value in item.cats.items():
        if label in first.cats and first.cats[label] != value:
            log.repair(
                "conflicting answers for one label: the later kept",
                item.line,
                f"{label}: {item.text}",
            )
        first.cats[label] = value


def make_docs(items: Iterable[Annotated], options: ReadOptions, log: Log) -> Iterator[Doc]:
    """A Doc per parsed item; an item that cannot become one is a skipped error of its line."""
    for item in items:
        try:
            yield make_doc(item, options=options, log=log)
        except DataError as error:
            log.skip(error)
        except STRUCTURE_ERRORS as error:
            log.skip(structure_error(item.line, error))
