"""The multi-label threshold is chosen on dev data and stored where spaCy reads it back."""

import random

import pytest
import spacy
from spacy.tokens import DocBin
from spacy.training import Example

from scripts.scoring.metrics import CatRow
from scripts.training.thresholds import (
    best_threshold,
    multilabel_components,
    store_threshold,
    tune_thresholds,
)

LABELS = ("bug", "docs")


def row(gold, scores):
    return CatRow(text="", gold=dict(zip(LABELS, gold)), scores=dict(zip(LABELS, scores)))


def test_best_threshold_maximizes_macro_f():
    # Positives score 0.3-0.4 and negatives 0.1-0.2: only a cut between them gets every label right.
    rows = [
        row((True, False), (0.4, 0.1)),
        row((False, True), (0.2, 0.3)),
        row((False, False), (0.1, 0.2)),
    ]
    threshold, macro_f = best_threshold(rows=rows, labels=LABELS, previous=0.5)
    assert 0.2 < threshold <= 0.3
    assert macro_f == pytest.approx(1.0)


def test_best_threshold_keeps_the_previous_one_on_ties():
    rows = [row((True, False), (0.9, 0.1)), row((False, True), (0.1, 0.9))]
    threshold, _ = best_threshold(rows=rows, labels=LABELS, previous=0.5)
    assert threshold == 0.5


def train_multilabel(tmp_path):
    """A small bag-of-words multi-label model saved to disk, and a dev DocBin for it."""
    nlp = spacy.blank("en")
    bow = {
        "@architectures": "spacy.TextCatBOW.v3",
        "exclusive_classes": False,
        "ngram_size": 1,
        "no_output_layer": False,
    }
    pipe = nlp.add_pipe("textcat_multilabel", config={"model": bow})
    texts = {
        "it crashes on start": {"bug": 1.0, "docs": 0.0},
        "typo in the readme": {"bug": 0.0, "docs": 1.0},
        "the tutorial page crashes": {"bug": 1.0, "docs": 1.0},
        "thanks for the release": {"bug": 0.0, "docs": 0.0},
    }
    examples = []
    for text, cats in texts.items():
        doc = nlp.make_doc(text)
        doc.cats = cats
        examples.append(Example(nlp.make_doc(text), doc))
    optimizer = nlp.initialize(lambda: examples)
    random.seed(0)
    for _ in range(5):
        nlp.update(examples, sgd=optimizer)
    model_dir = tmp_path / "model-best"
    nlp.to_disk(model_dir)
    dev = DocBin(store_user_data=True)
    for eg in examples:
        dev.add(eg.reference)
    dev.add(nlp.make_doc("entities only, no categories"))
    dev.to_disk(tmp_path / "dev.spacy")
    return model_dir, pipe


def test_tune_thresholds_stores_a_threshold_at_least_as_good_on_dev(tmp_path):
    model_dir, _ = train_multilabel(tmp_path)
    assert multilabel_components(model_dir) == ["textcat_multilabel"]
    [tuned] = tune_thresholds(model_dir, tmp_path / "dev.spacy")
    assert tuned.n_docs == 4  # the document without categories is not scored
    assert tuned.previous == 0.5
    assert tuned.macro_f >= tuned.macro_f_before
    reloaded = spacy.load(model_dir)
    assert reloaded.get_pipe("textcat_multilabel").cfg["threshold"] == pytest.approx(
        tuned.threshold
    )
    assert reloaded.config["components"]["textcat_multilabel"]["threshold"] == pytest.approx(
        tuned.threshold
    )


def test_store_threshold_round_trips(tmp_path):
    model_dir, _ = train_multilabel(tmp_path)
    store_threshold(model_dir, "textcat_multilabel", 0.35)
    reloaded = spacy.load(model_dir)
    assert reloaded.get_pipe("textcat_multilabel").cfg["threshold"] == pytest.approx(0.35)
    assert reloaded.config["components"]["textcat_multilabel"]["threshold"] == pytest.approx(0.35)


def test_models_without_a_multilabel_classifier_are_left_alone(tmp_path):
    nlp = spacy.blank("en")
    nlp.add_pipe("textcat").add_label("a")
    nlp.get_pipe("textcat").add_label("b")
    nlp.initialize()
    nlp.to_disk(tmp_path / "model")
    before = (tmp_path / "model" / "config.cfg").read_bytes()
    assert tune_thresholds(tmp_path / "model", tmp_path / "missing.spacy") == []
    assert (tmp_path / "model" / "config.cfg").read_bytes() == before
