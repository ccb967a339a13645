"""The workflow's stages on one run folder, in project.yml's order: convert, config, labels, train,
evaluate. `spacy project run all` runs them one command each (scripts/convert.py, make_config.py,
init_labels.py, train.py, evaluate.py over the same stage functions, in the RunFolder.project()
layout); scripts.bench_train runs run_all() into a folder; the Label Studio retraining
(scripts/inference/retraining.py) runs convert, config, train and evaluate, and adds to the corpus
and writes the labels itself.

    run = RunFolder.inside(Path("runs/ner"))
    result = run_all(run=run, train_files=[Path("assets/train.tsv")], dev_files=[], test_files=[],
                     components="ner")
    result.metrics["ents"]["f"], result.seconds["train"]

The config stage writes the run folder's paths into config.cfg ([paths]), so the stages after it,
and `spacy train` by hand, read and write that folder only.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from timeit import default_timer
from typing import Any, Callable, Iterator, Mapping, Optional

from scripts.common.base_model import MAX_UNKNOWN_SHARE
from scripts.common.errors import UserError
from scripts.common.files import PROJECT_ROOT
from scripts.common.options import DEFAULT_GPU_ID
from scripts.corpus.conversion import (
    Conversion,
    ConvertError,
    Settings,
    convert_project,
    unreadable_input,
)
from scripts.evaluation.run import evaluate_model
from scripts.scoring.metrics import Metrics
from scripts.training.config import Schedule, make_config
from scripts.training.labels import init_labels
from scripts.training.run import train as train_pipeline

STAGES = ("convert", "config", "labels", "train", "evaluate")  # project.yml's `all`, less package
BASE_CONFIG = PROJECT_ROOT / "configs" / "base.cfg"


@dataclass(frozen=True)
class RunFolder:
    """Where one run keeps its files.

    corpus:     train.spacy, dev.spacy, test.spacy and report.json (the convert stage)
    training:   config.cfg, labels/, model-best/, model-last/ and curves.jsonl
    evaluation: metrics.json, report.html and plots/ of model-best on test.spacy
    """

    corpus: Path
    training: Path
    evaluation: Path

    @classmethod
    def project(cls) -> RunFolder:
        """project.yml's layout, relative to the project folder where weasel runs each step; the
        [paths] of configs/base.cfg name the same files."""
        return cls(corpus=Path("corpus"), training=Path("training"), evaluation=Path("training"))

    @classmethod
    def inside(cls, folder: Path) -> RunFolder:
        """Everything in one folder: FOLDER/corpus/, FOLDER/config.cfg, ..., FOLDER/evaluation/."""
        return cls(corpus=folder / "corpus", training=folder, evaluation=folder / "evaluation")

    def split(self, name: str) -> Path:
        """A split of the corpus: split("train") -> corpus/train.spacy."""
        return self.corpus / f"{name}.spacy"

    @property
    def config(self) -> Path:
        return self.training / "config.cfg"

    @property
    def labels(self) -> Path:
        return self.training / "labels"

    @property
    def model_best(self) -> Path:
        return self.training / "model-best"

    @property
    def curves(self) -> Path:
        return self.training / "curves.jsonl"

    def config_paths(self) -> dict[str, str]:
        """The [paths] of config.cfg that point the training stages at this folder."""
        return {
            "paths.train": self.split("train").as_posix(),
            "paths.dev": self.split("dev").as_posix(),
            "paths.labels": self.labels.as_posix(),
            "paths.curves": self.curves.as_posix(),
        }


@dataclass(frozen=True)
class RunResult:
    metrics: Metrics  # metrics.json of model-best on the test split
    seconds: dict[str, float]  # wall-clock time of each stage, by name


def convert(
    *,
    run: RunFolder,
    train: list[Path],
    dev: list[Path],
    test: list[Path],
    seed: int = 0,
    settings: Settings = Settings(),
    echo: Callable[[str], None] = print,
) -> Conversion:
    """Annotation files -> run.corpus: train/dev/test.spacy and report.json; an empty dev or test
    is split off train (scripts.corpus.conversion.convert_project)."""
    try:
        return convert_project(
            train=train,
            dev=dev,
            test=test,
            output_dir=run.corpus,
            seed=seed,
            settings=settings,
            echo=echo,
        )
    except ConvertError as err:
        raise UserError(str(err)) from None
    except (OSError, UnicodeError) as err:
        raise UserError(str(unreadable_input(err))) from None


def config(
    *,
    run: RunFolder,
    components: str,
    transformer: str = "auto",
    lang: str = "en",
    max_epochs: int = 0,
    logger: str = "console",
    overrides: Optional[Mapping[str, Any]] = None,
    base: Path = BASE_CONFIG,
    max_unknown: float = MAX_UNKNOWN_SHARE,
) -> Schedule:
    """run.config: BASE cut to the components, base model and schedule set for run.corpus's
    training split, with [paths] pointing at the run folder; overrides change BASE first
    ({"training.accumulate_gradient": 2}); max_unknown: the largest share of word pieces the
    base model's tokenizer may not know."""
    return make_config(
        base_path=base,
        output=run.config,
        components=components,
        transformer=transformer,
        lang=lang,
        train=run.split("train"),
        max_epochs=max_epochs,
        overrides={**run.config_paths(), **(overrides or {})},
        logger=logger,
        max_unknown=max_unknown,
    )


