"""Readers for tagged tokens: token-per-line (CoNLL/TSV) and sentence-per-line (word|TAG).

    read_conll([(1, "-DOCSTART- -X- O O"), (2, "EU\tB-ORG")], options=ReadOptions(), log=Log())
    read_iob([(1, "EU|B-ORG rejects|O German|B-MISC")], options=..., log=...)

Any tag scheme is decoded by one pass (IOB1, IOB2, BIOES/BILUO, BMES): B-/S-/U- start an entity,
I-/M-/E-/L- continue the entity of the same label and start one otherwise, E-/L-/S-/U- close it.
spaCy's iob_to_biluo knows IOB only and pops from the front of a list (quadratic on long documents).
"""

from __future__ import annotations

import re
from typing import Iterator

import numpy
from spacy.attrs import ENT_IOB, ENT_TYPE, SENT_START
from spacy.tokens import Doc, Token

from scripts.corpus.segment import (
    MAX_DOC_TOKENS,
    MAX_SENTENCE_TOKENS,
    SENTENCES_PER_DOC,
    cut_points,
)

from .spans import DataError, Log, NumberedLines, ReadOptions

NO_SPACE_LANGS = frozenset({"zh", "ja", "th"})  # character-level text is joined without spaces
DOCSTART = "-DOCSTART-"
_DOCSTART_SPACE = DOCSTART + " "
_UNSEEN = (-1, -1)  # a width of line whose columns are not worked out yet
_PREFIXES = frozenset("BIMESLU")
_SPLIT = re.compile(r"[ \t]+")
_BLANK = " \t\r\n\f\v"
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_IOB = {prefix: Token.iob_strings().index(prefix) for prefix in ("I", "O", "B")}


class TagDecoder:
    """Turns tags of any scheme into IOB2, token by token, and remembers which prefixes it saw."""

    def __init__(self) -> None:
        self.open: str | None = None  # label of the entity the next I-/E- would continue
        self.prefixes: set[str] = set()
        self.inside_starts = 0  # I-/M- starting an entity: IOB1 (or a broken IOB2 file)
        self._parsed: dict[str, tuple[str, str, str, str]] = {}  # tag -> prefix, label, B-, I-

    def reset(self) -> None:
        """A sentence break ends any entity."""
        self.open = None

    def decode(self, tag: str, line: int) -> str:
        try:
            prefix, label, begin, inside = self._parsed[tag]
        except (KeyError, TypeError):  # a tag not seen yet, or not even a string
            prefix, label = parse_tag(tag, line)
            begin, inside = "B-" + label, "I-" + label
            self.prefixes.add(prefix)
            self._parsed[tag] = (prefix, label, begin, inside)
        if prefix == "O":
            self.open = None
            return "O"
        continues = self.open == label and prefix in "IMEL"
        if not continues and prefix in "IM":
            self.inside_starts += 1
        self.open = label if prefix in "BIM" else None
        return inside if continues else begin

    def scheme(self) -> str:
        seen = self.prefixes - {"O"}
        if not seen:
            return "no entities (all O)"
        if "M" in seen:
            return "BMES (M- middle, E- end, S- single)"
        if seen & {"E", "S"}:
            return "BIOES (E- end, S- single)"
        if seen & {"L", "U"}:
            return "BILUO (L- last, U- unit)"
        if self.inside_starts:
            return f"IOB1 (I- starts entities: {self.inside_starts} times)"
        return "IOB2 (B- starts every entity)"


def parse_tag(tag: str, line: int) -> tuple[str, str]:
    if not isinstance(tag, str):
        tag = repr(tag)
    if tag == "O":
        return "O", ""
    if len(tag) > 2 and tag[1] == "-" and tag[0] in _PREFIXES:
        return tag[0], tag[2:]
    raise DataError(
        line,
        f"tag {tag!r} is not O or B-/I-/E-/S-/L-/U-/M- followed by a label",
        "fix the tag, or pick the column that holds the tags with --tag-column N",
    )


