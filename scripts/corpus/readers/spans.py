"""What every reader shares: options, the error type, the log of repairs and drops, and the span
alignment policies (trim whitespace; expand | contract | drop spans that cut into a word). Every
span a file holds is kept in doc.spans[SPAN_KEY]; doc.ents gets those that do not overlap, and the
longest where spans overlap. Every repair, drop or overlap is recorded with file, line and text.

    spans = align_spans(doc, [(0, 14, "PERSON")], policy="expand", log=log, line=3)
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Iterable, Iterator, Literal

from spacy.tokens import Doc, Span
from spacy.vocab import Vocab

Misaligned = Literal["expand", "contract", "drop"]
MISALIGNED_POLICIES: tuple[str, ...] = ("expand", "contract", "drop")
NumberedLines = Iterable[tuple[int, str]]
RawSpan = tuple[object, object, object]  # start, end, label as the file gave them, not yet checked
MAX_EXAMPLES = 3
# Where every annotated span is kept, overlapping ones too: spaCy's span categorizer reads this key.
SPAN_KEY = "sc"
OVERLAP_REASON = f"overlapping span in doc.spans[{SPAN_KEY!r}] only (the longest is the entity)"


class DataError(Exception):
    """A malformed line or record: what is wrong there and how to fix it."""

    def __init__(self, line: int, what: str, fix: str, *, group: str | None = None) -> None:
        super().__init__(f"{line}: {what}; {fix}")
        self.line = line
        self.what = what
        self.fix = fix
        self.group = group  # the reason --lenient counts it under, when `what` names details

    def format(self, file: str) -> str:
        return f"{file}:{self.line}: {self.what}; {self.fix}"


STRUCTURE_ERRORS = (
    AttributeError,
    TypeError,
    ValueError,
    KeyError,
    IndexError,
)  # a JSON value of an unexpected type


def structure_error(line: int, error: Exception) -> DataError:
    """A record whose values have unexpected types (a string where a list belongs, ...)."""
    return DataError(
        line,
        f"unexpected structure ({error.__class__.__name__}: {shorten(str(error), 60)})",
        "check --format, or export the file again",
    )


@dataclass(frozen=True)
class ReadOptions:
    """The knobs readers share (the command's --lang, --tag-column, --token-column, ...)."""

    lang: str = "en"
    tag_column: int = -1  # 1-based; negative counts from the end (-1 = last)
    token_column: int = 1
    labels: tuple[str, ...] | None = None  # class names for numeric classes (--labels-file)
    labels_path: Path | None = None  # where they came from (left out when a folder is read)
    misaligned: Misaligned = "expand"
    encoding: str | None = None  # --encoding: files without a byte-order mark (None: UTF-8)

    @property
    def vocab(self) -> Vocab:
        return vocab_for(self.lang)

    @property
    def tokenizer(self) -> Callable[[str], Doc]:
        return tokenizer_for(self.lang)


@functools.lru_cache(maxsize=None)
def vocab_for(lang: str) -> Vocab:
    from spacy.util import get_lang_class
    from spacy.vocab import create_vocab

    return create_vocab(lang, get_lang_class(lang).Defaults)


@functools.lru_cache(maxsize=None)
def tokenizer_for(lang: str) -> Callable[[str], Doc]:
    """The tokenizer spacy.blank(lang) would build, without instantiating Language: that loads
    every installed pipeline plugin (spacy-transformers, torch: seconds and hundreds of MB)."""
    from spacy.util import get_lang_class, registry

    cls = get_lang_class(lang)
    factory = registry.resolve({"tokenizer": cls.default_config["nlp"]["tokenizer"]})["tokenizer"]
    return factory(SimpleNamespace(vocab=vocab_for(lang), Defaults=cls.Defaults, lang=lang))


@dataclass
class Event:
    kind: str  # repaired | dropped | skipped | kept | warning | suspect | merged | segmented
    reason: str
    count: int
    examples: list[str]


class Log:
    """Counts repairs, drops, skipped lines and notes per reason, keeping the first examples.

    The command sets `file` before reading each source; `lenient` turns DataErrors into skips,
    `strict` turns warnings into DataErrors."""

    def __init__(
        self, *, file: str = "<input>", lenient: bool = False, strict: bool = False
    ) -> None:
        self.file = file
        self.lenient = lenient
        self.strict = strict
        self.events: dict[tuple[str, str], Event] = {}
        self.notes: list[str] = []
        self.counts: Counter[str] = Counter()

    def record(self, kind: str, reason: str, line: int, text: str) -> None:
        event = self.events.setdefault((kind, reason), Event(kind, reason, 0, []))
        event.count += 1
        if len(event.examples) < MAX_EXAMPLES:
            event.examples.append(f"{self.file}:{line}: {shorten(text)}")

    def repair(self, reason: str, line: int, text: str) -> None:
        self.record("repaired", reason, line, text)

    def drop(self, reason: str, line: int, text: str) -> None:
        self.record("dropped", reason, line, text)

    def skip(self, error: DataError) -> None:
        """A malformed line: an error, or with --lenient skipped and counted."""
        if not self.lenient:
            raise error
        if error.group is None:
            self.record("skipped", error.what, error.line, error.fix)
        else:
            self.record("skipped", error.group, error.line, error.what)

    def warn(self, error: DataError, text: str, *, outcome: str) -> None:
        """A suspicious line: a warning saying what was done with it, or with --strict an error."""
        if self.strict:
            raise error
        self.record("warning", f"{error.what} ({outcome})", error.line, text)

    def note(self, message: str) -> None:
        self.notes.append(f"{self.file}: {message}")

    def total(self, kind: str) -> int:
        return sum(e.count for e in self.events.values() if e.kind == kind)


def shorten(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def set_entities(
    doc: Doc,
    spans: Iterable[RawSpan],
    *,
    policy: Misaligned,
    log: Log,
    line: int,
    default: Literal["outside", "missing"] = "outside",
) -> Doc:
    """Character spans -> doc.spans[SPAN_KEY], all of them, and doc.ents, those that do not overlap
    (the longest where they do; every other token O), after the alignment policies."""
    aligned = align_spans(doc, spans, policy=policy, log=log, line=line)
    doc.spans[SPAN_KEY] = aligned
    doc.set_ents(keep_longest(aligned, log=log, line=line), default=default)
    return doc


def align_spans(
    doc: Doc,
    spans: Iterable[RawSpan],
    *,
    policy: Misaligned,
    log: Log,
    line: int,
) -> list[Span]:
    """Character spans -> token Spans, in text order, exact duplicates once (and reported).
    DataError for a span beyond the text."""
    unique: dict[tuple[int, int, str], Span] = {}
    for span in _align_each(doc, spans, policy, log, line):
        if span is None:
            continue
        key = (span.start, span.end, span.label_)
        if key in unique:
            log.drop("duplicate span", line, f"{span.text!r} ({span.label_})")
            continue
        unique[key] = span
    return sorted(unique.values(), key=lambda s: (s.start, s.end))


def _align_each(
    doc: Doc, spans: Iterable[RawSpan], policy: Misaligned, log: Log, line: int
) -> Iterator[Span | None]:
    text = doc.text
    for raw in spans:
        start, end, label = check_span(*raw, len(text), line)
        quoted = f"{text[start:end]!r} ({label})"
        trimmed_start, trimmed_end = trim_whitespace(text, start, end)
        if trimmed_start >= trimmed_end:
            log.drop("span holds only whitespace", line, quoted)
            yield None
            continue
        if (trimmed_start, trimmed_end) != (start, end):
            log.repair("span trimmed of surrounding whitespace", line, quoted)
        yield _fit_to_tokens(doc, trimmed_start, trimmed_end, label, policy, log, line)


def check_span(
    start: object, end: object, label: object, length: int, line: int
) -> tuple[int, int, str]:
    """The span, once its offsets are integers within the text and its label is a string."""
    if not (isinstance(start, int) and isinstance(end, int)) or isinstance(start, bool):
        raise DataError(
            line,
            f"span offsets {start!r}, {end!r} are not integers",
            "write spans as [start, end, label] with character offsets",
        )
    if not isinstance(label, str) or not label.strip():
        raise DataError(
            line, f"span [{start}, {end}) has no label ({label!r})", "give every span a label"
        )
    if not 0 <= start < end <= length:
        raise DataError(
            line,
            f"span [{start}, {end}) {label} is beyond the text (length {length}) or empty",
            "offsets are character positions into the text, end exclusive",
        )
    return start, end, label


def trim_whitespace(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _fit_to_tokens(
    doc: Doc, start: int, end: int, label: str, policy: Misaligned, log: Log, line: int
) -> Span | None:
    span = doc.char_span(start, end, label=label)
    if span is not None:
        return span
    quoted = f"{doc.text[start:end]!r} ({label})"
    if policy != "drop":
        fitted = doc.char_span(start, end, label=label, alignment_mode=policy)
        if fitted is not None and len(fitted) > 0:
            log.repair(
                f"span cuts into a word: {policy}ed to token boundaries",
                line,
                f"{quoted} -> {fitted.text!r}",
            )
            return fitted
    log.drop(f"span cuts into a word ({'--misaligned ' + policy})", line, quoted)
    return None


def keep_longest(spans: list[Span], *, log: Log, line: int) -> list[Span]:
    """The entities among spans: the longest of overlapping spans (the earliest on ties); the
    others stay in doc.spans only, and are reported."""
    kept: list[Span] = []
    taken: set[int] = set()
    for span in sorted(spans, key=lambda s: (-(s.end - s.start), s.start)):
        tokens = set(range(span.start, span.end))
        if tokens & taken:
            winner = next(k for k in kept if k.start < span.end and span.start < k.end)
            log.record(
                "kept",
                OVERLAP_REASON,
                line,
                f"{span.text!r} ({span.label_}) vs {winner.text!r} ({winner.label_})",
            )
            continue
        kept.append(span)
        taken |= tokens
    return sorted(kept, key=lambda s: s.start)
