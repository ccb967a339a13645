"""Texts that occur more than once in a conversion: both sides of each pair (file, document and
the output each went to) and whether their labels differ, a conflict the model cannot learn from.

    repeats = RepeatedTexts()
    repeats.place(doc, summary, where=("a.csv", 4), output="train")
    repeats.place(same_text_other_label, summary, where=("b.csv", 2), output="test")
    repeats.report()["conflicts"]  # 1
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TypedDict

from spacy.tokens import Doc

from scripts.common.cats import POSITIVE
from scripts.corpus.readers.spans import MAX_EXAMPLES, shorten
from scripts.corpus.stats import DocSummary

Where = tuple[str, int]  # the file, and the document's number in it (from 1)
Entities = tuple[tuple[int, int, str], ...]  # character offsets and label of each entity
ENTITIES_SHOWN = 3


class Side(TypedDict):
    file: str
    doc: int  # the document's number in its file, from 1
    output: str  # train, dev, test, or all
    labels: str  # the entities and positive categories, as far as they tell the pair apart


class Example(TypedDict):
    text: str
    conflict: bool
    occurrences: list[Side]  # the first placed, then the repeat


class RepeatsReport(TypedDict):
    texts: int  # documents whose text an earlier document has already
    in_several_outputs: int  # distinct texts found in more than one output
    conflicts: int  # repeats whose entities or categories differ from the first occurrence
    examples: list[Example]  # conflicts first, a few of each kind, pairs across outputs first


@dataclass(slots=True)
class _First:
    """What is kept of the first document with a text, to compare each repeat with."""

    where: Where
    output: str
    entities: Entities | None  # None: no NER annotation
    categories: tuple[str, ...] | None  # the positive ones; None: no categories
    several: bool = False  # a repeat went to another output


@dataclass
class RepeatedTexts:
    """Counts repeated texts as documents are placed in their outputs, keeping a few examples."""

    first: dict[bytes, _First] = field(default_factory=dict)  # text digest -> first occurrence
    repeated: int = 0
    in_several_outputs: int = 0
    conflicts: int = 0
    conflict_examples: list[Example] = field(default_factory=list)
    other_examples: list[Example] = field(default_factory=list)

    def place(self, doc: Doc, summary: DocSummary, *, where: Where, output: str) -> None:
        """Note that `doc` (read at `where`) goes to `output`; compare it with an earlier twin."""
        key = hashlib.blake2b(doc.text.encode("utf8"), digest_size=8).digest()
        entities = _entities(doc) if summary.entities is not None else None
        categories = _positives(summary.cats) if summary.cats else None
        first = self.first.get(key)
        if first is None:
            self.first[key] = _First(where, output, entities, categories)
            return
        self.repeated += 1
        if output != first.output and not first.several:
            first.several = True
            self.in_several_outputs += 1
        conflict = _differ(first.entities, entities) or _differ(first.categories, categories)
        self.conflicts += conflict
        examples = self.conflict_examples if conflict else self.other_examples
        # A pair split between outputs (a test text also in train: it skews the scores) takes the
        # place of a pair within one output.
        slot = len(examples) if len(examples) < MAX_EXAMPLES else None
        if slot is None and output != first.output:
            slot = next((i for i, e in enumerate(examples) if _within_one_output(e)), None)
        if slot is not None:
            second = _First(where, output, entities, categories)
            example: Example = {
                "text": shorten(doc.text),
                "conflict": conflict,
                "occurrences": [_side(first, second, doc.text), _side(second, first, doc.text)],
            }
            examples[slot : slot + 1] = [example]

    def report(self) -> RepeatsReport:
        return {
            "texts": self.repeated,
            "in_several_outputs": self.in_several_outputs,
            "conflicts": self.conflicts,
            "examples": [
                *sorted(self.conflict_examples, key=_within_one_output),
                *sorted(self.other_examples, key=_within_one_output),
            ],
        }


def format_repeats(report: RepeatsReport) -> list[str]:
    """The console lines: the counts, then each example with both sides."""
    if not report["texts"]:
        return []
    lines = [
        f"Duplicate texts: {report['texts']} repeated, "
        f"{report['in_several_outputs']} in more than one output, "
        f"{report['conflicts']} with different labels (conflicts)"
    ]
    for example in report["examples"]:
        one, other = example["occurrences"]
        # The file once when both sides are in it: "a.csv: doc 3 (...) and doc 21 (...)"
        second = f"doc {other['doc']}" if other["file"] == one["file"] else _where(other)
        kind = "conflict" if example["conflict"] else "same labels"
        lines.append(
            f"    {kind}: {_where(one)} ({one['output']}: {one['labels']}) and "
            f"{second} ({other['output']}: {other['labels']}): {example['text']}"
        )
    return lines


def _where(side: Side) -> str:
    return f"{side['file']}: doc {side['doc']}"


def _within_one_output(example: Example) -> bool:
    one, other = example["occurrences"]
    return one["output"] == other["output"]


def _entities(doc: Doc) -> Entities:
    return tuple((ent.start_char, ent.end_char, ent.label_) for ent in doc.ents)


def _positives(cats: dict[str, float]) -> tuple[str, ...]:
    return tuple(sorted(label for label, value in cats.items() if value >= POSITIVE))


def _differ(one: object | None, other: object | None) -> bool:
    """Labels of one kind differ; a side without that kind of annotation does not disagree."""
    return one is not None and other is not None and one != other


def _side(side: _First, other: _First, text: str) -> Side:
    return {
        "file": side.where[0],
        "doc": side.where[1],
        "output": side.output,
        "labels": _labels(side, other, text),
    }


def _labels(side: _First, other: _First, text: str) -> str:
    """The side's entities (where the pair's entities differ, those the other side lacks) and its
    positive categories."""
    parts: list[str] = []
    if side.entities is not None:
        parts.append(_entity_labels(side.entities, other.entities, text))
    if side.categories is not None:
        parts.append(
            f"categories {', '.join(side.categories)}" if side.categories else "no category"
        )
    return "; ".join(parts) or "no labels"


def _entity_labels(mine: Entities, theirs: Entities | None, text: str) -> str:
    if not mine:
        return "no entities"
    if not _differ(mine, theirs):
        return f"entities {_listed(mine, text)}"
    own = [entity for entity in mine if entity not in set(theirs or ())]
    return (
        f"entities the other lacks {_listed(own, text)}" if own else "some of the other's entities"
    )


def _listed(entities: Entities | list[tuple[int, int, str]], text: str) -> str:
    listed = ", ".join(
        f"{shorten(text[start:end], 25)!r} {label}"
        for start, end, label in entities[:ENTITIES_SHOWN]
    )
    more = len(entities) - ENTITIES_SHOWN
    return listed + (f" and {more} more" if more > 0 else "")
