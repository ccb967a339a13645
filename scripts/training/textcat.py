"""The text classifiers this project trains: spaCy's, with a loss and a dev score for partial
annotation and skewed labels.

    [components.textcat]
    factory = "training_textcat"
    class_balance = 0.5
    scorer = {"@scorers":"ner_textcat.textcat_scorer.v1"}

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

The factories "training_textcat" and "training_textcat_multilabel" make subclasses of
spaCy's TextCategorizer and MultiLabel_TextCategorizer that override the public get_loss and
nothing that is saved: their weights and files are spaCy's own. After training, stock_config()
names spaCy's "textcat" and "textcat_multilabel" and their scorers in the saved config instead,
so a trained pipeline loads with spaCy alone.
"""

# No `from __future__ import annotations`: spaCy builds pydantic models from the factories' and
# initialize()'s signatures.
from collections import Counter
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy
from spacy.language import Language
from spacy.pipeline.textcat import DEFAULT_SINGLE_TEXTCAT_MODEL, TextCategorizer
from spacy.pipeline.textcat_multilabel import (
    DEFAULT_MULTI_TEXTCAT_MODEL,
    MultiLabel_TextCategorizer,
)
from spacy.scorer import Scorer
from spacy.tokens import Doc
from spacy.training import Example, validate_examples
from spacy.util import registry
from spacy.vocab import Vocab
from thinc.api import Config, Model
from thinc.types import Floats2d

from scripts.common.cats import POSITIVE
from scripts.scoring.metrics import top_category

EXCLUSIVE_FACTORY = "training_textcat"
MULTILABEL_FACTORY = "training_textcat_multilabel"
EXCLUSIVE_SCORER = "ner_textcat.textcat_scorer.v1"
MULTILABEL_SCORER = "ner_textcat.textcat_multilabel_scorer.v1"
DEFAULT_CLASS_BALANCE = 0.5
# spaCy's own factory and scorer for each of ours: what a trained pipeline's config names.
STOCK_COMPONENTS: Dict[str, Tuple[str, str]] = {
    EXCLUSIVE_FACTORY: ("textcat", "spacy.textcat_scorer.v2"),
    MULTILABEL_FACTORY: ("textcat_multilabel", "spacy.textcat_multilabel_scorer.v2"),
}
# The score weights of spaCy's textcat and textcat_multilabel, so training picks model-best alike.
CATS_SCORE_WEIGHTS: Dict[str, Optional[float]] = {
    "cats_score": 1.0,
    "cats_score_desc": None,
    "cats_micro_p": None,
    "cats_micro_r": None,
    "cats_micro_f": None,
    "cats_macro_p": None,
    "cats_macro_r": None,
    "cats_macro_f": None,
    "cats_macro_auc": None,
    "cats_f_per_type": None,
}


def check_class_balance(class_balance: float) -> float:
    """class_balance itself when it is in 0..1, else a ValueError that says so."""
    if not 0 <= class_balance <= 1:
        raise ValueError(
            f"class_balance {class_balance} is outside 0..1 (0 is unweighted, 1 fully balanced)"
        )
    return class_balance


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


def annotated_for_cats(examples: Iterable[Example]) -> List[Example]:
    """The examples whose gold document carries categories, e.g. cats={"bug": 1.0, "docs": 0.0}."""
    return [eg for eg in examples if eg.reference.cats]


def score_annotated_exclusive(examples: Iterable[Example], **kwargs: Any) -> Dict[str, Any]:
    """spaCy's exclusive category scores over the examples whose gold document has categories."""
    return Scorer.score_cats(annotated_for_cats(examples), "cats", multi_label=False, **kwargs)


def score_annotated_multilabel(examples: Iterable[Example], **kwargs: Any) -> Dict[str, Any]:
    """spaCy's multi-label category scores over the examples whose gold document has categories."""
    return Scorer.score_cats(annotated_for_cats(examples), "cats", multi_label=True, **kwargs)


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
            positives[label] += value >= POSITIVE
    weights = numpy.ones((2, len(labels)), dtype="f")
    for j, label in enumerate(labels):
        pair = balanced_weights(
            {"neg": annotated[label] - positives[label], "pos": positives[label]}, power=power
        )
        weights[0, j], weights[1, j] = pair["neg"], pair["pos"]
    return weights


def gold_truths(
    examples: Sequence[Example], labels: Sequence[str]
) -> Tuple[numpy.ndarray, numpy.ndarray]:
    """(truths, annotated), both (examples, labels): each label's gold value, and 1 where the gold
    document gives that label (a document without categories is all 0).

    gold_truths([example with gold cats {"bug": 1.0}], ["bug", "docs"]) -> ([[1, 0]], [[1, 0]])
    """
    truths = numpy.zeros((len(examples), len(labels)), dtype="f")
    annotated = numpy.zeros_like(truths)
    for i, eg in enumerate(examples):
        for j, label in enumerate(labels):
            if label in eg.reference.cats:
                truths[i, j] = eg.reference.cats[label]
                annotated[i, j] = 1.0
    return truths, annotated


