"""scripts.bench_active: the uncertainty order picks what the model is least sure of, the saving is
read off the mean curves, a bad plan is one line, and a run on a tiny model prints its rounds,
keeps them per seed and draws the curves."""

import json
import os
import subprocess
import sys

import pytest
import spacy
from spacy.tokens import DocBin
from typer.testing import CliRunner

from scripts.bench.active import (
    RANDOM,
    UNCERTAINTY,
    Plan,
    check_plan,
    mean_curves,
    pick_next,
    pool_uncertainties,
    saving,
    shuffled_pool,
)
from scripts.bench_active import app
from scripts.common.errors import UserError
from scripts.inference.predict import load_predictor, predict_texts, task_score
from tests.helpers import PROJECT_ROOT, write_tiny_bert


def test_random_takes_the_next_in_order_and_uncertainty_the_least_sure():
    unlabelled = [7, 3, 9, 4, 1]
    assert pick_next(RANDOM, unlabelled=unlabelled, batch=2) == [7, 3]
    unsure = [0.1, 0.9, None, 0.9, 0.5]
    # the two at 0.9 first, in the random order (3 before 4); a text without a score counts sure
    assert pick_next(UNCERTAINTY, unlabelled=unlabelled, batch=3, uncertainties=unsure) == [3, 4, 1]
    assert pick_next(UNCERTAINTY, unlabelled=unlabelled, batch=9, uncertainties=unsure)[-1] == 9


def test_the_pool_order_is_the_seeds():
    docs = list(range(20))
    assert shuffled_pool(docs, size=5, seed=1) == shuffled_pool(docs, size=5, seed=1)
    assert shuffled_pool(docs, size=5, seed=1) != shuffled_pool(docs, size=5, seed=2)
    assert len(set(shuffled_pool(docs, size=20, seed=3))) == 20


@pytest.mark.parametrize(
    "changes, says",
    [
        ({"batch": 30, "rounds": 4}, "labels 120 documents but --pool is 100"),
        ({"pool": 500}, "holds 200 documents"),
        ({"components": "parser"}, "--components 'parser'"),
        ({"strategies": ("random", "smart")}, "pass some of random, uncertainty"),
        ({"rule": "gini"}, "--uncertainty 'gini' is not a rule"),
        ({"batch": 0}, "at least 1"),
    ],
)
def test_a_plan_the_pool_cannot_carry_is_one_line(tmp_path, changes, says):
    plan = Plan(**{"components": "textcat", "pool": 100, "batch": 10, "rounds": 5, **changes})
    with pytest.raises(UserError, match=says) as caught:
        check_plan(plan, pool_size=200, pool_path=tmp_path / "pool.spacy")
    assert "\n" not in str(caught.value)


def rounds_of(strategy, scores, *, seed=0, batch=10):
    return [
        {"strategy": strategy, "round": i, "annotations": batch * i, "score": s, "seed": seed}
        for i, s in enumerate(scores, 1)
    ]


def test_the_saving_is_read_off_the_mean_curves_over_seeds():
    rounds = (
        rounds_of(RANDOM, [0.2, 0.4, 0.5, 0.6, 0.7], seed=0)
        + rounds_of(RANDOM, [0.2, 0.4, 0.5, 0.6, 0.5], seed=1)
        + rounds_of(UNCERTAINTY, [0.2, 0.5, 0.6, 0.7, 0.8], seed=0)
        + rounds_of(UNCERTAINTY, [0.2, 0.4, 0.6, 0.7, 0.8], seed=1)
    )
    curves = {curve.strategy: curve for curve in mean_curves(rounds)}
    assert curves[RANDOM].mean[-1] == pytest.approx(0.6)
    assert curves[UNCERTAINTY].low[1] == 0.4 and curves[UNCERTAINTY].high[1] == 0.5
    found = saving(rounds)
    # random's last mean, 0.6 at 50 annotations, is reached by uncertainty's mean at 30
    assert found["target"] == pytest.approx(0.6)
    assert found["random_annotations"] == 50
    assert found["uncertainty_annotations"] == 30
    assert found["saving"] == pytest.approx(0.4)
    assert found["uncertainty_at_target"] == pytest.approx(0.8)
    assert found["seeds"] == 2
    # between 20 (mean 0.45) and 30 (0.6): straight, the curve reaches 0.6 at 30 exactly
    assert found["interpolated_annotations"] == pytest.approx(30.0)


def test_the_interpolated_saving_lies_between_two_measured_rounds():
    found = saving(rounds_of(RANDOM, [0.1, 0.3, 0.5]) + rounds_of(UNCERTAINTY, [0.1, 0.4, 0.6]))
    # uncertainty: 0.4 at 20, 0.6 at 30; the target 0.5 halfway, at 25 of random's 30
    assert found["uncertainty_annotations"] == 30 and found["saving"] == pytest.approx(0.0)
    assert found["interpolated_annotations"] == pytest.approx(25.0)
    assert found["interpolated_saving"] == pytest.approx(1 / 6)


