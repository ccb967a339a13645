"""Training-time support for corpora where each document carries only some annotation.

A joint corpus mixes documents with entities only and documents with categories only.
spaCy already treats missing entity tags as missing, but its exclusive `textcat` reads a
document without categories as "every label 0" (a silent negative), and its category scorer
counts such documents as wrong. The callback below, run once before initialization, makes
every text classifier ignore documents without categories, in its loss and in its dev score.

It is referenced from [initialize] only, which spaCy resolves when training and never when
loading, so the trained and packaged pipelines stay plain spaCy components.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterable

from spacy.language import Language
from spacy.pipeline.textcat import TextCategorizer
from spacy.scorer import Scorer
from spacy.training import Example
from spacy.util import registry


class MissingCategoriesTextCategorizer(TextCategorizer):
    """An exclusive text classifier whose loss skips labels a document does not carry."""

    @property
    def support_missing_values(self) -> bool:
        return True


def annotated_for_cats(examples: Iterable[Example]) -> list[Example]:
    """The examples whose gold document carries categories, e.g. cats={"bug": 1.0, "question": 0.0}."""
    return [eg for eg in examples if eg.reference.cats]


def make_cats_scorer(*, multi_label: bool) -> Callable[..., Dict[str, Any]]:
    def score_annotated_cats(examples: Iterable[Example], **kwargs: Any) -> Dict[str, Any]:
        return Scorer.score_cats(annotated_for_cats(examples), "cats", multi_label=multi_label, **kwargs)

    return score_annotated_cats


@registry.callbacks("ner_textcat.partial_annotation.v1")
def create_partial_annotation_callback() -> Callable[[Language], Language]:
    def use_partial_annotation(nlp: Language) -> Language:
        for _, pipe in nlp.pipeline:
            if not isinstance(pipe, TextCategorizer):
                continue
            exclusive = type(pipe) is TextCategorizer
            if exclusive:
                # Same component and serialization; only the loss learns to skip missing labels.
                pipe.__class__ = MissingCategoriesTextCategorizer
            pipe.scorer = make_cats_scorer(multi_label=not exclusive)
        return nlp

    return use_partial_annotation
