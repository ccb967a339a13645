"""Training-time behaviour of the text classifiers: partial annotation and skewed labels.

Partial annotation. A joint corpus mixes documents with entities only and documents with
categories only. spaCy already treats missing entity tags as missing, but its exclusive `textcat`
reads a document without categories as "every label 0" (a silent negative), and its category
scorer counts such documents as wrong. Here every text classifier ignores documents without
categories, in its loss and in its dev score.

Skewed labels. Real label distributions are skewed, and an unweighted loss lets the frequent
classes drown the rare ones. Each classifier weighs its loss by class frequency in the training
set: an exclusive classifier weighs each document by its gold class, a multi-label one weighs
each label's positives and negatives. The weight of a class seen n_c times out of n, among K
classes (K = 2 per multi-label label), is (n / (K * n_c)) ** class_balance, rescaled so the mean
weight over the training data is 1 (the learning rate keeps its meaning). class_balance 0 is
spaCy's unweighted loss, 1 fully balances the classes, the default 0.5 sits between.

The callback is referenced from [initialize] only, which spaCy resolves when training and never
when loading, so trained and packaged pipelines stay plain spaCy components.
"""
# No `from __future__ import annotations`: spaCy builds pydantic models from initialize() signatures.

from collections import Counter
from typing import Any, Callable, Dict, Iterable, Optional, Sequence

import numpy
from spacy.language import Language
from spacy.pipeline.textcat import TextCategorizer
from spacy.pipeline.textcat_multilabel import MultiLabel_TextCategorizer
from spacy.scorer import Scorer
from spacy.training import Example, validate_examples
from spacy.util import registry

from scripts.evaluation.metrics import GOLD_POSITIVE, top_category


def balanced_weights(counts: Dict[str, int], *, power: float) -> Dict[str, float]:
    """Per-class weights (n / (K * n_c)) ** power, rescaled to a mean of 1 over the n items.

    balanced_weights({"a": 3, "b": 1}, power=1.0) == {"a": 2/3, "b": 2.0}
    """
    present = {label: n for label, n in counts.items() if n > 0}
    total = sum(present.values())
    if not present or power == 0:
        return {label: 1.0 for label in counts}
    raw = {label: (total / (len(present) * n)) ** power for label, n in present.items()}
    mean = sum(raw[label] * n for label, n in present.items()) / total
    return {label: raw[label] / mean if label in raw else 1.0 for label in counts}


def exclusive_row_weights(
    examples: Iterable[Example], labels: Sequence[str], *, power: float
) -> Dict[str, float]:
    """Weight of a document by its gold class, e.g. {"bug": 0.7, "question": 1.6}."""
    counts = Counter({label: 0 for label in labels})
    for eg in annotated_for_cats(examples):
        counts[top_category(eg.reference.cats, labels)] += 1
    return balanced_weights(counts, power=power)


def multilabel_cell_weights(
    examples: Iterable[Example], labels: Sequence[str], *, power: float
) -> numpy.ndarray:
    """A (2, n_labels) array: row 0 weighs negatives, row 1 positives, for each label."""
    positives, annotated = Counter(), Counter()
    for eg in annotated_for_cats(examples):
        for label, value in eg.reference.cats.items():
            annotated[label] += 1
            positives[label] += value >= GOLD_POSITIVE
    weights = numpy.ones((2, len(labels)), dtype="f")
    for j, label in enumerate(labels):
        pair = balanced_weights(
            {"neg": annotated[label] - positives[label], "pos": positives[label]}, power=power
        )
        weights[0, j], weights[1, j] = pair["neg"], pair["pos"]
    return weights