class DocBuilder:
    """Collects sentences of (word, IOB2 tag) into Docs, cutting over-long sentences and docs."""

    def __init__(self, options: ReadOptions, log: Log) -> None:
        self.vocab = options.vocab
        self.no_spaces = options.lang in NO_SPACE_LANGS
        self.log = log
        self.words: list[str] = []
        self.tags: list[str] = []
        self.starts: list[bool] = []
        self.sentences = 0
        self.tokens = 0
        self.cjk_tokens = 0
        self._ent_values: dict[str, tuple[int, int]] = {}  # IOB2 tag -> ENT_IOB, ENT_TYPE

    def add_sentence(self, words: list[str], tags: list[str], line: int) -> Iterator[Doc]:
        """Add one sentence (cut into pieces when longer than MAX_SENTENCE_TOKENS)."""
        if not words:
            return
        cuts = cut_points(words, tags, max_tokens=MAX_SENTENCE_TOKENS)
        if cuts:
            self.log.record(
                "segmented",
                f"sentence over {MAX_SENTENCE_TOKENS} tokens cut into {len(cuts) + 1} pieces",
                line,
                " ".join(words[:12]),
            )
        for start, end in zip([0, *cuts], [*cuts, len(words)]):
            if self.words and len(self.words) + end - start > MAX_DOC_TOKENS:
                self.log.record(
                    "segmented",
                    f"document over {MAX_DOC_TOKENS} tokens split at a sentence break",
                    line,
                    " ".join(words[start : start + 12]),
                )
                yield from self.flush()
            self.words.extend(words[start:end])
            self.tags.extend(tags[start:end])
            self.starts.append(True)
            self.starts.extend([False] * (end - start - 1))
        self.sentences += 1

    def flush(self) -> Iterator[Doc]:
        if not self.words:
            return
        n = len(self.words)
        self.tokens += n
        self.cjk_tokens += sum(1 for w in self.words if len(w) == 1 and _CJK.match(w))
        spaces = [not self.no_spaces] * n
        spaces[-1] = False
        doc = Doc(self.vocab, words=self.words, spaces=spaces)
        # One from_array call instead of Doc(sent_starts=, ents=), which parses every tag string.
        values = numpy.empty((n, 3), dtype="uint64")
        values[:, 0] = numpy.where(self.starts, 1, -1).astype("int64").view("uint64")
        values[:, 1:] = numpy.array([self._ent_value(tag) for tag in self.tags], dtype="uint64")
        if self.tags[0].startswith("I-"):  # a document starts an entity, never continues one
            values[0, 1] = _IOB["B"]
        doc.from_array([SENT_START, ENT_IOB, ENT_TYPE], values)
        yield doc
        self.words, self.tags, self.starts = [], [], []
        self.sentences = 0

    def _ent_value(self, tag: str) -> tuple[int, int]:
        value = self._ent_values.get(tag)
        if value is None:
            label = tag[2:]
            value = (_IOB[tag[0]], self.vocab.strings.add(label) if label else 0)
            self._ent_values[tag] = value
        return value


