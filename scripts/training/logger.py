"""Training loggers: the console log with every evaluation also appended to a JSONL file of
training curves, passed on to an experiment tracker (MLflow, Weights & Biases) when one is named,
and one line with a hint where training looks unstable (TrainingWatch).

[training.logger] of training/config.cfg names them: the config step writes
ner_textcat.curves_logger.v1 there, with the tracker the `logger` var picks from
configs/loggers.cfg as its `tracker` block. Like every [training] setting they are resolved when
training only, never when a pipeline is loaded.

    [training.logger]
    @loggers = "ner_textcat.curves_logger.v1"
    path = ${paths.curves}

    [training.logger.tracker]
    @loggers = "ner_textcat.mlflow_logger.v1"
    tracking_uri = "training/mlruns"
"""

import importlib
import json
import os
import sys
from pathlib import Path
from timeit import default_timer
from typing import IO, Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import urlparse

import spacy
from spacy.language import Language
from spacy.training.loggers import console_logger
from spacy.util import SimpleFrozenList, registry

from scripts.common.errors import UserError, info
from scripts.common.files import write_bytes_atomic
from scripts.scoring.curves import curve_point

LogStep = Callable[[Optional[Dict[str, Any]]], None]
Setup = Callable[..., Tuple[LogStep, Callable[[], None]]]
# A component's loss per step growing this many times from one evaluation to the next is
# reported: the transformer's is the size of the gradients its heads send back.
LOSS_JUMP = 5.0
# The dev score falling this many evaluations running is reported.
FALLS = 2
STEADIER = (
    "lower the learning rate (--training.optimizer.learn_rate.initial_rate) or clip the "
    "gradients harder (--training.optimizer.max_grad_norm)"
)


class TrainingWatch:
    """Says in one line, with a hint, where training looks unstable: a component's loss per step
    LOSS_JUMP times or more what it was at the previous evaluation, or the dev score falling for
    FALLS evaluations running.

    watch = TrainingWatch(); for info in evaluations: print(*watch.check(info), sep="\n")
    """

    def __init__(self) -> None:
        self.last_step: Optional[int] = None
        self.last_losses: Dict[str, float] = {}  # per step, at the previous evaluation
        self.scores: List[float] = []
        self.checkpoints: List[Tuple[float, int]] = []  # spaCy's (score, step) of each evaluation

    def check(self, info: Dict[str, Any]) -> List[str]:
        step = int(info["step"])
        # spaCy sums each loss since the previous evaluation; step 0 is one update
        steps = step + 1 if self.last_step is None else max(1, step - self.last_step)
        losses = {name: float(loss) / steps for name, loss in (info.get("losses") or {}).items()}
        lines = []
        # The step-0 evaluation follows a single update at the warm-up's zero learning rate: no
        # baseline for a comparison.
        if self.last_step is not None and self.last_step > 0:
            for name, loss in losses.items():
                before = self.last_losses.get(name, 0.0)
                if before > 0 and loss >= LOSS_JUMP * before:
                    lines.append(
                        f"step {step}: the {name} loss per step grew {loss / before:.1f}x since "
                        f"step {self.last_step} ({before:.4g} -> {loss:.4g}); if the dev score "
                        f"suffers, {STEADIER}"
                    )
        self.last_step, self.last_losses = step, losses
        self.checkpoints = list(info.get("checkpoints") or [])
        if info.get("score") is not None:
            self.scores.append(float(info["score"]))
            recent = self.scores[-FALLS - 1 :]
            falling = len(recent) == FALLS + 1 and all(a > b for a, b in zip(recent, recent[1:]))
            # said once per decline: when it reaches FALLS evaluations, not at each one after
            earlier = self.scores[-FALLS - 2 : -1]
            said = len(earlier) == FALLS + 1 and all(a > b for a, b in zip(earlier, earlier[1:]))
            if falling and not said:
                # model-best is saved at every evaluation that equals the best: the last of them
                best, best_step = max(self.checkpoints)
                lines.append(
                    f"step {step}: the dev score fell for {FALLS} evaluations running "
                    f"({' -> '.join(f'{score:.3f}' for score in recent)}; model-best keeps "
                    f"{best:.3f} from step {best_step}); if it goes on falling, {STEADIER}"
                )
        return lines

    def stopped_early(self, *, max_steps: int, patience: int) -> Optional[str]:
        """The line saying that early stopping ended the run, or None where it ran its course
        (or ended otherwise)."""
        if not self.checkpoints or not patience or self.last_step is None:
            return None
        # spaCy measures the patience from the first evaluation with the best score
        first_best = -max((score, -step) for score, step in self.checkpoints)[1]
        if self.last_step - first_best < patience or (max_steps and self.last_step >= max_steps):
            return None
        return (
            f"Stopped at step {self.last_step} of {max_steps or 'no limit'}: the dev score has "
            f"not improved since step {first_best} ([training] patience {patience})"
        )