class ClassWeightedLoss:
    """spaCy's squared-error loss over the annotated labels, each cell weighed by loss_weights."""

    def loss_weights(self, truths: numpy.ndarray, examples: Sequence[Example]) -> numpy.ndarray:
        raise NotImplementedError

    def get_loss(self, examples: Iterable[Example], scores: Floats2d) -> Tuple[float, Floats2d]:
        examples = list(examples)
        validate_examples(examples, "TextCategorizer.get_loss")
        truths, annotated = gold_truths(examples, self.labels)
        weights = annotated * self.loss_weights(truths, examples)
        difference = scores - self.model.ops.asarray2f(truths)
        d_scores = difference * self.model.ops.asarray2f(weights)
        return float((d_scores * difference).mean()), d_scores


class TrainingTextCategorizer(ClassWeightedLoss, TextCategorizer):
    """Exclusive classifier: skips documents without categories, weighs documents by gold class."""

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "textcat",
        *,
        threshold: float,
        scorer: Optional[Callable] = score_annotated_exclusive,
        class_balance: float = DEFAULT_CLASS_BALANCE,
    ) -> None:
        super().__init__(vocab, model, name, threshold=threshold, scorer=scorer)
        self.class_balance = check_class_balance(class_balance)
        self.row_weights: Dict[str, float] = {}

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
        for i, eg in enumerate(examples):
            if eg.reference.cats:
                gold = top_category(eg.reference.cats, self.labels)
                weights[i, :] = self.row_weights.get(gold, 1.0)
        return weights


class TrainingMultiLabelTextCategorizer(ClassWeightedLoss, MultiLabel_TextCategorizer):
    """Multi-label classifier: weighs each label's positives and negatives by their frequency."""

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "textcat_multilabel",
        *,
        threshold: float,
        scorer: Optional[Callable] = score_annotated_multilabel,
        class_balance: float = DEFAULT_CLASS_BALANCE,
    ) -> None:
        super().__init__(vocab, model, name, threshold=threshold, scorer=scorer)
        self.class_balance = check_class_balance(class_balance)
        self.cell_weights: Optional[numpy.ndarray] = None

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
        positive = truths >= POSITIVE
        return numpy.where(positive, self.cell_weights[1], self.cell_weights[0]).astype("f")


@registry.scorers(EXCLUSIVE_SCORER)
def make_exclusive_scorer() -> Callable[..., Dict[str, Any]]:
    return score_annotated_exclusive


@registry.scorers(MULTILABEL_SCORER)
def make_multilabel_scorer() -> Callable[..., Dict[str, Any]]:
    return score_annotated_multilabel


@Language.factory(
    EXCLUSIVE_FACTORY,
    assigns=["doc.cats"],
    default_config={
        "threshold": 0.0,
        "model": DEFAULT_SINGLE_TEXTCAT_MODEL,
        "scorer": {"@scorers": EXCLUSIVE_SCORER},
        "class_balance": DEFAULT_CLASS_BALANCE,
    },
    default_score_weights=CATS_SCORE_WEIGHTS,
)
def make_training_textcat(
    nlp: Language,
    name: str,
    model: Model[List[Doc], List[Floats2d]],
    threshold: float,
    scorer: Optional[Callable],
    class_balance: float,
) -> TrainingTextCategorizer:
    return TrainingTextCategorizer(
        nlp.vocab, model, name, threshold=threshold, scorer=scorer, class_balance=class_balance
    )


@Language.factory(
    MULTILABEL_FACTORY,
    assigns=["doc.cats"],
    default_config={
        "threshold": 0.5,
        "model": DEFAULT_MULTI_TEXTCAT_MODEL,
        "scorer": {"@scorers": MULTILABEL_SCORER},
        "class_balance": DEFAULT_CLASS_BALANCE,
    },
    default_score_weights=CATS_SCORE_WEIGHTS,
)
def make_training_multilabel_textcat(
    nlp: Language,
    name: str,
    model: Model[List[Doc], List[Floats2d]],
    threshold: float,
    scorer: Optional[Callable],
    class_balance: float,
) -> TrainingMultiLabelTextCategorizer:
    return TrainingMultiLabelTextCategorizer(
        nlp.vocab, model, name, threshold=threshold, scorer=scorer, class_balance=class_balance
    )


def stock_config(config: Config) -> Config:
    """A copy of a pipeline's config that names spaCy's own factory and scorer for each of ours,
    without class_balance: [components.textcat] factory = "training_textcat" -> "textcat"."""
    stock = config.copy()
    for block in stock["components"].values():
        if block.get("factory") in STOCK_COMPONENTS:
            factory, scorer = STOCK_COMPONENTS[block["factory"]]
            block["factory"] = factory
            block["scorer"] = {"@scorers": scorer}
            block.pop("class_balance", None)
    return stock
