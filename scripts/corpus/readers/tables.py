"""Readers for text classification tables: CSV, TSV, `text;label` lines and fastText.

    text,label / "Great, really",positive       (CSV with a header, quoted fields, "" inside quotes)
    My favourite food is anything\t27\teebbqej   (TSV without header: numeric classes, an id column)
    i didnt feel humiliated;sadness              (text;label)
    __label__pos __label__fun Great movie        (fastText)

Label cells may hold several labels: `3,27` (indices into --labels-file), `a#b`, `["a", "b"]`.
Without a header the columns are inferred from the first rows: the label column has integer lists or
the fewest distinct short values, a column of distinct single words is an id (ignored), the rest is
text (several text columns are joined with a newline). A row equal to the header (two exports joined
into one file) is left out with a warning; with --strict it is an error. `text;label` files may
start with a header line too.
"""

from __future__ import annotations

import ast
import csv
import re
from dataclasses import dataclass
from typing import Iterator

from spacy.tokens import Doc

from .records import Annotated, make_doc
from .spans import DataError, Log, NumberedLines, ReadOptions

TEXT_NAMES = frozenset(
    "text sentence content review comment document title description body message tweet "
    "utterance query question abstract headline post".split()
)
LABEL_NAMES = frozenset(
    "label labels class classes class_index category categories sentiment emotion emotions "
    "target intent tag tags topic cats polarity".split()
)
SAMPLE_ROWS = 200
REPEATED_HEADER = "row repeats the header, as when two exports are joined into one file"
_IDS = re.compile(r"\d+(\s*,\s*\d+)*")


@dataclass
class Columns:
    header: bool
    text: list[int]
    label: int
    names: list[str]

    def describe(self) -> str:
        name = (lambda i: repr(self.names[i])) if self.header else (lambda i: f"column {i + 1}")
        ignored = [
            name(i) for i in range(len(self.names)) if i not in self.text and i != self.label
        ]
        used = f"text from {', '.join(name(i) for i in self.text)}, labels from {name(self.label)}"
        return f"{'header' if self.header else 'no header'}: {used}" + (
            f"; ignored {', '.join(ignored)}" if ignored else ""
        )


class _Lines:
    """Feeds numbered lines to csv.reader and remembers where each row started."""

    def __init__(self, lines: NumberedLines) -> None:
        self.lines = iter(lines)
        self.first: int | None = None
        self.last = 0

    def __iter__(self) -> "_Lines":
        return self

    def __next__(self) -> str:
        line, text = next(self.lines)
        self.first = line if self.first is None else self.first
        self.last = line
        return text + "\n"


def read_csv(lines: NumberedLines, *, options: ReadOptions, log: Log) -> Iterator[Doc]:
    """Comma-separated table with a text and a label column."""
    yield from _read_table(lines, ",", options, log)


def read_tsv(lines: NumberedLines, *, options: ReadOptions, log: Log) -> Iterator[Doc]:
    """Tab-separated table with a text and a label column."""
    yield from _read_table(lines, "\t", options, log)


