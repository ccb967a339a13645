"""Text classifiers in training: documents without categories neither teach nor score them,
skewed classes are weighed by frequency, and the trained pipeline loads with spaCy alone."""

import json

import numpy
import pytest
import spacy
from spacy.language import Language
from spacy.pipeline.textcat import TextCategorizer
from spacy.pipeline.textcat_multilabel import MultiLabel_TextCategorizer
from spacy.training import Example
from thinc.api import Config

from scripts.training.run import use_stock_components
from scripts.training.textcat import (
    EXCLUSIVE_FACTORY,
    EXCLUSIVE_SCORER,
    MULTILABEL_FACTORY,
    STOCK_COMPONENTS,
    TrainingMultiLabelTextCategorizer,
    TrainingTextCategorizer,
    balanced_weights,
    check_class_balance,
    stock_config,
)
from tests.helpers import run_outside_repo

LABELS = ["bug", "question"]
# spaCy's name for each text classifier -> the factory this project trains it with.
FACTORIES = {"textcat": EXCLUSIVE_FACTORY, "textcat_multilabel": MULTILABEL_FACTORY}
STOCK_CLASSES = {"textcat": TextCategorizer, "textcat_multilabel": MultiLabel_TextCategorizer}


def make_nlp(stock: str, *, class_balance: float = 0.5, gold_cats=None):
    """A blank pipeline with one training text classifier (named as spaCy's), initialized on
    documents with `gold_cats`."""
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe(FACTORIES[stock], name=stock, config={"class_balance": class_balance})
    gold_cats = gold_cats or [{"bug": 1.0, "question": 0.0}, {"bug": 0.0, "question": 1.0}]
    examples = [example(nlp, f"text {i}", cats, {}) for i, cats in enumerate(gold_cats)]
    nlp.initialize(lambda: examples)
    return nlp, pipe


def stock_pipe(stock: str):
    """spaCy's own component of that name with LABELS, to compare against."""
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe(stock)
    for label in LABELS:
        pipe.add_label(label)
    nlp.initialize()
    return pipe


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


def test_training_textcat_is_spacys_textcat_until_the_config_names_spacys_factory():
    nlp, pipe = make_nlp("textcat")
    assert isinstance(pipe, TrainingTextCategorizer) and isinstance(pipe, TextCategorizer)
    assert "class_balance" not in pipe.cfg  # saved as spaCy saves its own textcat
    block = nlp.config["components"]["textcat"]
    assert block["factory"] == EXCLUSIVE_FACTORY
    assert block["scorer"] == {"@scorers": EXCLUSIVE_SCORER}
    stock = stock_config(nlp.config)["components"]["textcat"]
    assert stock["factory"] == "textcat" and "class_balance" not in stock
    assert stock["scorer"] == Language.get_factory_meta("textcat").default_config["scorer"]
    assert stock["model"] == block["model"]
    assert nlp.config["components"]["textcat"]["factory"] == EXCLUSIVE_FACTORY  # a copy changed


@pytest.mark.parametrize("stock", ["textcat", "textcat_multilabel"])
def test_factories_keep_spacys_defaults_scores_and_stock_names(stock):
    ours = Language.get_factory_meta(FACTORIES[stock])
    spacys = Language.get_factory_meta(stock)
    assert ours.default_score_weights == spacys.default_score_weights
    assert ours.assigns == spacys.assigns
    settings = {
        k: v for k, v in ours.default_config.items() if k not in ("scorer", "class_balance")
    }
    assert settings == {k: v for k, v in spacys.default_config.items() if k != "scorer"}
    assert STOCK_COMPONENTS[FACTORIES[stock]] == (
        stock,
        spacys.default_config["scorer"]["@scorers"],
    )


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
    # Over the annotated documents the score is spaCy's own.
    default = stock_pipe(factory)
    assert scores == default.score(examples[:2])
    # spaCy's default scorer would have counted the two unannotated documents as false positives.
    if factory == "textcat":
        assert default.score(examples)["cats_macro_f"] < 1.0


