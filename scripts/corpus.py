"""The corpus between readers and training: segment long documents, merge, split, complete the
categories, write DocBins atomically and deterministically, and count what was written.

    write_docbin(docs, Path("corpus/train.spacy"))   # -> True if the file changed
"""

from __future__ import annotations

import hashlib
import os
import random
import tempfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterable, Iterator, NamedTuple

import srsly
from spacy.tokens import Doc, DocBin

from .files import write_bytes_atomic

MAX_SENTENCE_TOKENS = 200  # longer runs without a sentence break are cut into pieces this long
MAX_DOC_TOKENS = 1000  # bounded documents keep batches bounded (batch_by_padded discards oversize docs)
SENTENCES_PER_DOC = 10  # without -DOCSTART- markers, like `spacy convert -n 10`
SENTENCE_END = frozenset({".", "!", "?", "。", "！", "？", "…", ";", "；"})
POSITIVE = 0.5  # a category value at or above this counts as positive
NEGATION_PREFIX = "NOT_"  # data with one category gets NOT_<LABEL> = 1 - value (exclusive, 2 labels)
SPLITS = ("train", "dev", "test")
_CHUNK = 1 << 20


def cut_points(words: list[str], tags: list[str], *, max_tokens: int) -> list[int]:
    """Where to cut a run of tokens into pieces of at most max_tokens: after sentence-final
    punctuation if there is one in the second half of the window, else before any token that is
    not inside an entity (tags are IOB2). An entity longer than the window is kept whole."""
    cuts: list[int] = []
    start, n = 0, len(words)
    while n - start > max_tokens:
        window = range(start + max_tokens, start + max_tokens // 2, -1)
        allowed = [i for i in window if not tags[i].startswith("I-")]
        best = next((i for i in allowed if words[i - 1] in SENTENCE_END), None)
        if best is None:
            best = allowed[0] if allowed else next((i for i in range(start + max_tokens + 1, n) if not tags[i].startswith("I-")), n)
        if best >= n:
            break
        cuts.append(best)
        start = best
    return cuts


# ---- writing DocBins -----------------------------------------------------------------------


@dataclass
class DocRecord:
    """One Doc in DocBin form (what DocBin.add stores), small enough to keep or route to a split."""

    tokens: bytes
    spaces: bytes
    length: int
    cats: dict[str, float]
    flags: dict[str, bool]
    span_groups: bytes
    strings: set[str]
    text_hash: bytes


def to_record(doc: Doc, scratch: DocBin | None = None) -> DocRecord:
    """DocBin.add, taken apart: the same arrays and strings, for one doc."""
    scratch = scratch if scratch is not None else DocBin()
    scratch.add(doc)
    strings, scratch.strings = scratch.strings, set()
    return DocRecord(
        tokens=scratch.tokens.pop().tobytes("C"),
        spaces=scratch.spaces.pop().tobytes("C"),
        length=len(doc),
        cats=dict(scratch.cats.pop()),
        flags=scratch.flags.pop(),
        span_groups=scratch.span_groups.pop(),
        strings=strings,
        text_hash=hashlib.blake2b(doc.text.encode("utf8"), digest_size=8).digest(),
    )


def complete_cats(cats: dict[str, float], labels: list[str]) -> dict[str, float]:
    """Every label of the data set, 1.0/0.0 (sorted); NOT_<LABEL> for one-label data; {} stays {}."""
    if not cats:
        return {}
    if len(labels) == 1:
        value = float(cats.get(labels[0], 0.0))
        return {labels[0]: value, NEGATION_PREFIX + labels[0]: 1.0 - value}
    return {label: float(cats.get(label, 0.0)) for label in labels}


class DocBinWriter:
    """Writes a .spacy file doc by doc. Token arrays go to a scratch file, so memory stays flat; the
    output is the bytes DocBin.to_bytes would give, with the strings sorted (deterministic), written
    to a temp file beside the target and moved into place by commit()."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.attrs = DocBin().attrs
        self._scratch = DocBin()
        self._tokens: IO[bytes] = tempfile.TemporaryFile()
        self._spaces: IO[bytes] = tempfile.TemporaryFile()
        self.lengths: list[int] = []
        self.cats: list[dict[str, float]] = []
        self.flags: list[dict[str, bool]] = []
        self.span_groups: list[bytes] = []
        self.strings: set[str] = set()
        self._temp: Path | None = None

    def __len__(self) -> int:
        return len(self.lengths)

    def add(self, doc: Doc) -> DocRecord:
        record = to_record(doc, self._scratch)
        self.add_record(record)
        return record

    def add_record(self, record: DocRecord) -> None:
        self._tokens.write(record.tokens)
        self._spaces.write(record.spaces)
        self.lengths.append(record.length)
        self.cats.append(record.cats)
        self.flags.append(record.flags)
        self.span_groups.append(record.span_groups)
        self.strings |= record.strings

    def labels(self) -> set[str]:
        return {label for cats in self.cats for label in cats}

    def finish(self, *, labels: list[str] | None = None) -> None:
        """Write everything to a temp file beside the target; labels complete every doc's cats."""
        labels = sorted(self.labels()) if labels is None else labels
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        self._temp = Path(name)
        try:
            with os.fdopen(handle, "wb") as out:
                compressor = zlib.compressobj()
                for chunk in self._msgpack_chunks(labels):
                    out.write(compressor.compress(chunk))
                out.write(compressor.flush())
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            self.discard()
            raise

    def _msgpack_chunks(self, labels: list[str]) -> Iterator[bytes]:
        # The same msgpack map as DocBin.to_bytes, key by key, with the token arrays streamed.
        pack = srsly.msgpack.Packer(use_bin_type=True).pack  # what msgpack_dumps does, built once
        yield b"\x89"  # a map of 9 entries
        yield pack("version") + pack("0.1")
        yield pack("attrs") + pack(self.attrs)
        for key, store in (("tokens", self._tokens), ("spaces", self._spaces)):
            yield pack(key) + _bin_header(store.tell())
            store.seek(0)
            yield from iter(lambda store=store: store.read(_CHUNK), b"")
        lengths = b"".join(n.to_bytes(4, "little", signed=True) for n in self.lengths)
        yield pack("lengths") + pack(lengths)
        # Sorted, so the same docs give the same bytes whatever PYTHONHASHSEED orders the set in.
        yield pack("strings") + pack(sorted(self.strings))
        yield pack("cats") + _array_header(len(self.cats))
        for cats in self.cats:
            yield pack(complete_cats(cats, labels))
        yield pack("flags") + pack(self.flags)
        yield pack("span_groups") + pack(self.span_groups)

    def commit(self) -> bool:
        """Move the finished file into place; a target with the same bytes is left untouched."""
        assert self._temp is not None, "finish() first"
        temp, self._temp = self._temp, None
        if self.path.exists() and _same_bytes(self.path, temp):
            temp.unlink()
            return False
        os.replace(temp, self.path)
        return True

    def discard(self) -> None:
        if self._temp is not None:
            self._temp.unlink(missing_ok=True)
            self._temp = None

    def close(self) -> None:
        self.discard()
        self._tokens.close()
        self._spaces.close()


def _bin_header(n: int) -> bytes:
    if n < 1 << 8:
        return b"\xc4" + n.to_bytes(1, "big")
    if n < 1 << 16:
        return b"\xc5" + n.to_bytes(2, "big")
    return b"\xc6" + n.to_bytes(4, "big")


def _array_header(n: int) -> bytes:
    if n < 16:
        return bytes([0x90 | n])
    if n < 1 << 16:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


def _same_bytes(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            chunk = fa.read(_CHUNK)
            if chunk != fb.read(_CHUNK):
                return False
            if not chunk:
                return True


def write_docbin(docs: Iterable[Doc], path: Path, *, labels: list[str] | None = None) -> bool:
    """Write docs to a .spacy file atomically and deterministically; True if the file changed."""
    writer = DocBinWriter(path)
    try:
        for doc in docs:
            writer.add(doc)
        writer.finish(labels=labels)
        return writer.commit()
    finally:
        writer.close()


def write_text_atomic(text: str, path: Path) -> bool:
    """Write a small text file (the report) the same way: temp file, then os.replace."""
    if path.exists() and path.read_text(encoding="utf8") == text:
        return False
    write_bytes_atomic(path, text.encode("utf8"))
    return True


# ---- counting --------------------------------------------------------------------------------


@dataclass
class Stats:
    """Counts for one output (a split, or the whole corpus)."""

    docs: int = 0
    sentences: int = 0
    tokens: int = 0
    docs_with_ner: int = 0
    docs_with_entities: int = 0
    docs_with_cats: int = 0
    entities: Counter[str] = field(default_factory=Counter)
    categories: Counter[str] = field(default_factory=Counter)  # positive documents per label
    positives: Counter[int] = field(default_factory=Counter)  # documents by number of positive labels

    def add(self, doc: Doc) -> None:
        self.add_summary(summarize(doc))

    def add_summary(self, summary: DocSummary) -> None:
        self.docs += 1
        self.tokens += summary.tokens
        self.sentences += summary.sentences
        if summary.entities is not None:
            self.docs_with_ner += 1
            self.docs_with_entities += bool(summary.entities)
            self.entities.update(summary.entities)
        if summary.cats:
            self.docs_with_cats += 1
            positive = [label for label, value in summary.cats.items() if value >= POSITIVE]
            self.categories.update(positive)
            self.positives[len(positive)] += 1

    def merge(self, other: Stats) -> None:
        for name in ("docs", "sentences", "tokens", "docs_with_ner", "docs_with_entities", "docs_with_cats"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.entities.update(other.entities)
        self.categories.update(other.categories)
        self.positives.update(other.positives)


class DocSummary(NamedTuple):
    """What the counts need of one document (small enough to keep while a split is decided)."""

    tokens: int
    sentences: int
    entities: tuple[str, ...] | None  # None: no NER annotation
    cats: dict[str, float]


def summarize(doc: Doc) -> DocSummary:
    sentences = sum(1 for _ in doc.sents) if doc.has_annotation("SENT_START") else 1
    entities = tuple(ent.label_ for ent in doc.ents) if doc.has_annotation("ENT_IOB") else None
    return DocSummary(len(doc), sentences, entities, dict(doc.cats))


def textcat_mode(labels: list[str], positives: Counter[int]) -> str:
    """Exclusive when every document has exactly one positive label (or the data has one label)."""
    if not labels:
        return "none"
    if len(labels) == 1 or set(positives) == {1}:
        return "exclusive"
    return "multilabel"


def stats_json(stats: Stats, labels: list[str]) -> dict[str, object]:
    categories = dict(sorted(stats.categories.items()))
    if len(labels) == 1:  # NOT_<LABEL> is positive wherever the one label is not
        categories[NEGATION_PREFIX + labels[0]] = stats.docs_with_cats - stats.categories[labels[0]]
    return {
        "docs": stats.docs,
        "sentences": stats.sentences,
        "tokens": stats.tokens,
        "docs_with_ner": stats.docs_with_ner,
        "docs_with_entities": stats.docs_with_entities,
        "docs_with_cats": stats.docs_with_cats,
        "entities_per_label": dict(sorted(stats.entities.items(), key=lambda kv: (-kv[1], kv[0]))),
        "docs_per_category": dict(sorted(categories.items(), key=lambda kv: (-kv[1], kv[0]))),
        "docs_by_positive_labels": {str(k): v for k, v in sorted(stats.positives.items())},
    }


# ---- splitting -------------------------------------------------------------------------------


class SplitError(ValueError):
    """Too few documents for the requested split."""


def split_sizes(n: int, fractions: tuple[float, float, float]) -> tuple[int, int, int]:
    """Document counts for train/dev/test: at least one for each non-zero fraction."""
    dev = max(1, round(n * fractions[1])) if fractions[1] > 0 else 0
    test = max(1, round(n * fractions[2])) if fractions[2] > 0 else 0
    if n - dev - test < 1:
        raise SplitError(f"{n} document(s) cannot give train, dev ({dev}) and test ({test}) at least one each")
    return n - dev - test, dev, test


def assign_splits(keys: list[str], *, sizes: tuple[int, int, int], seed: int) -> list[int]:
    """Split index (0 train, 1 dev, 2 test) per document, stratified by key, the same for a seed.

    Each document gets a score (its shuffled rank in its key group + a random fraction) / group
    size, so any prefix of the score order holds every key in proportion; dev and test take the
    lowest scores."""
    rng = random.Random(seed)
    groups: dict[str, list[int]] = {}
    for index, key in enumerate(keys):
        groups.setdefault(key, []).append(index)
    scored: list[tuple[float, int]] = []
    for key in sorted(groups):
        members = groups[key]
        rng.shuffle(members)
        scored.extend(((rank + rng.random()) / len(members), index) for rank, index in enumerate(members))
    scored.sort()
    assignment = [0] * len(keys)
    _, dev, test = sizes
    for position, (_, index) in enumerate(scored):
        assignment[index] = 1 if position < dev else 2 if position < dev + test else 0
    return assignment


def stratum(cats: dict[str, float], frequency: Counter[str]) -> str:
    """The key a classification document is stratified by: its rarest positive label."""
    positive = [label for label, value in cats.items() if value >= POSITIVE]
    if not positive:
        return "" if not cats else "(none)"
    return min(positive, key=lambda label: (frequency[label], label))