def _rows(lines: NumberedLines, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    source = _Lines(lines)
    reader = csv.reader(source, delimiter=delimiter)
    while True:
        source.first = None
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise DataError(
                source.first or source.last,
                f"unreadable row ({error})",
                "quote fields that contain the delimiter or line breaks, "
                "and double quotes inside quotes",
            ) from None
        if any(cell.strip() for cell in row):
            yield source.first or source.last, row


def _read_table(
    lines: NumberedLines, delimiter: str, options: ReadOptions, log: Log
) -> Iterator[Doc]:
    rows = _rows(lines, delimiter)
    sample = [row for _, row in zip(range(SAMPLE_ROWS), rows)]
    if not sample:
        return
    columns = infer_columns([row for _, row in sample], sample[0][0])
    labels = LabelMapper(
        options.labels,
        [row[columns.label] for _, row in sample[columns.header :] if len(row) > columns.label],
    )
    kind = "tab" if delimiter == "\t" else "comma"
    log.note(f"table ({kind}-separated), {columns.describe()}; {labels.describe()}")
    width = len(columns.names)
    header = header_key(columns.names) if columns.header else None
    for line, row in [*sample[columns.header :], *rows]:
        try:
            if header is not None and header_key(row) == header:
                log.warn(
                    DataError(line, REPEATED_HEADER, "delete the repeated header row"),
                    delimiter.join(row).replace("\ufeff", ""),
                    outcome="not read as a document",
                )
                continue
            if len(row) != width:
                raise DataError(
                    line,
                    f"row has {len(row)} fields, expected {width}",
                    'quote fields that contain the delimiter or line breaks ("...") '
                    "and double the quotes inside",
                )
            text = "\n".join(row[i].strip() for i in columns.text if row[i].strip())
            item = _item(text, labels.cats(row[columns.label], line), line, log)
            if item is not None:
                yield make_doc(item, options=options, log=log)
        except DataError as error:
            log.skip(error)


def header_key(row: list[str]) -> tuple[str, ...]:
    """A row as a header compares: cells without case, surrounding space and a byte-order mark
    (the second export's, when files are joined byte for byte)."""
    return tuple(cell.replace("\ufeff", "").strip().lower() for cell in row)


def _item(text: str, cats: dict[str, float], line: int, log: Log) -> Annotated | None:
    if not text:
        log.drop("row without text", line, str(cats))
        return None
    if not cats:
        log.drop("row without a label", line, text)
        return None
    return Annotated(text=text, line=line, cats=cats)


def infer_columns(rows: list[list[str]], line: int) -> Columns:
    first = [cell.strip().lower() for cell in rows[0]]
    header = any(cell in TEXT_NAMES | LABEL_NAMES for cell in first)
    body = rows[1:] if header else rows
    width = len(rows[0])
    if header:
        label = next((i for i, cell in enumerate(first) if cell in LABEL_NAMES), None)
        text = [i for i, cell in enumerate(first) if cell in TEXT_NAMES]
        if label is None and len(text) == width - 1 == 1:
            label = next(i for i in range(width) if i not in text)
        if label is None:
            raise DataError(
                line,
                f"no label column in header {rows[0]}",
                "name the label column `label` (or class, category, sentiment, ...)",
            )
        if not text:
            others = [i for i in range(width) if i != label]
            text = [i for i in others if not _is_id(_column(body, i))] or others
        return Columns(True, text, label, rows[0])
    if width < 2:
        raise DataError(
            line,
            "a table needs a text and a label column; found one column",
            "add a label column, or check --format",
        )
    values = [_column(body, i) for i in range(width)]
    label = min(
        range(width),
        key=lambda i: (
            not _is_ids(values[i]),
            _is_id(values[i]),
            len(set(values[i])),
            _mean_length(values[i]),
        ),
    )
    others = [i for i in range(width) if i != label]
    text = [
        i for i in others if not _is_id(values[i])
    ] or others  # single words that are all distinct: ids
    return Columns(False, text, label, [f"column {i + 1}" for i in range(width)])


def _column(rows: list[list[str]], index: int) -> list[str]:
    return [row[index].strip() for row in rows if len(row) > index]


def _is_ids(values: list[str]) -> bool:
    return bool(values) and all(_IDS.fullmatch(v) for v in values)


def _is_id(values: list[str]) -> bool:
    """A column of distinct single words that are not class ids (e.g. comment ids)."""
    return (
        len(values) > 1
        and len(set(values)) == len(values)
        and not _is_ids(values)
        and all(v and not any(c.isspace() for c in v) for v in values)
    )


def _mean_length(values: list[str]) -> float:
    return sum(map(len, values)) / max(1, len(values))


class LabelMapper:
    """Label cells -> categories: names, several labels per cell, numeric classes, a labels file."""

    def __init__(self, names: tuple[str, ...] | None, sample: list[str]) -> None:
        self.names = names
        ids = {
            int(i)
            for cell in sample
            if _IDS.fullmatch(cell.strip())
            for i in re.split(r"\s*,\s*", cell.strip())
        }
        self.base = 1 if names and 0 not in ids and len(names) in ids else 0

    def describe(self) -> str:
        if not self.names:
            return "labels as written"
        return (
            f"numeric classes counted from {self.base} "
            f"into the {len(self.names)} names of --labels-file"
        )

    def cats(self, cell: str, line: int) -> dict[str, float]:
        return {label: 1.0 for label in self.labels(cell.strip(), line)}

    def labels(self, cell: str, line: int) -> list[str]:
        if not cell:
            return []
        if _IDS.fullmatch(cell) and (self.names or "," in cell):
            return [self._name(int(i), line) for i in re.split(r"\s*,\s*", cell)]
        if cell.startswith("[") and cell.endswith("]"):
            try:
                parsed = ast.literal_eval(cell)
            except (ValueError, SyntaxError):
                parsed = None
            if isinstance(parsed, list):
                return [str(x).strip() for x in parsed if str(x).strip()]
        return [part.strip() for part in cell.split("#") if part.strip()]

    def _name(self, number: int, line: int) -> str:
        if not self.names:
            return str(number)
        index = number - self.base
        if not 0 <= index < len(self.names):
            raise DataError(
                line,
                f"class {number} is outside the {len(self.names)} names of --labels-file "
                f"(counted from {self.base})",
                "check the labels file or the class column",
            )
        return self.names[index]


def read_text_label(lines: NumberedLines, *, options: ReadOptions, log: Log) -> Iterator[Doc]:
    """`text;label` lines: the label follows the last semicolon. A first line of column names
    (`text;label`, as Excel writes a semicolon CSV) is a header; a later copy of it, a warning."""
    header: tuple[str, ...] | None = None
    first = True
    for line, raw in lines:
        if not raw.strip():
            continue
        try:
            text, sep, label = raw.rpartition(";")
            key = header_key([text, label])
            if first and key[0] in TEXT_NAMES and key[1] in LABEL_NAMES:
                header, first = key, False
                log.note(f"line {line} ({raw.strip()}) is a header: not read as a document")
                continue
            first = False
            if key == header:
                log.warn(
                    DataError(line, REPEATED_HEADER, "delete the repeated header row"),
                    raw.replace("\ufeff", ""),
                    outcome="not read as a document",
                )
                continue
            if not sep or not label.strip():
                raise DataError(line, "no label after a ';'", "write one `text;label` per line")
            item = _item(
                text.strip(),
                {part.strip(): 1.0 for part in label.split("#") if part.strip()},
                line,
                log,
            )
            if item is not None:
                yield make_doc(item, options=options, log=log)
        except DataError as error:
            log.skip(error)


def read_fasttext(lines: NumberedLines, *, options: ReadOptions, log: Log) -> Iterator[Doc]:
    """fastText lines: `__label__a __label__b text`."""
    for line, raw in lines:
        if not raw.strip():
            continue
        try:
            words = raw.split(" ")
            labels = [w[len("__label__") :] for w in words if w.startswith("__label__")]
            text = " ".join(w for w in words if not w.startswith("__label__")).strip()
            if not labels:
                raise DataError(
                    line, "no __label__ on the line", "start each line with __label__NAME"
                )
            item = _item(text, {label: 1.0 for label in labels if label}, line, log)
            if item is not None:
                yield make_doc(item, options=options, log=log)
        except DataError as error:
            log.skip(error)