class WeightedLossMixin:
    """Weighted squared-error loss; `loss_weights` maps a batch's truths to per-cell weights."""

    class_balance: float = 0.0

    def loss_weights(self, truths: numpy.ndarray, examples: Sequence[Example]) -> numpy.ndarray:
        raise NotImplementedError

    def get_loss(self, examples: Iterable[Example], scores: Any) -> tuple[float, Any]:
        examples = list(examples)
        validate_examples(examples, "TextCategorizer.get_loss")
        self._validate_categories(examples)
        truths, not_missing = self._examples_to_truth(examples)
        weights = numpy.asarray(not_missing, dtype="f") * self.loss_weights(
            self.model.ops.to_numpy(truths), examples
        )
        difference = scores - truths
        d_scores = difference * self.model.ops.asarray(weights)
        return float((d_scores * difference).mean()), d_scores


class TrainingTextCategorizer(WeightedLossMixin, TextCategorizer):
    """Exclusive classifier: skips documents without categories, weighs documents by gold class."""

    row_weights: Optional[Dict[str, float]] = None

    @property
    def support_missing_values(self) -> bool:
        return True

    # spaCy validates [initialize.components] against this signature, so it is spelled out.
    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        labels: Optional[Iterable[str]] = None,
        positive_label: Optional[str] = None,
    ) -> None:
        super().initialize(get_examples, nlp=nlp, labels=labels, positive_label=positive_label)
        self.row_weights = exclusive_row_weights(
            get_examples(), self.labels, power=self.class_balance
        )

    def loss_weights(self, truths: numpy.ndarray, examples: Sequence[Example]) -> numpy.ndarray:
        weights = numpy.ones_like(truths)
        if self.row_weights:
            for i, eg in enumerate(examples):
                if eg.reference.cats:
                    weights[i, :] = self.row_weights.get(
                        top_category(eg.reference.cats, self.labels), 1.0
                    )
        return weights


class TrainingMultiLabelTextCategorizer(WeightedLossMixin, MultiLabel_TextCategorizer):
    """Multi-label classifier: weighs each label's positives and negatives by their frequency."""

    cell_weights: Optional[numpy.ndarray] = None

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        labels: Optional[Iterable[str]] = None,
    ) -> None:
        super().initialize(get_examples, nlp=nlp, labels=labels)
        self.cell_weights = multilabel_cell_weights(
            get_examples(), self.labels, power=self.class_balance
        )

    def loss_weights(self, truths: numpy.ndarray, examples: Sequence[Example]) -> numpy.ndarray:
        if self.cell_weights is None:
            return numpy.ones_like(truths)
        positive = truths >= GOLD_POSITIVE
        return numpy.where(positive, self.cell_weights[1], self.cell_weights[0]).astype("f")


def annotated_for_cats(examples: Iterable[Example]) -> list[Example]:
    """The examples whose gold document carries categories, e.g. cats={"bug": 1.0, "question": 0.0}."""
    return [eg for eg in examples if eg.reference.cats]


def make_cats_scorer(*, multi_label: bool) -> Callable[..., Dict[str, Any]]:
    def score_annotated_cats(examples: Iterable[Example], **kwargs: Any) -> Dict[str, Any]:
        return Scorer.score_cats(
            annotated_for_cats(examples), "cats", multi_label=multi_label, **kwargs
        )

    return score_annotated_cats


@registry.callbacks("ner_textcat.textcat_training.v1")
def create_textcat_training_callback(class_balance: float = 0.5) -> Callable[[Language], Language]:
    if not 0 <= class_balance <= 1:
        raise ValueError(
            f"class_balance {class_balance} is outside 0..1; 0 is unweighted, 1 fully balanced"
        )

    def use_training_textcat(nlp: Language) -> Language:
        for _, pipe in nlp.pipeline:
            if type(pipe) is TextCategorizer:
                pipe.__class__ = TrainingTextCategorizer
            elif type(pipe) is MultiLabel_TextCategorizer:
                pipe.__class__ = TrainingMultiLabelTextCategorizer
            else:
                continue
            # Same component and serialization; only the loss and the dev score change.
            pipe.class_balance = class_balance
            pipe.scorer = make_cats_scorer(multi_label=isinstance(pipe, MultiLabel_TextCategorizer))
        return nlp

    return use_training_textcat
