"""The training benchmark behind scripts/bench_train.py: the workflow (scripts/workflow/stages.py:
convert, config, labels, train, evaluate) run once into a folder, summed up as one JSON line of test
quality, words/s and wall time.

Training speed counts the words of every training pass, evaluation included in the time, as the
training log reports them; wall_seconds is the train stage's, from start to saved models.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any, List, Mapping, NotRequired, Optional, TypedDict

from scripts.common.base_model import resolve_base_model
from scripts.common.errors import UserError
from scripts.common.options import DEFAULT_GPU_ID
from scripts.corpus.conversion import Settings, parse_file_list
from scripts.scoring.curves import CurvePoint, read_curves
from scripts.scoring.metrics import CatScores, EntScores, Metrics
from scripts.workflow.stages import RunFolder, run_all


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


def bench_train(
    *,
    train: str,
    dev: str,
    test: str,
    components: str,
    output_dir: Path,
    transformer: str = "auto",
    max_epochs: int = 0,
    gpu_id: str = DEFAULT_GPU_ID,
    seed: int = 0,
    settings: Settings = Settings(),
    config_overrides: Optional[Mapping[str, Any]] = None,
) -> TrainBenchResult:
    """The workflow's stages (run_all) into output_dir; the result line as a dict. train, dev and
    test are comma-separated files, as the project's vars; settings.lang is the language."""
    run = RunFolder.inside(output_dir)
    result = run_all(
        run=run,
        train_files=parse_file_list(train),
        dev_files=parse_file_list(dev),
        test_files=parse_file_list(test),
        components=components,
        transformer=transformer,
        seed=seed,
        settings=settings,
        max_epochs=max_epochs,
        config_overrides=config_overrides,
        gpu_id=gpu_id,
    )
    speed = speed_of(read_curves(path=run.curves))
    base_model = resolve_base_model(transformer, lang=settings.lang, check_hub=False).name
    return summarize(
        metrics=result.metrics,
        speed=speed,
        train_wall=result.seconds["train"],
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


def across_seeds(results: Mapping[int, TrainBenchResult]) -> dict[str, Any]:
    """Mean and sample standard deviation of each headline figure over runs that differ only in
    their training seed: {"seeds": [0, 1, 2], "ents.f": {"mean", "std", "values"}, ...}."""
    found: dict[str, Any] = {"seeds": list(results)}
    for task, keys in (("ents", ("p", "r", "f")), ("textcat", ("accuracy", "macro_f", "micro_f"))):
        for key in keys:
            values = [
                value
                for result in results.values()
                if (value := (result.get(task) or {}).get(key)) is not None
            ]
            if values:
                found[f"{task}.{key}"] = {
                    "mean": round(statistics.fmean(values), 4),
                    "std": round(statistics.stdev(values), 4) if len(values) > 1 else None,
                    "values": values,
                }
    return found
