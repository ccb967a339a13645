"""Bootstrap intervals and the paired bootstrap (scripts/scoring/bootstrap.py) on hand-made
documents, and bench_train's summary over seeds."""

from __future__ import annotations

import random

import pytest
import spacy

from scripts.bench.recipe import across_seeds
from scripts.bench_train import parse_seeds
from scripts.common.errors import UserError
from scripts.scoring.bootstrap import FIGURES, DocUnits, intervals, paired
from scripts.scoring.metrics import Tasks, evaluate_docs

TASKS = Tasks(ent_labels=("PER", "LOC"), cat_labels=("A", "B"))
TEXT = "Alice met Bob in Paris today"


def docs(n: int, *, right: float, seed: int):
    """n gold docs (two PER entities; category A or B in turn) and predictions that are right
    with probability `right`."""
    nlp, rng = spacy.blank("en"), random.Random(seed)
    golds, preds = [], []
    for i in range(n):
        gold = nlp(TEXT)
        gold.ents = [gold.char_span(0, 5, "PER"), gold.char_span(10, 13, "PER")]
        gold.cats = {"A": float(i % 2), "B": float(1 - i % 2)}
        pred = nlp(TEXT)
        hit = rng.random() < right
        pred.ents = [pred.char_span(0, 5, "PER"), pred.char_span(10, 13, "PER" if hit else "LOC")]
        top = i % 2 if rng.random() < right else 1 - i % 2
        pred.cats = {"A": 0.8 if top else 0.2, "B": 0.2 if top else 0.8}
        golds.append(gold)
        preds.append(pred)
    return golds, preds


def test_figures_of_every_document_are_metrics_json_s():
    golds, preds = docs(30, right=0.6, seed=0)
    units = DocUnits.of(golds=golds, preds=preds, tasks=TASKS)
    metrics = evaluate_docs(golds=golds, preds=preds, tasks=TASKS).metrics
    figures = units.figures(range(30))
    for task in ("ents", "textcat"):
        for key in FIGURES[task]:
            if "." not in key:
                assert figures[task][key] == metrics[task][key], (task, key)


def test_intervals_hold_the_figure_narrow_with_more_documents_and_repeat_by_seed():
    widths = []
    for n_docs in (20, 180):
        golds, preds = docs(n_docs, right=0.7, seed=1)
        units = DocUnits.of(golds=golds, preds=preds, tasks=TASKS)
        found = intervals(units, n=100, seed=0)
        full = units.figures(range(n_docs))
        low, high = found["ents"]["f"]
        assert low <= full["ents"]["f"] <= high
        assert found["textcat"]["accuracy"][0] <= full["textcat"]["accuracy"]
        widths.append(high - low)
        if n_docs == 20:
            assert intervals(units, n=100, seed=0) == found
            assert intervals(units, n=100, seed=1) != found
    assert widths[1] < widths[0] / 2  # 9 times the documents: about a third of the width


def test_paired_bootstrap_finds_a_real_difference_and_not_a_made_up_one():
    golds, weak = docs(120, right=0.55, seed=2)
    _, strong = docs(120, right=0.9, seed=3)
    a = DocUnits.of(golds=golds, preds=weak, tasks=TASKS)
    b = DocUnits.of(golds=golds, preds=strong, tasks=TASKS)
    found = paired(a, b, n=100)
    assert found["ents"]["f"]["significant"] and found["ents"]["f"]["difference"] > 0.1
    assert found["ents"]["f"]["p"] < 0.01
    same = paired(a, a, n=50)
    assert same["textcat"]["accuracy"] == {
        "a": same["textcat"]["accuracy"]["a"],
        "b": same["textcat"]["accuracy"]["a"],
        "difference": 0.0,
        "interval": [0.0, 0.0],
        "p": 1.0,
        "significant": False,
    }
    _, other_weak = docs(120, right=0.55, seed=4)
    c = DocUnits.of(golds=golds, preds=other_weak, tasks=TASKS)
    assert not paired(a, c, n=100)["ents"]["f"]["significant"]  # both right 55% of the time


def test_across_seeds_gives_mean_and_standard_deviation():
    results = {
        0: {"ents": {"p": 0.5, "r": 0.5, "f": 0.6}},
        1: {"ents": {"p": 0.5, "r": 0.5, "f": 0.8}},
        2: {"ents": {"p": 0.5, "r": 0.5, "f": 0.7}},
    }
    found = across_seeds(results)
    assert found["seeds"] == [0, 1, 2]
    assert found["ents.f"] == {"mean": 0.7, "std": 0.1, "values": [0.6, 0.8, 0.7]}
    assert "textcat.accuracy" not in found


@pytest.mark.parametrize("text, seeds", [("", []), ("0,1, 2", [0, 1, 2])])
def test_seeds_are_parsed(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text, message", [("0,x", "not a comma-separated"), ("1,1", "repeats")])
def test_bad_seeds_are_refused_in_one_line(text, message):
    with pytest.raises(UserError, match=message):
        parse_seeds(text)
