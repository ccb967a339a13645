"""Training curves: the train step appends every evaluation to a JSONL file, passes it on to the
experiment tracker the `logger` var picks (MLflow read back through its own client here), and the
evaluate step draws the curves into plots/ and report.html."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin
from spacy.util import load_config, registry
from thinc.api import Config

from scripts.common.errors import UserError
from scripts.evaluation.run import evaluate_model
from scripts.scoring.curves import best_point, from_same_run, read_curves
from scripts.training.config import Schedule, build_config, tracker_block, write_filled_config
from scripts.training.logger import CurvesFile, tracking_uri_of
from scripts.training.run import train
from tests.helpers import PROJECT_ROOT, TRAIN, missing_extra

LABELS = ("requirements", "responsibilities", "benefits")
EVALUATIONS = 3


def write_corpus(path: Path) -> Path:
    nlp = spacy.blank("en")
    docbin = DocBin()
    for text, spans, label in TRAIN:
        doc = nlp.make_doc(text)
        doc.ents = [doc.char_span(start, end, label=name) for start, end, name in spans]
        doc.cats = {name: float(name == label) for name in LABELS}
        docbin.add(doc)
    docbin.to_disk(path)
    return path


def write_config(path: Path, *, bert: Path, logger: str) -> Path:
    """The config step's output for ner,textcat on the tiny BERT: one batch per epoch, one
    evaluation per step."""
    config = build_config(
        load_config(PROJECT_ROOT / "configs" / "base.cfg", interpolate=False),
        components=["ner", "textcat"],
        lang="en",
        transformer_location=str(bert),
        # steps 0, 1 and 2: spaCy counts from 0 and stops after step max_steps
        schedule=Schedule(
            max_epochs=EVALUATIONS,
            eval_frequency=1,
            patience=100,
            warmup_steps=1,
            total_steps=EVALUATIONS - 1,
        ),
        tracker=tracker_block(logger),
    )
    write_filled_config(config, path)
    return path


@pytest.fixture(scope="module")
def mlflow_run(tiny_transformer, tmp_path_factory):
    """A tiny pipeline trained by the train step's code with --vars.logger mlflow, into a
    curves file that held an older run's lines before."""
    if reason := missing_extra("tracking", "mlflow"):
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("mlflow-run")
    corpus = write_corpus(tmp / "train.spacy")
    curves = tmp / "curves.jsonl"
    curves.write_text('{"step": 999, "losses": {}, "scores": {}}\n', encoding="utf8")
    train(
        config_path=write_config(tmp / "config.cfg", bert=tiny_transformer, logger="mlflow"),
        output=tmp / "training",
        gpu_id="-1",
        mixed_precision=False,
        overrides={
            "paths.train": str(corpus),
            "paths.dev": str(corpus),
            "paths.labels": str(tmp / "no-labels"),
            "paths.curves": str(curves),
            "training.logger.tracker.tracking_uri": str(tmp / "mlruns"),
            "training.optimizer.learn_rate.initial_rate": 0.005,
        },
    )
    return tmp


@pytest.mark.slow
def test_every_evaluation_is_one_line_of_a_fresh_curves_file(mlflow_run):
    points = read_curves(path=mlflow_run / "curves.jsonl")
    assert [p["step"] for p in points] == list(range(EVALUATIONS))  # the older run's line is gone
    assert [p["epoch"] for p in points] == list(range(EVALUATIONS))
    for point in points:
        assert set(point["losses"]) == {"transformer", "ner", "textcat"}
        assert {"ents_f", "ents_p", "ents_r", "cats_macro_f"} <= set(point["scores"])
        assert 0.0 <= point["score"] <= 1.0
        assert point["words_per_second"] > 0
    words = sum(len(spacy.blank("en").make_doc(text)) for text, _, _ in TRAIN)
    assert [p["words"] for p in points] == [words * (i + 1) for i in range(EVALUATIONS)]
    assert [p["seconds"] for p in points] == sorted(p["seconds"] for p in points)


