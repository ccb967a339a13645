"""The train step on a tiny BERT with the config step's own schedule: the run is as long as the
config step says, it stops when the dev score stops improving, unstable training is said in one
line, and both pipelines, the metrics, the report and the server carry the package's name and
version."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import spacy

from scripts.common.errors import UserError
from scripts.evaluation.run import evaluate_model
from scripts.inference.predict import load_predictor
from scripts.scoring.curves import read_curves
from scripts.training.config import Schedule, make_config
from scripts.training.logger import TrainingWatch, curves_logger
from scripts.training.run import TRAINED_PIPELINES, train
from tests.helpers import PROJECT_ROOT, write_gold


@pytest.fixture(scope="module")
def configured(tiny_transformer, tmp_path_factory) -> tuple[Path, Schedule]:
    """The config step's config for ner,textcat on the tiny BERT and six training texts."""
    tmp = tmp_path_factory.mktemp("train-run")
    corpus = write_gold(tmp / "corpus.spacy")
    schedule = make_config(
        base_path=PROJECT_ROOT / "configs" / "base.cfg",
        output=tmp / "config.cfg",
        components="ner,textcat",
        transformer=str(tiny_transformer),
        lang="en",
        train=corpus,
    )
    return tmp, schedule


def run(tmp: Path, folder: str, **options) -> Path:
    """Train the configured pipeline into tmp/folder, on the six texts as train and dev set."""
    overrides = options.pop("overrides", {})
    train(
        config_path=tmp / "config.cfg",
        output=tmp / folder,
        gpu_id="-1",
        mixed_precision=False,
        overrides={
            "paths.train": str(tmp / "corpus.spacy"),
            "paths.dev": str(tmp / "corpus.spacy"),
            "paths.labels": str(tmp / "no-labels"),
            "paths.curves": str(tmp / folder / "curves.jsonl"),
            **overrides,
        },
        **options,
    )
    return tmp / folder


@pytest.fixture(scope="module")
def full_run(configured) -> Path:
    tmp, _ = configured
    return run(
        tmp,
        "full",
        name="demo",
        version="1.2.3",
        # early stopping off: the whole schedule
        overrides={"training.optimizer.learn_rate.initial_rate": 0.005, "training.patience": 0},
    )


@pytest.mark.slow
def test_the_run_takes_the_steps_the_config_step_announced(configured, full_run):
    _, schedule = configured
    steps = [point["step"] for point in read_curves(path=full_run / "curves.jsonl")]
    # the last step is evaluated, so model-best can come from the end of the run
    assert steps == list(range(0, schedule.total_steps + 1, schedule.eval_frequency))


@pytest.mark.slow
def test_a_run_that_stops_learning_stops_after_the_patience(configured, capfd):
    tmp, schedule = configured
    # six texts make a run shorter than MIN_PATIENCE_STEPS: its patience is the whole run
    assert schedule.patience == schedule.total_steps
    patience = 2 * schedule.eval_frequency
    # no learning at all: every evaluation ties with the first
    flat = run(
        tmp,
        "flat",
        overrides={
            "training.optimizer.learn_rate.initial_rate": 0.0,
            "training.patience": patience,
        },
    )
    steps = [point["step"] for point in read_curves(path=flat / "curves.jsonl")]
    assert steps[-1] == patience < schedule.total_steps
    assert (
        f"Stopped at step {patience} of {schedule.total_steps}: the dev score has not "
        f"improved since step 0 ([training] patience {patience})"
    ) in capfd.readouterr().out


@pytest.mark.slow
def test_both_pipelines_the_metrics_the_report_and_the_server_carry_one_name(full_run, tmp_path):
    for pipeline in TRAINED_PIPELINES:
        meta = json.loads((full_run / pipeline / "meta.json").read_text(encoding="utf8"))
        assert (meta["lang"], meta["name"], meta["version"]) == ("en", "demo", "1.2.3")
    assert spacy.load(full_run / "model-best").meta["name"] == "demo"
    metrics = evaluate_model(
        model=str(full_run / "model-best"),
        data_path=full_run.parent / "corpus.spacy",
        output_dir=tmp_path,
        explain=0,
    )
    assert (metrics["model"]["name"], metrics["model"]["version"]) == ("en_demo", "1.2.3")
    report = (tmp_path / "report.html").read_text(encoding="utf8")
    assert "<th class=l>Model</th><td>en_demo-1.2.3</td>" in report
    assert load_predictor(str(full_run / "model-best")).version == "en_demo-1.2.3"