def test_no_saving_when_uncertainty_never_reaches_the_random_orders_last_score():
    found = saving(rounds_of(RANDOM, [0.3, 0.6]) + rounds_of(UNCERTAINTY, [0.3, 0.5]))
    assert found["saving"] is None and found["uncertainty_annotations"] is None
    assert found["uncertainty_at_target"] == pytest.approx(0.5)
    assert saving(rounds_of(RANDOM, [0.3]))["saving"] is None  # nothing to compare with


def test_pool_uncertainties_are_the_label_studio_push_scores(tiny_pipeline):
    texts = ["Python and SQL are required.", "We offer free lunch.", "Build Excel dashboards."]
    found = pool_uncertainties(tiny_pipeline, texts, rule="margin", gpu_id="-1")
    predictor = load_predictor(str(tiny_pipeline), gpu_id="-1")
    expected = [
        1.0 - task_score(p, predictor=predictor)
        for p in predict_texts(predictor, texts, parse_scores=True)
    ]
    assert found == pytest.approx(expected)
    assert all(0.0 <= value <= 1.0 for value in found)


def test_a_pool_that_is_not_a_docbin_is_one_line(tmp_path):
    pool = tmp_path / "pool.jsonl"
    pool.write_text('{"text": "a"}\n', encoding="utf8")
    result = CliRunner().invoke(
        app,
        [str(pool), str(pool), "--components", "textcat", "--pool", "4", "--batch", "2"]
        + ["--rounds", "2", "--output", str(tmp_path / "out")],
    )
    assert result.exit_code == 1
    assert "not a .spacy file; convert it first with python -m scripts.convert" in result.output
    assert not (tmp_path / "out").exists()


TOPICS = {
    "bug": ["it crashes on start", "segfault when saving", "the app freezes", "error on load"],
    "docs": ["typo in the readme", "the tutorial is outdated", "missing docstring", "bad link"],
}


def write_docbin(path, n, *, offset=0):
    nlp = spacy.blank("en")
    docbin = DocBin()
    for i in range(offset, offset + n):
        label = sorted(TOPICS)[i % 2]
        doc = nlp.make_doc(f"{TOPICS[label][i % 4]} {i}")
        doc.cats = {name: float(name == label) for name in TOPICS}
        docbin.add(doc)
    docbin.to_disk(path)
    return path


@pytest.mark.slow
def test_a_run_prints_each_round_keeps_it_per_seed_and_draws_the_curves(tmp_path):
    bert = write_tiny_bert(tmp_path / "tiny-bert")
    pool = write_docbin(tmp_path / "pool.spacy", 30)
    test = write_docbin(tmp_path / "test.spacy", 8, offset=100)
    output = tmp_path / "active"
    command = [sys.executable, "-m", "scripts.bench_active", str(pool), str(test)]
    command += ["--components", "textcat", "--pool", "24", "--batch", "10", "--rounds", "2"]
    command += ["--epochs", "1", "--transformer", str(bert), "--gpu-id", "-1"]
    command += ["--output", str(output)]
    for seed in ("0", "1"):
        result = subprocess.run(
            [*command, "--seed", seed],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stderr[-3000:]
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    rounds, summary = lines[:-1], lines[-1]
    assert [(r["strategy"], r["round"], r["annotations"]) for r in rounds] == [
        ("random", 1, 10),
        ("random", 2, 20),
        ("uncertainty", 1, 10),
        ("uncertainty", 2, 20),
    ]
    assert {r["seed"] for r in rounds} == {1} and {r["figure"] for r in rounds} == {"cats_macro_f"}
    assert rounds[0]["score"] == rounds[2]["score"]  # round 1 is one training for both
    assert rounds[0]["words"] == rounds[2]["words"] > 0
    assert all(0.0 <= r["score"] <= 1.0 for r in rounds)
    for seed in (0, 1):
        kept = (output / f"seed-{seed}" / "rounds.jsonl").read_text(encoding="utf8").splitlines()
        assert len(kept) == 4
    assert summary["saving"]["seeds"] == 2
    assert json.loads((output / "saving.json").read_text(encoding="utf8")) == summary["saving"]
    assert (output / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the round's pipelines are removed once used; what they scored stays
    assert not list(output.glob("seed-*/*/model-best"))
    assert (output / "seed-1" / "uncertainty-2" / "evaluation" / "metrics.json").is_file()
    labelled = DocBin().from_disk(output / "seed-1" / "uncertainty-2" / "annotated.spacy")
    assert len(labelled) == 20