@pytest.mark.slow
def test_mlflow_holds_the_same_metrics_as_the_curves_file(mlflow_run, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    points = read_curves(path=mlflow_run / "curves.jsonl")
    client = MlflowClient(tracking_uri_of(str(mlflow_run / "mlruns")))
    experiment = client.get_experiment_by_name("ner_textcat")
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["training.max_steps"] == str(EVALUATIONS - 1)

    def history(key):
        metrics = client.get_metric_history(run.info.run_id, key)
        steps = [m.step for m in sorted(metrics, key=lambda m: m.step)]
        assert steps == [p["step"] for p in points]  # each value at its training step
        return [m.value for m in sorted(metrics, key=lambda m: m.step)]

    assert history("score") == pytest.approx([p["score"] for p in points])
    for component in ("transformer", "ner", "textcat"):
        expected = [p["losses"][component] for p in points]
        assert history(f"loss_{component}") == pytest.approx(expected)
    for key in ("ents_f", "cats_macro_f"):
        assert history(key) == pytest.approx([p["scores"][key] for p in points])
    per_type = [p["scores"]["ents_per_type"]["SKILL"]["f"] for p in points]
    assert history("ents_per_type.SKILL.f") == pytest.approx(per_type)


@pytest.mark.slow
def test_evaluate_draws_the_curves_into_plots_and_the_report(mlflow_run, tmp_path):
    evaluate_model(
        model=str(mlflow_run / "training" / "model-best"),
        data_path=mlflow_run / "train.spacy",
        output_dir=tmp_path,
        curves_path=mlflow_run / "curves.jsonl",
    )
    png = (tmp_path / "plots" / "training_curves.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    page = (tmp_path / "report.html").read_text(encoding="utf8")
    assert "<h2>Training curves</h2>" in page
    assert 'alt="training losses and dev scores by step"' in page
    assert f"{EVALUATIONS} evaluations on the dev set" in page
    assert json.loads((tmp_path / "metrics.json").read_text(encoding="utf8"))["warnings"] == []


@pytest.mark.slow
def test_curves_of_another_run_are_flagged_and_a_report_without_curves_has_no_section(
    mlflow_run, tmp_path
):
    other = tmp_path / "other.jsonl"
    other.write_text(
        json.dumps({"step": 0, "epoch": 0, "score": 0.5, "losses": {}, "scores": {"ents_f": 2}})
        + "\n",
        encoding="utf8",
    )
    metrics = evaluate_model(
        model=str(mlflow_run / "training" / "model-best"),
        data_path=mlflow_run / "train.spacy",
        output_dir=tmp_path / "with-other",
        curves_path=other,
    )
    assert any("another training run" in warning for warning in metrics["warnings"])
    evaluate_model(
        model=str(mlflow_run / "training" / "model-best"),
        data_path=mlflow_run / "train.spacy",
        output_dir=tmp_path / "with-other",
    )
    assert not (tmp_path / "with-other" / "plots" / "training_curves.png").exists()
    assert "Training curves" not in (tmp_path / "with-other" / "report.html").read_text("utf8")


def info(step: int, words: int) -> dict:
    """What spaCy's training loop passes to a logger at an evaluation."""
    return {
        "epoch": 0,
        "step": step,
        "score": 0.5,
        "other_scores": {"ents_f": 0.5, "ents_per_type": {"SKILL": {"f": float("nan")}}},
        "losses": {"ner": 1.5},
        "checkpoints": [(0.5, step)],
        "seconds": 1,
        "words": words,
    }


def test_each_line_is_on_disk_as_soon_as_it_is_logged(tmp_path):
    path = tmp_path / "curves.jsonl"
    path.write_text("an older run\n", encoding="utf8")
    curves = CurvesFile(path)
    assert path.read_text(encoding="utf8") == ""
    curves.append(info(0, 10))
    curves.append(info(5, 60))
    # read while the file is still open, as after a killed run
    points = read_curves(path=path)
    curves.close()
    assert [p["step"] for p in points] == [0, 5]
    assert points[0]["scores"]["ents_per_type"]["SKILL"]["f"] is None  # NaN is not JSON
    assert points[1]["losses"] == {"ner": 1.5}


def test_a_line_cut_short_at_the_end_is_left_out_one_in_the_middle_is_an_error(tmp_path):
    good = json.dumps({"step": 0, "epoch": 0, "score": 0.1, "losses": {}, "scores": {}})
    path = tmp_path / "curves.jsonl"
    path.write_text(f'{good}\n{good}\n{{"step": 1, "los', encoding="utf8")
    assert len(read_curves(path=path)) == 2
    path.write_text(f'{good}\n{{"step": 1, "los\n{good}\n', encoding="utf8")
    with pytest.raises(UserError, match=r"curves.jsonl, line 2: not JSON"):
        read_curves(path=path)
    path.write_text('{"epoch": 0}\n', encoding="utf8")
    with pytest.raises(UserError, match=r"line 1: not a training-curve record \(no step"):
        read_curves(path=path)
    with pytest.raises(UserError, match="no training curves there"):
        read_curves(path=tmp_path / "missing.jsonl")


def test_the_best_point_is_the_last_of_equal_scores_as_spacy_saves_model_best():
    points = [
        {"step": s, "score": v, "losses": {}, "scores": {"ents_f": v}}
        for s, v in ((0, 0.1), (1, 0.4), (2, 0.4), (3, 0.2))
    ]
    assert best_point(points)["step"] == 2
    assert from_same_run(points, {"ents_f": 0.4, "ner_loss": 3.0})
    assert not from_same_run(points, {"ents_f": 0.3})
    assert from_same_run(points, {})


@pytest.mark.parametrize(
    "value,expected",
    [
        ("file:training/mlruns", (Path.cwd() / "training" / "mlruns").as_uri()),
        ("training/mlruns", (Path.cwd() / "training" / "mlruns").as_uri()),
        ("file:///srv/mlruns", "file:///srv/mlruns"),
        ("sqlite:///mlflow.db", "sqlite:///mlflow.db"),
        ("http://localhost:5000", "http://localhost:5000"),
    ],
)
def test_tracking_uris_become_absolute_file_uris_other_uris_stay(value, expected):
    assert tracking_uri_of(value) == expected


def test_the_logger_var_picks_a_section_of_loggers_cfg_as_the_tracker(tmp_path, tiny_transformer):
    assert tracker_block("console") == {}
    with pytest.raises(UserError, match=r"logger 'neptune' is not one of: console \| mlflow"):
        tracker_block("neptune")
    console = Config().from_disk(
        write_config(tmp_path / "console.cfg", bert=tiny_transformer, logger="console")
    )
    assert console["training"]["logger"]["@loggers"] == "ner_textcat.curves_logger.v1"
    assert console["training"]["logger"].get("tracker") is None
    logger = Config().from_disk(
        write_config(tmp_path / "wandb.cfg", bert=tiny_transformer, logger="wandb")
    )["training"]["logger"]
    assert logger["path"] == "training/curves.jsonl"
    assert logger["tracker"]["@loggers"] == "ner_textcat.wandb_logger.v1"
    assert (logger["tracker"]["mode"], logger["tracker"]["dir"]) == ("offline", "training")


def test_wandb_runs_offline_under_the_configured_folder(tmp_path, monkeypatch):
    """spacy-loggers' W&B logger against a stand-in wandb module: the wrapper sets the mode and
    folder that wandb.init reads; every evaluation still reaches the curves file."""
    calls = []
    fake = types.ModuleType("wandb")

    def init(**kwargs):
        import os

        calls.append(("init", os.environ["WANDB_MODE"], os.environ["WANDB_DIR"]))
        fake.run = types.SimpleNamespace(name=None, id="offline-run")
        return fake.run

    fake.init = init
    fake.log = lambda data: calls.append(("log", dict(data)))
    fake.join = lambda: calls.append(("join",))
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_DIR", raising=False)
    tracker = registry.loggers.get("ner_textcat.wandb_logger.v1")(dir=str(tmp_path / "training"))
    setup = registry.loggers.get("ner_textcat.curves_logger.v1")(
        path=str(tmp_path / "curves.jsonl"), tracker=tracker
    )
    log_step, finalize = setup(spacy.blank("en"))
    log_step(None)
    log_step(info(0, 10))
    finalize()
    assert calls[0] == ("init", "offline", str((tmp_path / "training").resolve()))
    assert ("log", {"score": 0.5}) in calls and ("log", {"loss_ner": 1.5}) in calls
    assert calls[-1] == ("join",)
    assert [p["step"] for p in read_curves(path=tmp_path / "curves.jsonl")] == [0]


def test_a_tracker_that_is_not_installed_stops_training_in_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    with pytest.raises(
        UserError, match=r"needs the wandb package.*pip install wandb, or train with logger console"
    ) as caught:
        registry.loggers.get("ner_textcat.wandb_logger.v1")()
    assert caught.value.setting == "logger"