class CurvesFile:
    """The JSONL file of one run: an empty file replaces the previous run's at the start
    (atomically), then each evaluation appends one line and flushes it, so a killed run keeps
    what it logged.

    curves = CurvesFile(Path("training/curves.jsonl")); curves.append(info); curves.close()
    """

    def __init__(self, path: Path) -> None:
        write_bytes_atomic(path, b"")
        self.file = path.open("a", encoding="utf8")
        self.start = self.last_time = default_timer()
        self.last_words = 0

    def append(self, info: Dict[str, Any]) -> None:
        now = default_timer()
        words = int(info.get("words", 0))
        interval = now - self.last_time
        point = curve_point(
            info,
            seconds=now - self.start,
            words_per_second=(words - self.last_words) / interval if interval > 0 else None,
        )
        self.file.write(json.dumps(point, ensure_ascii=False) + "\n")
        self.file.flush()
        self.last_time, self.last_words = now, words

    def close(self) -> None:
        self.file.close()


@registry.loggers("ner_textcat.curves_logger.v1")
def curves_logger(path: str, progress_bar: bool = False, tracker: Optional[Setup] = None) -> Setup:
    """spaCy's console log; every evaluation appended to the JSONL file at `path` (a fresh file
    each run, read by scripts/scoring/curves.py); every step passed on to `tracker`, another
    logger such as ner_textcat.mlflow_logger.v1, when there is one; and a line under the table
    where training looks unstable (TrainingWatch)."""
    console = console_logger(progress_bar=progress_bar)

    def setup(
        nlp: Language, stdout: IO = sys.stdout, stderr: IO = sys.stderr
    ) -> Tuple[LogStep, Callable[[], None]]:
        loggers = [console(nlp, stdout, stderr)]
        if tracker is not None:
            loggers.append(tracker(nlp, stdout, stderr))
        curves = CurvesFile(Path(path))
        watch = TrainingWatch()

        def log_step(info: Optional[Dict[str, Any]]) -> None:
            if info is not None:
                curves.append(info)  # first: a tracker that fails must not cost the line
            for log, _ in loggers:
                log(info)
            if info is not None:
                for line in watch.check(info):  # below the table row it explains
                    stdout.write(f"⚠ {line}\n")

        def finalize() -> None:
            curves.close()
            for _, close in loggers:
                close()
            training = nlp.config["training"]
            stopped = watch.stopped_early(
                max_steps=training["max_steps"], patience=training["patience"]
            )
            if stopped:
                stdout.write(f"ℹ {stopped}\n")

        return log_step, finalize

    return setup


def require(module: str, *, logger: str, install: str) -> None:
    """Fail in one line before training starts when a tracker's package is not installed."""
    try:
        importlib.import_module(module)
    except ImportError:
        raise UserError(
            f"[training.logger.tracker] {logger} needs the {module} package, which is not "
            f"installed; {install}, or train with logger console",
            setting="logger",
        ) from None


def tracking_uri_of(value: str) -> str:
    """An MLflow tracking URI; a path, or a file: URI with a relative path, becomes an absolute
    file URI, e.g. tracking_uri_of("training/mlruns") -> "file:///.../training/mlruns"."""
    scheme = urlparse(value).scheme
    if scheme == "file":
        value = value[len("file:") :]
        if value.startswith("//"):  # file:///abs/path or file://host/path: already absolute
            return f"file:{value}"
    elif len(scheme) > 1 or value == "databricks":  # http://, sqlite:///; C: is a Windows drive
        return value
    return Path(value).resolve().as_uri()


