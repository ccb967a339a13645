"""The readers, by name (their keys make the --format help), and auto-detection.

name, reason = detect_format(Path("train.tsv"), ["-DOCSTART- -X- O O", "EU\tB-ORG"])
docs = READERS[name].read([(1, "EU\tB-ORG"), (2, "rejects\tO")], options=ReadOptions(), log=Log())
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from spacy.tokens import Doc

from .iob import DOCSTART, read_conll, read_iob
from .labelstudio import read_labelstudio
from .records import read_json_records, read_jsonl
from .spacy_formats import read_docbin, read_spacy_json, read_train_data
from .spans import DataError, Log, ReadOptions
from .tables import read_csv, read_fasttext, read_text_label, read_tsv

__all__ = ["READERS", "NO_TEXT", "Reader", "DataError", "Log", "ReadOptions", "detect_format"]


@dataclass(frozen=True)
class Reader:
    read: Callable[..., Iterator[Doc]]
    help: str
    binary: bool = False  # reads the file's bytes instead of numbered lines


READERS: dict[str, Reader] = {
    "conll": Reader(
        read_conll,
        "token per line: TOKEN, other columns, TAG; IOB1/IOB2/BIOES/BILUO/BMES, -DOCSTART-, "
        "blank-line sentences",
    ),
    "iob": Reader(read_iob, "sentence per line: word|TAG or word|POS|TAG"),
    "jsonl": Reader(
        read_jsonl,
        "JSON lines with character offsets or categories: spaCy, Prodigy, doccano, cats JSONL",
    ),
    "json": Reader(read_json_records, "a JSON array of records shaped like the jsonl ones"),
    "labelstudio": Reader(
        read_labelstudio, "Label Studio JSON export (full or JSON_MIN): spans and choices"
    ),
    "spacy-json": Reader(read_spacy_json, "spaCy v2 JSON training format (BILUO ner)"),
    "train-data": Reader(
        read_train_data,
        'spaCy v2 TRAIN_DATA: pairs of text and {"entities": (start, end, label) lists, "cats"}',
    ),
    "spacy": Reader(read_docbin, ".spacy DocBin, passed through", binary=True),
    "csv": Reader(read_csv, "comma-separated text and label columns (header optional)"),
    "tsv": Reader(read_tsv, "tab-separated text and label columns (header optional)"),
    "text-label": Reader(read_text_label, "`text;label` lines"),
    "fasttext": Reader(read_fasttext, "fastText `__label__a text` lines"),
}

_TAG = re.compile(r"O|[BIMESLU]-\S+")
_SPLIT = re.compile(r"[ \t]+")
_MAJORITY = 0.8
NO_TEXT = "no text: the file is empty or holds only blank lines"


def detect_format(path: Path, head_lines: list[str]) -> tuple[str | None, str]:
    """The reader for a file from its name and first lines, and why; None when no reader fits."""
    if path.suffix == ".spacy":
        return "spacy", "the .spacy suffix"
    lines = [line for line in head_lines if line.strip()]
    if not lines:
        return None, NO_TEXT
    start = lines[0].lstrip()
    if start.startswith("{"):
        return _detect_jsonl(lines)
    if start.startswith("["):
        return _detect_json_array("\n".join(lines))
    if _share(lines, lambda line: line.startswith("__label__")) >= _MAJORITY:
        return "fasttext", "lines start with __label__"
    if _token_lines(lines):
        return "conll", "token-per-line: a token and a tag (O, B-X, ...) per line"
    if _share(lines, _word_tag_line) >= _MAJORITY:
        return "iob", "sentence-per-line: word|TAG items"
    if _share(lines, _text_label_line) >= _MAJORITY:
        return "text-label", "`text;label` lines"
    return _detect_table(lines)


def _detect_jsonl(lines: list[str]) -> tuple[str | None, str]:
    try:
        record = json.loads(lines[0])
    except json.JSONDecodeError:
        return _detect_json_array("\n".join(lines))
    if isinstance(record, dict) and "pattern" in record and "text" not in record:
        return None, 'a spaCy/Prodigy patterns file ("pattern", no "text"), not annotations'
    keys = ", ".join(sorted(record)[:6]) if isinstance(record, dict) else ""
    return "jsonl", f"one JSON object per line (keys: {keys})"


def _detect_json_array(text: str) -> tuple[str | None, str]:
    if re.match(r"\s*\[\s*\[\s*\"", text):
        return "train-data", "a JSON array of [text, annotations] pairs"
    if '"paragraphs"' in text:
        return "spacy-json", 'a JSON array of documents with "paragraphs"'
    if re.search(r'"(annotations|completions|result|choices|labels)"\s*:', text):
        return (
            "labelstudio",
            "a JSON array of tasks with Label Studio keys (annotations/result/labels/choices)",
        )
    if re.match(r"\s*[\[{]", text):
        return "json", "a JSON array of records"
    return None, "JSON of an unknown shape"


def _token_fields(line: str) -> list[str] | None:
    """The fields of a line shaped like a token line (a word without spaces and a few columns)."""
    text = line.strip()
    fields = [f.strip() for f in text.split("\t")] if "\t" in text else _SPLIT.split(text)
    return fields if 1 <= len(fields) <= 12 and " " not in fields[0] else None


def _token_lines(lines: list[str]) -> bool:
    """Token-per-line: nearly all lines shaped like token lines, most of them with a tag."""
    content = [line for line in lines if not line.strip().startswith((DOCSTART, "#"))]
    shaped = [fields for fields in map(_token_fields, content) if fields]
    tagged = [
        fields
        for fields in shaped
        if len(fields) >= 2 and any(_TAG.fullmatch(f) for f in fields[1:])
    ]
    return (
        bool(content)
        and len(shaped) >= _MAJORITY * len(content)
        and len(tagged) >= 0.5 * len(content)
    )


def _word_tag_line(line: str) -> bool:
    items = _SPLIT.split(line.strip())
    return len(items) >= 1 and all(
        "|" in item and _TAG.fullmatch(item.rpartition("|")[2]) for item in items
    )


def _text_label_line(line: str) -> bool:
    text, sep, label = line.rpartition(";")
    return (
        bool(sep and text.strip() and label.strip())
        and "\t" not in line
        and " " not in label.strip()
        and len(label) < 40
    )


def _share(lines: list[str], test: Callable[[str], bool]) -> float:
    return sum(map(test, lines)) / len(lines)


def _detect_table(lines: list[str]) -> tuple[str | None, str]:
    for name, delimiter in (("tsv", "\t"), ("csv", ",")):
        if sum(delimiter in line for line in lines) < _MAJORITY * len(lines):
            continue
        kind = "tab" if delimiter == "\t" else "comma"
        try:
            rows = list(csv.reader(lines, delimiter=delimiter))
        except csv.Error:  # a quote left open past csv's field limit: the reader says where
            return name, f"a {kind}-separated table whose quotes do not close"
        widths = {len(row) for row in rows[:-1] or rows}
        if len(widths) == 1 and widths.pop() >= 2:
            return name, f"a {kind}-separated table with {len(rows[0])} columns"
    return (
        None,
        "no known format: not JSON, token/tag lines, word|TAG, text;label, fastText "
        "or a table of text and labels",
    )
