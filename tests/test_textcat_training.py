"""Text classifiers in training: documents without categories neither teach nor score them,
and skewed classes are weighed by frequency."""

import numpy
import pytest
import spacy
from spacy.training import Example

from scripts.training.textcat import (
    TrainingMultiLabelTextCategorizer,
    TrainingTextCategorizer,
    balanced_weights,
    create_textcat_training_callback,
)

LABELS = ["bug", "question"]


def make_nlp(factory: str, *, class_balance: float = 0.5, gold_cats=None):
    """A blank pipeline with one text classifier, initialized on documents with `gold_cats`."""
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe(factory)
    create_textcat_training_callback(class_balance=class_balance)(nlp)
    gold_cats = gold_cats or [{"bug": 1.0, "question": 0.0}, {"bug": 0.0, "question": 1.0}]
    examples = [example(nlp, f"text {i}", cats, {}) for i, cats in enumerate(gold_cats)]
    nlp.initialize(lambda: examples)
    return nlp, pipe


def example(nlp, text, gold_cats, predicted_cats):
    gold = nlp.make_doc(text)
    gold.cats = gold_cats
    predicted = nlp.make_doc(text)
    predicted.cats = predicted_cats
    return Example(predicted, gold)


@pytest.mark.parametrize("factory", ["textcat", "textcat_multilabel"])
def test_loss_has_no_gradient_for_documents_without_categories(factory):
    nlp, pipe = make_nlp(factory)
    examples = [
        example(nlp, "It crashes", {"bug": 1.0, "question": 0.0}, {}),
        example(nlp, "Python and SQL", {}, {}),  # an entities-only document
    ]
    scores = pipe.model.ops.asarray2f(numpy.full((2, 2), 0.5, dtype="f"))
    _, gradient = pipe.get_loss(examples, scores)
    assert gradient[1].tolist() == [0.0, 0.0]
    assert gradient[0].tolist() == [-0.5, 0.5]


def test_exclusive_textcat_is_swapped_only_for_training():
    nlp, pipe = make_nlp("textcat")
    assert isinstance(pipe, TrainingTextCategorizer)
    assert nlp.config["components"]["textcat"]["factory"] == "textcat"


@pytest.mark.parametrize("factory", ["textcat", "textcat_multilabel"])
def test_score_counts_only_documents_with_categories(factory):
    nlp, pipe = make_nlp(factory)
    examples = [
        example(nlp, "It crashes", {"bug": 1.0, "question": 0.0}, {"bug": 0.9, "question": 0.1}),
        example(
            nlp, "How do I log in?", {"bug": 0.0, "question": 1.0}, {"bug": 0.2, "question": 0.8}
        ),
        # Entities-only documents: whatever the model predicts here is neither right nor wrong.
        example(nlp, "Python and SQL", {}, {"bug": 0.9, "question": 0.1}),
        example(nlp, "Five years of Java", {}, {"bug": 0.7, "question": 0.3}),
    ]
    scores = pipe.score(examples)
    assert scores["cats_macro_f"] == pytest.approx(1.0)
    assert scores["cats_macro_auc"] == pytest.approx(1.0)
    # spaCy's default scorer would have counted the two unannotated documents as false positives.
    nlp_default = spacy.blank("en")
    default = nlp_default.add_pipe(factory)
    for label in LABELS:
        default.add_label(label)
    nlp_default.initialize()
    if factory == "textcat":
        assert default.score(examples)["cats_macro_f"] < 1.0


def test_balanced_weights_favour_the_rare_class_and_keep_a_mean_of_one():
    weights = balanced_weights({"common": 3, "rare": 1}, power=1.0)
    assert weights == pytest.approx({"common": 2 / 3, "rare": 2.0})
    assert (3 * weights["common"] + weights["rare"]) / 4 == pytest.approx(1.0)
    half = balanced_weights({"common": 3, "rare": 1}, power=0.5)
    assert 1.0 < half["rare"] < 2.0 and (3 * half["common"] + half["rare"]) / 4 == pytest.approx(
        1.0
    )
    assert balanced_weights({"common": 3, "rare": 1}, power=0.0) == {"common": 1.0, "rare": 1.0}
    assert balanced_weights({"seen": 2, "unseen": 0}, power=1.0) == {"seen": 1.0, "unseen": 1.0}


SKEWED = [{"bug": 1.0, "question": 0.0}] * 3 + [{"bug": 0.0, "question": 1.0}]


def test_exclusive_loss_weighs_documents_by_their_gold_class():
    nlp, pipe = make_nlp("textcat", class_balance=1.0, gold_cats=SKEWED)
    assert isinstance(pipe, TrainingTextCategorizer)
    examples = [
        example(nlp, "It crashes", {"bug": 1.0, "question": 0.0}, {}),
        example(nlp, "How do I log in?", {"bug": 0.0, "question": 1.0}, {}),
    ]
    scores = pipe.model.ops.asarray2f(numpy.full((2, 2), 0.5, dtype="f"))
    _, gradient = pipe.get_loss(examples, scores)
    assert gradient[0].tolist() == pytest.approx([-0.5 * 2 / 3, 0.5 * 2 / 3])
    assert gradient[1].tolist() == pytest.approx([0.5 * 2.0, -0.5 * 2.0])


def test_multilabel_loss_weighs_each_labels_positives_and_negatives():
    gold_cats = [{"bug": 1.0, "question": 0.0}] * 3 + [{"bug": 0.0, "question": 1.0}]
    nlp, pipe = make_nlp("textcat_multilabel", class_balance=1.0, gold_cats=gold_cats)
    assert isinstance(pipe, TrainingMultiLabelTextCategorizer)
    examples = [example(nlp, "It crashes", {"bug": 1.0, "question": 0.0}, {})]
    scores = pipe.model.ops.asarray2f(numpy.full((1, 2), 0.5, dtype="f"))
    _, gradient = pipe.get_loss(examples, scores)
    # bug is positive in 3 of 4 documents (weight 2/3), question negative in 3 of 4 (weight 2/3).
    assert gradient[0].tolist() == pytest.approx([-0.5 * 2 / 3, 0.5 * 2 / 3])
    rare = [example(nlp, "How do I log in?", {"bug": 0.0, "question": 1.0}, {})]
    _, gradient = pipe.get_loss(rare, scores)
    assert gradient[0].tolist() == pytest.approx([0.5 * 2.0, -0.5 * 2.0])


@pytest.mark.parametrize("factory", ["textcat", "textcat_multilabel"])
def test_class_balance_zero_is_spacys_own_loss(factory):
    nlp, pipe = make_nlp(factory, class_balance=0.0, gold_cats=SKEWED)
    examples = [example(nlp, "How do I log in?", {"bug": 0.0, "question": 1.0}, {})]
    scores = pipe.model.ops.asarray2f(numpy.array([[0.7, 0.2]], dtype="f"))
    loss, gradient = pipe.get_loss(examples, scores)
    assert gradient[0].tolist() == pytest.approx([0.7, -0.8])
    assert loss == pytest.approx((0.7**2 + 0.8**2) / 2)


def test_class_balance_outside_zero_to_one_is_refused():
    with pytest.raises(ValueError, match="class_balance 2"):
        create_textcat_training_callback(class_balance=2)
