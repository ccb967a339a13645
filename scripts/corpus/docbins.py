"""Documents held in spaCy DocBins until they are written: every document's categories completed,
the file written atomically, and left untouched when its bytes would not change.

write_docbin(docs, Path("corpus/train.spacy"))   # -> True if the file changed
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from spacy.tokens import Doc, DocBin
from spacy.vocab import Vocab

from scripts.common.cats import NEGATION_PREFIX
from scripts.common.files import write_bytes_atomic

# What the readers annotate (the whitespace after each token is always stored too). NORM is left
# out: a reader never sets it, and spaCy's Corpus builds its training docs with the pipeline's own.
READER_ATTRS = ("ORTH", "SENT_START", "ENT_IOB", "ENT_TYPE")
# Annotation only some documents carry (a parsed .spacy source, a tokenizer that tags): a file
# with such documents stores every attribute DocBin stores by default.
OTHER_ATTRS: list[int | str] = [
    "TAG",
    "POS",
    "MORPH",
    "LEMMA",
    "DEP",
    "HEAD",
    "ENT_KB_ID",
    "ENT_ID",
]
RUN_TOKENS = 100_000  # tokens per DocBin, so that a pool is let go bit by bit as it is routed


def complete_cats(cats: dict[str, float], labels: list[str]) -> dict[str, float]:
    """Every label of the data set, 1.0/0.0, sorted; NOT_<LABEL> for one-label data; {} stays {}."""
    if not cats:
        return {}
    if len(labels) == 1:
        value = float(cats.get(labels[0], 0.0))
        return dict(zip(category_names(labels), (value, 1.0 - value)))
    return {label: float(cats.get(label, 0.0)) for label in labels}


def category_names(labels: list[str]) -> list[str]:
    """The categories complete_cats gives every document: the labels, or LABEL and NOT_LABEL."""
    return labels if len(labels) != 1 else [labels[0], NEGATION_PREFIX + labels[0]]


def new_docbin(*, all_attrs: bool) -> DocBin:
    return DocBin() if all_attrs else DocBin(attrs=READER_ATTRS)


@dataclass
class _Run:
    """Documents added one after another that share their kind: with categories or without, with
    annotation beyond READER_ATTRS or without. A run with categories is frozen to bytes once the
    next run starts (they are read back to be completed at the end anyway)."""

    all_attrs: bool
    with_cats: bool
    docs: DocBin | None = None
    frozen: bytes = b""
    tokens: int = 0
    count: int = 0
    # The category names of every document, in order, while they are the same for all and every
    # value is a float (a run like that is complete already if these are the labels); else None.
    cat_keys: tuple[str, ...] | None = ()

    def docbin(self) -> DocBin:
        return self.docs if self.docs is not None else DocBin().from_bytes(self.frozen)

    def freeze(self) -> None:
        if self.docs is not None and self.with_cats:
            self.frozen, self.docs = self.docs.to_bytes(), None


class DocStore:
    """Documents in the order they were added, kept compact in DocBins until they are written.

    Documents with categories sit in DocBins of their own, so that their categories can be
    completed once every label of the data set is known."""

    def __init__(self, vocab: Vocab | None = None) -> None:
        self.vocab = vocab or Vocab()  # what the documents were made with: read back with it
        self.labels: set[str] = set()  # every category seen
        self._runs: list[_Run] = []

    def __len__(self) -> int:
        return sum(run.count for run in self._runs)

    def add(self, doc: Doc) -> None:
        all_attrs = bool(doc.to_array(OTHER_ATTRS).any())
        with_cats = bool(doc.cats)
        run = self._runs[-1] if self._runs else None
        if (
            run is None
            or run.all_attrs != all_attrs
            or run.with_cats != with_cats
            or run.tokens >= RUN_TOKENS
        ):
            if run is not None:
                run.freeze()
            run = _Run(all_attrs, with_cats, new_docbin(all_attrs=all_attrs))
            self._runs.append(run)
        assert run.docs is not None  # the last run is never frozen
        run.docs.add(doc)
        run.tokens += len(doc)
        run.count += 1
        if with_cats:
            self.labels.update(doc.cats)
            keys = tuple(doc.cats)
            floats = all(type(value) is float for value in doc.cats.values())
            if not floats or (run.count > 1 and keys != run.cat_keys):
                run.cat_keys = None
            elif run.count == 1:
                run.cat_keys = keys

    def pop_docs(self) -> Iterator[Doc]:
        """Every document, in order; the store lets go of each DocBin once its documents are out."""
        while self._runs:
            yield from self._runs.pop(0).docbin().get_docs(self.vocab)

    def pop_bytes(self, *, labels: list[str] | None = None) -> bytes:
        """What DocBin.to_bytes gives for all documents, their categories completed with labels
        (default: the labels seen); the store is empty afterwards. DocBin sorts its strings, so the
        same documents give the same bytes whatever order Python's hash seed puts a set in."""
        labels = sorted(self.labels) if labels is None else labels
        complete_keys = tuple(category_names(labels))
        all_attrs = any(run.all_attrs for run in self._runs)
        merged = new_docbin(all_attrs=all_attrs)
        shared: dict[tuple[tuple[str, str], ...], dict[str, float]] = {}
        while self._runs:
            run = self._runs.pop(0)
            docs = run.docbin()
            if run.all_attrs == all_attrs and (not run.with_cats or run.cat_keys == complete_keys):
                merged.merge(docs)
                continue
            for doc in docs.get_docs(self.vocab):
                full = complete_cats(doc.cats, labels)
                # Equal categories share one dict: many documents, few combinations of labels.
                doc.cats = shared.setdefault(tuple((k, v.hex()) for k, v in full.items()), full)
                merged.add(doc)
        return merged.to_bytes()


def write_if_changed(path: Path, data: bytes) -> bool:
    """Write data to path atomically unless path holds exactly these bytes; True if it wrote."""
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return False
    write_bytes_atomic(path, data)
    return True


def write_docbin(docs: Iterable[Doc], path: Path, *, labels: list[str] | None = None) -> bool:
    """Write docs to a .spacy file atomically and deterministically; True if the file changed."""
    store = DocStore()
    for doc in docs:
        store.add(doc)
    return write_if_changed(path, store.pop_bytes(labels=labels))