def read_conll(lines: NumberedLines, *, options: ReadOptions, log: Log) -> Iterator[Doc]:
    """Token-per-line files: TOKEN [columns...] TAG; blank lines end sentences; -DOCSTART- docs."""
    builder = DocBuilder(options, log)
    decoder = TagDecoder()
    words: list[str] = []
    tags: list[str] = []
    has_docstart = False
    line = 0
    columns: dict[int, tuple[int, int] | None] = {}  # fields in a line -> token and tag index
    for line, text in lines:
        if "\t" in text:
            fields = [f.strip(_BLANK) for f in text.strip(_BLANK).split("\t")]
        else:
            fields = text.strip(_BLANK).split(" ")
            if len(fields) > 2 and "" in fields:  # runs of spaces between the columns
                fields = _SPLIT.split(text.strip(_BLANK))
        if fields == [""]:  # blank or whitespace-only: a sentence break
            yield from builder.add_sentence(words, tags, line)
            words, tags = [], []
            decoder.reset()
            if not has_docstart and builder.sentences >= SENTENCES_PER_DOC:
                yield from builder.flush()
            continue
        if fields[0] == DOCSTART or fields[0].startswith(_DOCSTART_SPACE):
            has_docstart = True
            yield from builder.add_sentence(words, tags, line)
            words, tags = [], []
            decoder.reset()
            yield from builder.flush()
            continue
        where = columns.get(len(fields), _UNSEEN)
        if where is _UNSEEN:
            where = columns[len(fields)] = _columns(options, len(fields))
        try:
            if where is not None and fields[where[0]]:
                word, tag = fields[where[0]], fields[where[1]]
            else:
                word, tag = _token_and_tag(fields, options, line)
            tags.append(decoder.decode(tag, line))
        except DataError as error:
            if fields[0].startswith("#"):
                continue  # a comment line: starts with # and does not read as a token line
            log.skip(error)
            continue
        words.append(word)
        if (
            len(words) >= 2 * MAX_DOC_TOKENS
        ):  # no sentence break for a long while: keep memory bounded
            cuts = cut_points(words, tags, max_tokens=MAX_SENTENCE_TOKENS)
            if cuts:
                yield from builder.add_sentence(words[: cuts[-1]], tags[: cuts[-1]], line)
                words, tags = words[cuts[-1] :], tags[cuts[-1] :]
    yield from builder.add_sentence(words, tags, line)
    yield from builder.flush()
    documents = (
        "documents from -DOCSTART-"
        if has_docstart
        else f"no -DOCSTART-: {SENTENCES_PER_DOC} sentences per document"
    )
    log.note(f"token-per-line, tags {decoder.scheme()}; {documents}")
    if builder.cjk_tokens > builder.tokens / 2 and not builder.no_spaces:
        log.note(
            f"most tokens are single CJK characters but --lang is {options.lang}: "
            "they were joined with spaces; use --lang zh or ja"
        )


def _columns(options: ReadOptions, n: int) -> tuple[int, int] | None:
    """The indexes of the token and the tag in a line of n fields; None if it has no tag."""
    tag_i = _column_index(options.tag_column, n)
    word_i = _column_index(options.token_column, n)
    if n < 2 or tag_i is None or word_i is None or tag_i == word_i:
        return None
    return word_i, tag_i


def _token_and_tag(fields: list[str], options: ReadOptions, line: int) -> tuple[str, str]:
    n = len(fields)
    where = _columns(options, n)
    if where is None:
        raise DataError(
            line,
            f"token line has {n} column(s) and no tag (token column {options.token_column}, "
            f"tag column {options.tag_column})",
            "write TOKEN<TAB>TAG, or pick the columns with --token-column and --tag-column",
        )
    word = fields[where[0]]
    if not word:
        raise DataError(
            line,
            f"empty token in column {options.token_column}",
            "remove the line or fill in the token",
        )
    return word, fields[where[1]]


def _column_index(column: int, n: int) -> int | None:
    index = column - 1 if column > 0 else n + column
    return index if 0 <= index < n else None


def read_iob(lines: NumberedLines, *, options: ReadOptions, log: Log) -> Iterator[Doc]:
    """Sentence-per-line files: `word|TAG word|TAG ...` or `word|POS|TAG` (spaCy's iob format)."""
    builder = DocBuilder(options, log)
    decoder = TagDecoder()
    line = 0
    for line, text in lines:
        if not text.strip(_BLANK):
            continue
        if text.lstrip().startswith(DOCSTART):
            yield from builder.flush()
            continue
        try:
            words, tags = _sentence(text, decoder, line)
        except DataError as error:
            log.skip(error)
            continue
        yield from builder.add_sentence(words, tags, line)
        if builder.sentences >= SENTENCES_PER_DOC:
            yield from builder.flush()
    yield from builder.flush()
    log.note(
        f"sentence-per-line word|TAG, tags {decoder.scheme()}; "
        f"{SENTENCES_PER_DOC} sentences per document"
    )


def _sentence(text: str, decoder: TagDecoder, line: int) -> tuple[list[str], list[str]]:
    decoder.reset()
    words, tags = [], []
    for item in _SPLIT.split(text.strip(_BLANK)):
        word, sep, tag = item.rpartition("|")
        if not sep or not word:
            raise DataError(
                line,
                f"item {item!r} is not word|TAG",
                "write tokens as word|TAG or word|POS|TAG separated by spaces",
            )
        if "|" in word:  # word|POS|TAG
            word = word.rpartition("|")[0] or word
        words.append(word)
        tags.append(decoder.decode(tag, line))
    return words, tags