@registry.loggers("ner_textcat.mlflow_logger.v1")
def mlflow_logger(
    tracking_uri: str = "training/mlruns",
    experiment_name: str = "ner_textcat",
    run_name: Optional[str] = None,
    tags: Optional[Dict[str, Any]] = None,
    remove_config_values: List[str] = SimpleFrozenList(),
    log_model: bool = False,
) -> Setup:
    """MLflow: spacy-loggers' spacy.MLflowLogger.v2 starts the run and records the config as its
    parameters; every evaluation is logged here at its training step, into the experiment
    `experiment_name` of the store at `tracking_uri` (a folder: a local file store, offline).
    log_model: also store the pipeline in MLflow at each new best score (a copy of the whole model
    each time)."""
    require(
        "mlflow",
        logger="ner_textcat.mlflow_logger.v1",
        install="pip install -r requirements/tracking.txt",
    )
    make_tracker = registry.loggers.get("spacy.MLflowLogger.v2")

    def setup(
        nlp: Language, stdout: IO = sys.stdout, stderr: IO = sys.stderr
    ) -> Tuple[LogStep, Callable[[], None]]:
        import mlflow

        uri = tracking_uri_of(tracking_uri)
        if uri.startswith("file:"):
            # MLflow 3 refuses its file store unless asked for it: the offline, server-less choice.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment(experiment_name)
        tracker = make_tracker(
            run_name=run_name, tags=tags, remove_config_values=remove_config_values
        )
        _, finalize = tracker(nlp, stdout, stderr)  # the run and its params; steps: below
        run = mlflow.active_run()
        info(f"MLflow run {run.info.run_id if run else '?'} in {uri}, experiment {experiment_name}")

        def log_step(data: Optional[Dict[str, Any]]) -> None:
            if data is None:
                return
            # spacy-loggers' own log_step logs every value at step 0; these carry the training step
            mlflow.log_metrics(mlflow_metrics(data), step=int(data.get("step", 0)))
            best = data.get("checkpoints") and data["score"] == max(data["checkpoints"])[0]
            if log_model and data.get("output_path") and best:
                mlflow.spacy.log_model(spacy.load(data["output_path"]), "best")

        return log_step, finalize

    return setup


def mlflow_metrics(data: Dict[str, Any]) -> Dict[str, float]:
    """One evaluation as MLflow metrics, named as spacy-loggers names them: score, loss_<component>
    and every dev score, nested ones dotted, e.g. {"score": 0.8, "loss_ner": 12.5, "ents_f": 0.7,
    "ents_per_type.SKILL.f": 0.75}."""
    metrics: Dict[str, float] = {}
    if data.get("score") is not None:
        metrics["score"] = float(data["score"])
    for component, loss in (data.get("losses") or {}).items():
        metrics[f"loss_{component}"] = float(loss)

    def flatten(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                flatten(f"{prefix}.{key}" if prefix else str(key), inner)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            metrics[prefix] = float(value)

    flatten("", data.get("other_scores") or {})
    return metrics


@registry.loggers("ner_textcat.wandb_logger.v1")
def wandb_logger(
    project_name: str = "ner_textcat",
    dir: str = "training",
    mode: str = "offline",
    run_name: Optional[str] = None,
    entity: Optional[str] = None,
    remove_config_values: List[str] = SimpleFrozenList(),
    log_custom_stats: Optional[List[str]] = None,
) -> Setup:
    """spacy-loggers' spacy.WandbLogger.v5, writing its runs under `dir`/wandb; mode "offline"
    needs no account or network (upload later with `wandb sync`), "online" logs to the server."""
    require("wandb", logger="ner_textcat.wandb_logger.v1", install="pip install wandb")
    make_tracker = registry.loggers.get("spacy.WandbLogger.v5")

    def setup(
        nlp: Language, stdout: IO = sys.stdout, stderr: IO = sys.stderr
    ) -> Tuple[LogStep, Callable[[], None]]:
        Path(dir).mkdir(parents=True, exist_ok=True)
        # spacy-loggers calls wandb.init without dir or mode; wandb reads both from these.
        os.environ["WANDB_DIR"] = str(Path(dir).resolve())
        os.environ["WANDB_MODE"] = mode
        tracker = make_tracker(
            project_name=project_name,
            run_name=run_name,
            entity=entity,
            remove_config_values=remove_config_values,
            log_custom_stats=log_custom_stats,
        )
        return tracker(nlp, stdout, stderr)

    return setup
