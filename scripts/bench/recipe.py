"""The training benchmark behind scripts/bench_train.py: the workflow's own stages (convert, config,
train, evaluate) run once into a folder, summed up as one JSON line of test quality, words/s and
wall time.

Training speed counts the words of every training pass, evaluation included in the time, as the
training log reports them.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path
from timeit import default_timer
from typing import List, NotRequired, Optional, TypedDict

from scripts.common.base_model import resolve_base_model
from scripts.common.errors import UserError
from scripts.common.files import PROJECT_ROOT
from scripts.scoring.curves import CurvePoint, read_curves
from scripts.scoring.metrics import CatScores, EntScores, Metrics

BASE_CONFIG = PROJECT_ROOT / "configs" / "base.cfg"


class EntsHeadline(TypedDict):
    p: Optional[float]
    r: Optional[float]
    f: Optional[float]
    n_docs: int


class TextcatHeadline(TypedDict):
    mode: str
    accuracy: Optional[float]
    macro_f: Optional[float]
    micro_f: Optional[float]
    n_docs: int


class SpeedLog(TypedDict):
    """How far training got, from the last line of its curves.jsonl."""

    epochs: int  # the last epoch's index, from 0
    steps: int
    words: int
    seconds: float


class TrainBenchResult(TypedDict):
    """The JSON line scripts.bench_train prints."""

    components: str
    base_model: str
    epochs: int
    steps: int
    train_words: int
    train_seconds: float
    train_words_per_second: Optional[int]
    wall_seconds: float
    output: Optional[str]  # None when the run went to a temporary folder
    ents: NotRequired[EntsHeadline]
    textcat: NotRequired[TextcatHeadline]


def ents_headline(ents: EntScores) -> EntsHeadline:
    """The entity figures a benchmark line carries, from metrics.json's "ents"."""
    return EntsHeadline(p=ents["p"], r=ents["r"], f=ents["f"], n_docs=ents["n_docs"])


def textcat_headline(textcat: CatScores) -> TextcatHeadline:
    """The category figures a benchmark line carries, from metrics.json's "textcat"."""
    return TextcatHeadline(
        mode=textcat["mode"],
        accuracy=textcat["accuracy"],
        macro_f=textcat["macro_f"],
        micro_f=textcat["micro_f"],
        n_docs=textcat["n_docs"],
    )


def run_stage(name: str, args: list[str]) -> None:
    """Run one workflow stage as the workflow does; a failure stops with the stage's own message."""
    result = subprocess.run([sys.executable, "-m", *args], stdout=sys.stderr)
    if result.returncode != 0:
        raise UserError(f"the {name} stage failed (exit {result.returncode}); its message is above")


def bench_train(
    *,
    train: str,
    dev: str,
    test: str,
    components: str,
    output_dir: Path,
    transformer: str = "auto",
    lang: str = "en",
    max_epochs: int = 0,
    gpu_id: str = "auto",
    seed: int = 0,
    convert_options: str = "",
    config_overrides: Optional[list[str]] = None,
) -> TrainBenchResult:
    """Convert, configure, train and evaluate into output_dir; the result line as a dict."""
    corpus = output_dir / "corpus"
    config = output_dir / "config.cfg"
    run_stage(
        "convert",
        [
            "scripts.convert",
            "--train",
            train,
            "--dev",
            dev,
            "--test",
            test,
            "--lang",
            lang,
            "--seed",
            str(seed),
            "--output-dir",
            str(corpus),
            *shlex.split(convert_options),
        ],
    )
    run_stage(
        "config",
        [
            "scripts.make_config",
            str(BASE_CONFIG),
            str(config),
            "--components",
            components,
            "--transformer",
            transformer,
            "--lang",
            lang,
            "--train",
            str(corpus / "train.spacy"),
            "--max-epochs",
            str(max_epochs),
            *(config_overrides or []),
        ],
    )
    curves_path = output_dir / "curves.jsonl"
    started = default_timer()
    run_stage(
        "train",
        [
            "scripts.train",
            str(config),
            "--output",
            str(output_dir),
            "--gpu-id",
            gpu_id,
            "--paths.train",
            str(corpus / "train.spacy"),
            "--paths.dev",
            str(corpus / "dev.spacy"),
            "--paths.labels",
            str(output_dir / "labels"),
            "--paths.curves",
            str(curves_path),
        ],
    )
    train_wall = default_timer() - started
    run_stage(
        "evaluate",
        [
            "scripts.evaluate",
            str(output_dir / "model-best"),
            str(corpus / "test.spacy"),
            "--output",
            str(output_dir / "evaluation"),
            "--gpu-id",
            gpu_id,
            "--curves",
            str(curves_path),
        ],
    )
    speed = speed_of(read_curves(path=curves_path))
    metrics: Metrics = json.loads(
        (output_dir / "evaluation" / "metrics.json").read_text(encoding="utf8")
    )
    base_model = resolve_base_model(transformer, lang=lang, check_hub=False).name
    return summarize(
        metrics=metrics,
        speed=speed,
        train_wall=train_wall,
        components=components,
        output_dir=output_dir,
        base_model=base_model,
    )


def speed_of(points: List[CurvePoint]) -> SpeedLog:
    """The last evaluation's position and time, e.g. speed_of(read_curves(path=...))["words"]."""
    if not points:
        raise UserError("training logged no evaluation; train for at least one step")
    last = points[-1]
    return SpeedLog(
        epochs=last["epoch"], steps=last["step"], words=last["words"], seconds=last["seconds"]
    )


def summarize(
    *,
    metrics: Metrics,
    speed: SpeedLog,
    train_wall: float,
    components: str,
    output_dir: Path,
    base_model: str,
) -> TrainBenchResult:
    result = TrainBenchResult(
        components=components,
        base_model=base_model,
        epochs=speed["epochs"] + 1,
        steps=speed["steps"],
        train_words=speed["words"],
        train_seconds=round(speed["seconds"], 1),
        train_words_per_second=round(speed["words"] / speed["seconds"])
        if speed["seconds"]
        else None,
        wall_seconds=round(train_wall, 1),
        output=str(output_dir),
    )
    if metrics["ents"]:
        result["ents"] = ents_headline(metrics["ents"])
    if metrics["textcat"]:
        result["textcat"] = textcat_headline(metrics["textcat"])
    return result
