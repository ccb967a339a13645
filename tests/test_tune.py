"""scripts.tune: the search space file read and applied to configs/base.cfg, and searches on a tiny
BERT: trials differ, the median pruner stops a trial that learns nothing, a rerun resumes the
study, the best config trains with the train step, and Ray Tune runs the same search."""

from __future__ import annotations

import json
import sys
from functools import partial
from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin
from spacy.util import load_config
from typer.testing import CliRunner

from scripts.common.errors import UserError
from scripts.training.config import make_config
from scripts.tuning.search import TuneOptions, check_options
from scripts.tuning.space import apply_values, read_space
from scripts.tuning.trial import TrialSetup, write_trial_config
from tests.helpers import PROJECT_ROOT, write_tiny_bert

BASE = PROJECT_ROOT / "configs" / "base.cfg"
SPACE = PROJECT_ROOT / "configs" / "search_space.cfg"
CUES = {"bug": "crash", "docs": "typo", "question": "how"}
# Trials that train: learning rate 0 learns nothing, 0.01 learns the cue words within 2 epochs;
# dropout is continuous, so two trials the sampler picks differ.
SMALL_SPACE = """
[pruner]
startup_trials = 1
min_evaluations = 1

[parameters]

[parameters.learn_rate]
settings = ["training.optimizer.learn_rate.initial_rate"]
choices = [0.0, 0.01]

[parameters.dropout]
settings = ["training.dropout"]
low = 0.0
high = 0.2
"""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded tiny BERT and train/dev splits whose label is told by one cue word."""
    path = tmp_path_factory.mktemp("tune-corpus")
    spacy.util.fix_random_seed(0)  # the same BERT weights every run
    write_tiny_bert(path / "bert")
    nlp, labels = spacy.blank("en"), sorted(CUES)
    for split, n in (("train", 30), ("dev", 9)):
        db = DocBin()
        for i in range(n):
            label = labels[i % 3]
            doc = nlp(f"{CUES[label]} {CUES[label]} number {i}")
            doc.cats = {name: float(name == label) for name in labels}
            db.add(doc)
        db.to_disk(path / f"{split}.spacy")
    (path / "space.cfg").write_text(SMALL_SPACE, encoding="utf8")
    return path


def space_of(components: list[str], *, path: Path = SPACE):
    return read_space(path, base=load_config(BASE, interpolate=False), components=components)


def write_space(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "space.cfg"
    path.write_text("[parameters]\n" + text, encoding="utf8")
    return path


def test_the_search_space_keeps_only_what_the_pipeline_trains():
    with_textcat = space_of(["ner", "textcat"])
    names = {p.name: p for p in with_textcat.parameters}
    assert set(names) == {
        "learn_rate",
        "warmup",
        "epochs",
        "dropout",
        "batch_size",
        "grad_norm",
        "spans",
        "class_balance",
        "textcat_architecture",
    }
    assert names["class_balance"].settings == ("components.textcat.class_balance",)
    assert names["textcat_architecture"].settings == ("components.textcat.model",)
    assert names["warmup"].high == 0.3  # as written, not spaCy's parse 0.30000000000000004
    ner_only = {p.name for p in space_of(["ner"]).parameters}
    assert ner_only == set(names) - {"class_balance", "textcat_architecture"}


def test_values_set_the_config_and_blocks_keep_the_listener():
    space = space_of(["textcat_multilabel"])
    base = load_config(BASE, interpolate=False)
    values = {
        "learn_rate": 0.0002,
        "warmup": 0.2,
        "epochs": 7,
        "dropout": 0.15,
        "batch_size": 500,
        "grad_norm": 0.5,
        "spans": "256/192",
        "class_balance": 0.8,
        "textcat_architecture": "ensemble",
    }
    config, schedule = apply_values(base, values, space=space)
    assert (schedule.epochs, schedule.warmup) == (7, 0.2)
    assert config["training"]["optimizer"]["learn_rate"]["initial_rate"] == 0.0002
    assert config["training"]["optimizer"]["max_grad_norm"] == 0.5
    assert config["training"]["batcher"]["size"] == 500
    spans = config["components"]["transformer"]["model"]["get_spans"]
    assert (spans["window"], spans["stride"]) == (256, 192)
    multilabel = config["components"]["textcat_multilabel"]
    assert multilabel["class_balance"] == 0.8
    assert config["components"]["textcat"]["class_balance"] == 0.5  # not trained: untouched
    model = multilabel["model"]
    assert model["@architectures"] == "spacy.TextCatEnsemble.v2"
    assert model["tok2vec"] == base["components"]["textcat_multilabel"]["model"]["tok2vec"]
    assert model["linear_model"]["exclusive_classes"] is False  # carried into the nested block
    assert "exclusive_classes" not in model  # TextCatEnsemble.v2 does not take it
    assert base["components"]["textcat_multilabel"]["model"]["@architectures"] == (
        "spacy.TextCatReduce.v1"
    )  # the base config is left as it was


@pytest.mark.parametrize("architecture", ["mean_max", "first_mean_max", "attention", "ensemble"])
def test_every_text_classifier_of_the_space_builds(architecture, corpus, tmp_path):
    space = space_of(["textcat"])
    values = {p.name: next(iter(p.choices)) if p.choices else p.low for p in space.parameters}
    values.update(textcat_architecture=architecture, warmup=0.25, epochs=4)
    setup = TrialSetup(
        base_path=BASE,
        space=space,
        components="textcat",
        transformer=str(corpus / "bert"),
        lang="en",
        train=corpus / "train.spacy",
        dev=corpus / "dev.spacy",
    )
    path = write_trial_config(values, setup=setup, output=tmp_path / "c.cfg", workdir=tmp_path)
    config = load_config(path, interpolate=False)
    nlp = spacy.util.load_model_from_config(config, auto_fill=False, validate=True)
    assert nlp.pipe_names == ["transformer", "textcat"]
    rate = config["training"]["optimizer"]["learn_rate"]
    assert rate["warmup_steps"] == round(0.25 * rate["total_steps"])
    # Counted in steps: 4 epochs of the corpus's one batch.
    assert (config["training"]["max_epochs"], config["training"]["max_steps"]) == (0, 4)
    assert rate["total_steps"] == 4


@pytest.mark.parametrize(
    "text, message",
    [
        (
            '[parameters.x]\nsettings = ["training.droput"]\nlow = 0\nhigh = 1\n',
            r"\[parameters\.x\]: the base config has no setting training\.droput",
        ),
        (
            '[parameters.x]\nsettings = ["training.dropout"]\nlow = 0.3\nhigh = 0.1\n',
            r"\[parameters\.x\]: needs low < high",
        ),
        (
            '[parameters.x]\nsettings = ["training.dropout", "training.seed"]\n'
            "choices = [[0.1, 1], [0.2]]\n",
            r"the choice \[0\.2\] has 1 values for 2 settings",
        ),
        (
            '[parameters.x]\nsettings = ["components.textcat.model"]\n[parameters.x.choices]\n'
            '[parameters.x.choices.a]\n@architectures = "spacy.TextCatNope.v1"\n',
            r"choice a: @architectures 'spacy\.TextCatNope\.v1' is not a registered architecture",
        ),
        (
            '[parameters.x]\nsettings = ["schedule.epoch"]\nlow = 1\nhigh = 3\n',
            r"schedule\.epoch is not one of schedule\.epochs, schedule\.warmup",
        ),
    ],
)
def test_a_bad_search_space_says_where_and_what(text, message, tmp_path):
    path = write_space(tmp_path, text)
    with pytest.raises(UserError, match=message) as err:
        space_of(["ner", "textcat"], path=path)
    assert str(path) in str(err.value)


def test_a_trial_config_is_the_config_steps_with_the_values_set(corpus, tmp_path):
    setup = TrialSetup(
        base_path=BASE,
        space=space_of(["textcat"], path=corpus / "space.cfg"),
        components="textcat",
        transformer=str(corpus / "bert"),
        lang="en",
        train=corpus / "train.spacy",
        dev=corpus / "dev.spacy",
    )
    trial = write_trial_config(
        {"learn_rate": 0.01, "dropout": 0.05},
        setup=setup,
        output=tmp_path / "trial.cfg",
        workdir=tmp_path,
    )
    make_config(
        base_path=BASE,
        output=tmp_path / "step.cfg",
        components="textcat",
        transformer=str(corpus / "bert"),
        lang="en",
        train=corpus / "train.spacy",
        overrides={"training.optimizer.learn_rate.initial_rate": 0.01, "training.dropout": 0.05},
    )
    assert trial.read_text(encoding="utf8") == (tmp_path / "step.cfg").read_text(encoding="utf8")


def test_an_override_of_a_searched_setting_is_refused(corpus, tmp_path):
    options = TuneOptions(
        base_path=BASE,
        output=tmp_path / "tuned.cfg",
        space_path=SPACE,
        trials=1,
        components="textcat",
        train=corpus / "train.spacy",
        dev=corpus / "dev.spacy",
        overrides={"training.dropout": 0.2},
    )
    with pytest.raises(UserError, match=r"--training\.dropout is searched"):
        check_options(options)


def test_without_optuna_the_command_says_what_to_install(corpus, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna now raises ImportError
    result = run_tune(corpus, tmp_path, "--trials", "1")
    assert result.exit_code == 1
    assert "needs Optuna" in result.output and "requirements/tune.txt" in result.output


def run_tune(corpus: Path, out: Path, *args: str):
    from scripts.tune import app

    return CliRunner().invoke(
        app,
        [
            str(BASE),
            str(out / "tuned.cfg"),
            "--space",
            str(corpus / "space.cfg"),
            "--components",
            "textcat",
            "--transformer",
            str(corpus / "bert"),
            "--train",
            str(corpus / "train.spacy"),
            "--dev",
            str(corpus / "dev.spacy"),
            "--output-dir",
            str(out / "tune"),
            "--max-epochs",
            "3",
            "--training.batcher.size",
            "20",
            *args,
        ],
    )


def study_of(out: Path):
    import optuna

    from scripts.tuning.search import storage_url

    return optuna.load_study(study_name="recipe", storage=storage_url(out / "tune"))


def enqueue_learning_and_not(out: Path) -> None:
    """A study whose first trial learns and whose second cannot (learning rate 0)."""
    import optuna

    from scripts.tuning.search import storage_url

    (out / "tune").mkdir(parents=True)
    study = optuna.create_study(
        study_name="recipe", storage=storage_url(out / "tune"), direction="maximize"
    )
    study.enqueue_trial({"learn_rate": 0.01, "dropout": 0.1})
    study.enqueue_trial({"learn_rate": 0.0, "dropout": 0.1})


@pytest.mark.slow
def test_a_search_prunes_resumes_and_its_best_config_trains(corpus, tmp_path):
    pytest.importorskip("optuna", reason="pip install -r requirements/tune.txt")
    enqueue_learning_and_not(tmp_path)
    first = run_tune(corpus, tmp_path, "--trials", "2", "--gpu-id", "-1")
    assert first.exit_code == 0, first.output
    trials = study_of(tmp_path).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "PRUNED"]
    learned, stuck = trials
    assert learned.value > max(stuck.intermediate_values.values())
    # stopped at an evaluation before its last: the pruner compares from the first on
    assert len(stuck.intermediate_values) < len(learned.intermediate_values)
    tuned = load_config(tmp_path / "tuned.cfg", interpolate=False)
    assert tuned["training"]["optimizer"]["learn_rate"]["initial_rate"] == 0.01
    assert tuned["training"]["logger"]["tracker"] is None  # the reporter never reaches a config
    report = (tmp_path / "tune" / "report.html").read_text(encoding="utf8")
    assert "1 complete, 1 pruned, 0 failed" in report
    history = json.loads((tmp_path / "tune" / "trials.json").read_text(encoding="utf8"))
    assert [t["state"] for t in history] == ["COMPLETE", "PRUNED"]
    assert {p.name for p in (tmp_path / "tune" / "plots").iterdir()} == {
        "optimization_history.png",
        "intermediate_values.png",
    }  # importances need two complete trials with different scores

    resumed = run_tune(corpus, tmp_path, "--trials", "3", "--gpu-id", "-1")
    assert resumed.exit_code == 0, resumed.output
    assert "2 trials trained, running 1 more" in resumed.output
    again = study_of(tmp_path).trials
    assert len(again) == 3
    assert [(t.params, t.value, t.state) for t in again[:2]] == [
        (t.params, t.value, t.state) for t in trials
    ]
    dropouts = {t.params["dropout"] for t in again}
    assert len(dropouts) == 2 and again[2].params["dropout"] != 0.1  # a new point, sampled
    new_config = load_config(tmp_path / "tune" / "trials" / "2" / "config.cfg", interpolate=False)
    assert new_config["training"]["dropout"] == pytest.approx(again[2].params["dropout"])

    other_setup = run_tune(corpus, tmp_path, "--trials", "3", "--max-epochs", "2")
    assert other_setup.exit_code == 1
    assert "searched with another max_epochs" in other_setup.output

    from scripts.training.run import train

    train(
        config_path=tmp_path / "tuned.cfg",
        output=tmp_path / "trained",
        gpu_id="-1",
        mixed_precision=False,
        overrides={
            "paths.train": str(corpus / "train.spacy"),
            "paths.dev": str(corpus / "dev.spacy"),
            "paths.labels": str(tmp_path / "no-labels"),
            "paths.curves": str(tmp_path / "curves.jsonl"),
        },
    )
    nlp = spacy.load(tmp_path / "trained" / "model-best")
    assert max(nlp("how how number 40").cats.items(), key=lambda kv: kv[1])[0] == "question"


@pytest.mark.slow
def test_ray_tune_runs_the_same_search_and_prunes(corpus, tmp_path, monkeypatch):
    pytest.importorskip("optuna", reason="pip install -r requirements/tune.txt")
    pytest.importorskip("ray.tune", reason="pip install -r requirements/ray.txt")
    from scripts.tuning import ray_engine

    # Two CPUs and two per trial: one trial after the other, so the second meets a median.
    monkeypatch.setattr(ray_engine, "init_ray", partial(ray_engine.init_ray, num_cpus=2))
    enqueue_learning_and_not(tmp_path)
    result = run_tune(corpus, tmp_path, "--trials", "2", "--engine", "ray", "--cpus-per-trial", "2")
    assert result.exit_code == 0, result.output
    trials = study_of(tmp_path).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "PRUNED"]
    assert len(trials[1].intermediate_values) < len(trials[0].intermediate_values)
    assert len(list((tmp_path / "tune" / "trials").glob("ray-*/config.cfg"))) == 2
    assert load_config(tmp_path / "tuned.cfg", interpolate=False)["training"]["dropout"] == 0.1
