"""Counting a corpus: documents, sentences, tokens, entities and categories per split.

stats = Stats(); stats.add(doc); stats_json(stats, labels)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple, TypedDict

from spacy.tokens import Doc

from scripts.common.cats import NEGATION_PREFIX, POSITIVE
from scripts.corpus.readers.spans import SPAN_KEY


@dataclass
class Stats:
    """Counts for one output (a split, or the whole corpus)."""

    docs: int = 0
    sentences: int = 0
    tokens: int = 0
    docs_with_ner: int = 0
    docs_with_entities: int = 0
    docs_with_cats: int = 0
    spans_only: int = 0  # spans in doc.spans[SPAN_KEY] that are not entities
    entities: Counter[str] = field(default_factory=Counter)
    categories: Counter[str] = field(default_factory=Counter)  # positive documents per label
    positives: Counter[int] = field(default_factory=Counter)  # documents by positive labels

    def add(self, doc: Doc) -> None:
        self.add_summary(summarize(doc))

    def add_summary(self, summary: DocSummary) -> None:
        self.docs += 1
        self.tokens += summary.tokens
        self.sentences += summary.sentences
        self.spans_only += summary.spans_only
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
        for name in (
            "docs",
            "sentences",
            "tokens",
            "docs_with_ner",
            "docs_with_entities",
            "docs_with_cats",
            "spans_only",
        ):
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
    spans_only: int  # spans in doc.spans[SPAN_KEY] that are not among doc.ents


def summarize(doc: Doc) -> DocSummary:
    sentences = sum(1 for _ in doc.sents) if doc.has_annotation("SENT_START") else 1
    entities = tuple(ent.label_ for ent in doc.ents) if doc.has_annotation("ENT_IOB") else None
    return DocSummary(len(doc), sentences, entities, dict(doc.cats), spans_only(doc))


def spans_only(doc: Doc) -> int:
    """How many of the doc's spans under SPAN_KEY are not also entities."""
    if SPAN_KEY not in doc.spans:
        return 0
    entities = {(ent.start, ent.end, ent.label) for ent in doc.ents}
    return sum(
        1 for span in doc.spans[SPAN_KEY] if (span.start, span.end, span.label) not in entities
    )


def textcat_mode(labels: list[str], positives: Counter[int]) -> str:
    """Exclusive when every document has exactly one positive label (or the data has one label)."""
    if not labels:
        return "none"
    if len(labels) == 1 or set(positives) == {1}:
        return "exclusive"
    return "multilabel"


class StatsReport(TypedDict):
    """The counts of one output as the report shows them (report.json)."""

    docs: int
    sentences: int
    tokens: int
    docs_with_ner: int
    docs_with_entities: int
    docs_with_cats: int
    spans_only: int  # spans kept in doc.spans[SPAN_KEY] only, not in doc.ents
    entities_per_label: dict[str, int]
    docs_per_category: dict[str, int]
    docs_by_positive_labels: dict[str, int]


def stats_json(stats: Stats, labels: list[str]) -> StatsReport:
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
        "spans_only": stats.spans_only,
        "entities_per_label": dict(sorted(stats.entities.items(), key=lambda kv: (-kv[1], kv[0]))),
        "docs_per_category": dict(sorted(categories.items(), key=lambda kv: (-kv[1], kv[0]))),
        "docs_by_positive_labels": {str(k): v for k, v in sorted(stats.positives.items())},
    }