def test_balanced_weights_favour_the_rare_class_and_keep_a_mean_of_one():
    weights = balanced_weights({"common": 3, "rare": 1}, power=1.0)
    assert weights == pytest.approx({"common": 2 / 3, "rare": 2.0})
    assert (3 * weights["common"] + weights["rare"]) / 4 == pytest.approx(1.0)
    half = balanced_weights({"common": 3, "rare": 1}, power=0.5)
    assert 1.0 < half["rare"] < 2.0
    assert (3 * half["common"] + half["rare"]) / 4 == pytest.approx(1.0)
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
    assert isinstance(pipe, MultiLabel_TextCategorizer)
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
    examples = [
        example(nlp, "How do I log in?", {"bug": 0.0, "question": 1.0}, {}),
        example(nlp, "It crashes", {"bug": 1.0, "question": 0.0}, {}),
    ]
    scores = pipe.model.ops.asarray2f(numpy.array([[0.7, 0.2], [0.4, 0.9]], dtype="f"))
    loss, gradient = pipe.get_loss(examples, scores)
    assert gradient[0].tolist() == pytest.approx([0.7, -0.8])
    assert loss == pytest.approx((0.7**2 + 0.8**2 + 0.6**2 + 0.9**2) / 4)
    spacys_loss, spacys_gradient = stock_pipe(factory).get_loss(examples, scores)
    assert loss == pytest.approx(spacys_loss)
    numpy.testing.assert_allclose(gradient, spacys_gradient, rtol=1e-6)


def test_class_balance_outside_zero_to_one_is_refused():
    with pytest.raises(ValueError, match=r"class_balance 2 is outside 0\.\.1"):
        check_class_balance(2)
    with pytest.raises(ValueError, match="class_balance -0.5 is outside"):
        spacy.blank("en").add_pipe(MULTILABEL_FACTORY, config={"class_balance": -0.5})
    assert check_class_balance(0.0) == 0.0 and check_class_balance(1.0) == 1.0


TEXTS = ["It crashes on start", "How do I log in?", "Docs are missing a page", "Python and SQL"]


def trained_pipeline():
    """A blank pipeline with both training text classifiers, a few updates on TEXTS."""
    nlp = spacy.blank("en")
    nlp.add_pipe(EXCLUSIVE_FACTORY, name="textcat")
    nlp.add_pipe(MULTILABEL_FACTORY, name="textcat_multilabel", config={"class_balance": 1.0})
    gold = [
        {"bug": 1.0, "question": 0.0},
        {"bug": 0.0, "question": 1.0},
        {"bug": 1.0, "question": 0.0},
        {},  # entities only: no categories
    ]
    examples = [
        Example.from_dict(nlp.make_doc(text), {"cats": cats}) for text, cats in zip(TEXTS, gold)
    ]
    spacy.util.fix_random_seed(0)
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(5):
        nlp.update(examples, sgd=optimizer)
    return nlp


def test_stock_pipeline_serializes_like_the_training_one(tmp_path):
    nlp = trained_pipeline()
    nlp.to_disk(tmp_path / "model")
    use_stock_components(tmp_path / "model")
    loaded = spacy.load(tmp_path / "model")
    config = Config().from_disk(tmp_path / "model" / "config.cfg", interpolate=False)
    for name, stock_class in STOCK_CLASSES.items():
        assert config["components"][name]["factory"] == name
        assert type(loaded.get_pipe(name)) is stock_class
        saved = nlp.get_pipe(name).to_bytes(exclude=["vocab"])
        assert loaded.get_pipe(name).to_bytes(exclude=["vocab"]) == saved


@pytest.mark.slow
def test_trained_pipeline_loads_with_spacy_alone_and_predicts_the_same(tmp_path):
    nlp = trained_pipeline()
    before = [doc.cats for doc in nlp.pipe(TEXTS)]
    nlp.to_disk(tmp_path / "model")
    use_stock_components(tmp_path / "model")
    script = (
        "import json, sys, spacy\n"
        "nlp = spacy.load(sys.argv[1])\n"
        "assert not [m for m in sys.modules if m.split('.')[0] == 'scripts'], 'project code'\n"
        "print(json.dumps([doc.cats for doc in nlp.pipe(json.loads(sys.argv[2]))]))\n"
    )
    after = run_outside_repo(script, str(tmp_path / "model"), json.dumps(TEXTS), cwd=tmp_path)
    assert len(after) == len(before)
    for old, new in zip(before, after):
        assert new.keys() == old.keys() == {"bug", "question"}
        assert new == pytest.approx(old, abs=1e-6)
