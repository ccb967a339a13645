"""Documents without categories must not teach or score the text classifier."""
import numpy
import pytest
import spacy
from spacy.training import Example

from scripts.partial_annotation import MissingCategoriesTextCategorizer, create_partial_annotation_callback

LABELS = ["bug", "question"]


def make_nlp(factory: str):
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe(factory)
    for label in LABELS:
        pipe.add_label(label)
    create_partial_annotation_callback()(nlp)
    nlp.initialize()
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
    assert isinstance(pipe, MissingCategoriesTextCategorizer)
    assert nlp.config["components"]["textcat"]["factory"] == "textcat"


@pytest.mark.parametrize("factory", ["textcat", "textcat_multilabel"])
def test_score_counts_only_documents_with_categories(factory):
    nlp, pipe = make_nlp(factory)
    examples = [
        example(nlp, "It crashes", {"bug": 1.0, "question": 0.0}, {"bug": 0.9, "question": 0.1}),
        example(nlp, "How do I log in?", {"bug": 0.0, "question": 1.0}, {"bug": 0.2, "question": 0.8}),
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