@pytest.mark.parametrize(
    "name, version, message",
    [
        ("my-model", "0.0.1", "name 'my-model' cannot name a Python package"),
        ("2nd", "0.0.1", "name '2nd' cannot name a Python package"),
        ("emotion", "first", r"version 'first' is not a package version \(PEP 440\)"),
    ],
)
def test_a_name_the_wheel_cannot_carry_stops_before_training(configured, name, version, message):
    tmp, _ = configured
    with pytest.raises(UserError, match=message):
        run(tmp, "refused", name=name, version=version)
    assert not (tmp / "refused" / "model-best").exists()


def test_the_train_command_says_how_to_set_the_name(configured):
    from typer.testing import CliRunner

    from scripts.train import app

    tmp, _ = configured
    args = [str(tmp / "config.cfg"), "--output", str(tmp / "refused"), "--name", "my-model"]
    result = CliRunner().invoke(app, args)
    assert (result.exit_code, result.output) == (
        1,
        "✘ name 'my-model' cannot name a Python package: use ASCII letters, digits and "
        "underscores, not starting with a digit, e.g. my_pipeline (set name with --name, or "
        "--vars.name in spacy project run)\n",
    )


def evaluation(step: int, score: float, checkpoints: list, **losses: float) -> dict:
    """The info spaCy's training loop passes to a logger at an evaluation."""
    return {"step": step, "epoch": 0, "score": score, "losses": losses, "checkpoints": checkpoints}


def test_a_loss_that_jumps_fivefold_is_said_once_with_a_hint():
    watch = TrainingWatch()
    checkpoints = []
    said = []
    # per step: transformer 62 (one update), 962, 556 (12 updates each), 3377 (6.1x), 5458
    for step, loss in ((0, 62), (12, 11_546), (24, 6_671), (36, 40_529), (48, 65_503)):
        checkpoints.append((0.5, step))
        said += watch.check(evaluation(step, 0.5, list(checkpoints), transformer=loss, ner=10))
    # not at step 12 (15x the single update at step 0, in the warm-up), once at step 36
    assert said == [
        "step 36: the transformer loss per step grew 6.1x since step 24 (555.9 -> 3377); if the "
        "dev score suffers, lower the learning rate (--training.optimizer.learn_rate."
        "initial_rate) or clip the gradients harder (--training.optimizer.max_grad_norm)"
    ]


def test_a_dev_score_that_falls_twice_running_is_said_once_per_decline():
    watch = TrainingWatch()
    checkpoints, said = [], []
    scores = (0.40, 0.50, 0.499, 0.46, 0.45, 0.44, 0.48, 0.47, 0.46)
    for i, score in enumerate(scores):
        checkpoints.append((score, i * 10))
        said += watch.check(evaluation(i * 10, score, list(checkpoints), ner=1.0))
    assert [line.split(":")[0] for line in said] == ["step 30", "step 80"]
    assert said[0].startswith(
        "step 30: the dev score fell for 2 evaluations running (0.500 -> 0.499 -> 0.460; "
        "model-best keeps 0.500 from step 10); if it goes on falling, lower the learning rate"
    )


def test_the_lines_go_under_the_table_row_they_explain(tmp_path):
    nlp = spacy.blank("en")
    out = io.StringIO()
    log_step, finalize = curves_logger(str(tmp_path / "curves.jsonl"))(nlp, stdout=out)
    for step, score in enumerate((0.5, 0.4, 0.3)):
        checkpoints = [(s, i) for i, s in enumerate((0.5, 0.4, 0.3)[: step + 1])]
        log_step(evaluation(step, score, checkpoints) | {"other_scores": {}, "words": 1})
    finalize()
    lines = out.getvalue().splitlines()
    assert lines[-1].startswith("⚠ step 2: the dev score fell for 2 evaluations running")
    assert lines[-2].split()[:2] == ["0", "2"]  # spaCy's row for step 2: epoch, step