def labels(*, run: RunFolder) -> list[str]:
    """run.labels: every component's label set from the training split; the files written."""
    return init_labels(config_path=run.config, output_dir=run.labels)


def train(
    *,
    run: RunFolder,
    gpu_id: str = DEFAULT_GPU_ID,
    mixed_precision: bool = False,
    overrides: Optional[Mapping[str, Any]] = None,
    entity_confidence: bool = True,
    name: Optional[str] = None,
    version: Optional[str] = None,
) -> None:
    """run.config -> run.training's model-best and model-last (and curves.jsonl); overrides
    change the config for this run only; name and version go into the pipelines' meta."""
    train_pipeline(
        config_path=run.config,
        output=run.training,
        gpu_id=gpu_id,
        mixed_precision=mixed_precision,
        overrides=dict(overrides or {}),
        entity_confidence=entity_confidence,
        name=name,
        version=version,
    )


def evaluate(
    *,
    run: RunFolder,
    gpu_id: str = DEFAULT_GPU_ID,
    model: Optional[str] = None,
    data: Optional[Path] = None,
    output: Optional[Path] = None,
) -> Metrics:
    """run.model_best, with its training curves, on the test split -> run.evaluation. The same
    scoring of another pipeline (model: the served model a retrained one is compared with), on
    other gold data (data) or into another folder (output)."""
    return evaluate_model(
        model=str(run.model_best) if model is None else model,
        data_path=run.split("test") if data is None else data,
        output_dir=run.evaluation if output is None else output,
        gpu_id=gpu_id,
        curves_path=run.curves if model is None else None,
    )


def run_all(
    *,
    run: RunFolder,
    train_files: list[Path],
    dev_files: list[Path],
    test_files: list[Path],
    components: str,
    transformer: str = "auto",
    seed: int = 0,
    settings: Settings = Settings(),
    max_epochs: int = 0,
    logger: str = "console",
    config_overrides: Optional[Mapping[str, Any]] = None,
    max_unknown: float = MAX_UNKNOWN_SHARE,
    gpu_id: str = DEFAULT_GPU_ID,
    mixed_precision: bool = False,
    name: Optional[str] = None,
    version: Optional[str] = None,
    base: Path = BASE_CONFIG,
    echo: Callable[[str], None] = print,
) -> RunResult:
    """Every stage in order into run, from the annotation files (an empty dev or test list: split
    off train); settings.lang tokenizes the corpus and is the pipeline's language."""
    seconds: dict[str, float] = {}
    with timed("convert", seconds):
        convert(
            run=run,
            train=train_files,
            dev=dev_files,
            test=test_files,
            seed=seed,
            settings=settings,
            echo=echo,
        )
    with timed("config", seconds):
        config(
            run=run,
            components=components,
            transformer=transformer,
            lang=settings.lang,
            max_epochs=max_epochs,
            logger=logger,
            overrides=config_overrides,
            base=base,
            max_unknown=max_unknown,
        )
    with timed("labels", seconds):
        labels(run=run)
    with timed("train", seconds):
        train(run=run, gpu_id=gpu_id, mixed_precision=mixed_precision, name=name, version=version)
    with timed("evaluate", seconds):
        metrics = evaluate(run=run, gpu_id=gpu_id)
    return RunResult(metrics=metrics, seconds=seconds)


@contextmanager
def timed(stage: str, seconds: dict[str, float]) -> Iterator[None]:
    """Record the wall-clock time of the block as seconds[stage] when it succeeds."""
    started = default_timer()
    yield
    seconds[stage] = default_timer() - started
