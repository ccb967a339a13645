"""One trial of the search: a training config from the trial's values, written by the config step's
own code (make_config), then trained with `spacy train` on train and scored on dev at each
evaluation, each score passed to the search as it comes so that it can stop the trial.

    setup = TrialSetup(base_path=..., space=space, components="ner,textcat", ...)
    score = run_trial({"learn_rate": 0.0003, ...}, setup=setup, folder=Path("trials/0"),
                      report=lambda evaluation, best_score: None)

A trial saves no model: the search keeps each trial's config.cfg and curves.jsonl in its folder,
and the train step trains the best config (training/tuned.cfg) into a pipeline.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Dict, Iterator, Mapping, Optional, Tuple

from spacy.language import Language
from spacy.util import load_config, registry

from scripts.common.errors import UserError
from scripts.common.files import write_bytes_atomic
from scripts.training.config import CURVES_LOGGER, make_config
from scripts.tuning.space import SearchSpace, apply_values

TRIAL_REPORTER = "ner_textcat.trial_reporter.v1"
# evaluation number (from 1), best dev score so far -> None, or raise to stop the trial
Report = Callable[[int, float], None]
# Reporters of the trials training in this process, by the key their config names.
REPORTERS: Dict[str, Report] = {}


@dataclass(frozen=True)
class TrialSetup:
    """What every trial of a study shares: the config step's inputs, the space and the device."""

    base_path: Path
    space: SearchSpace
    components: str
    transformer: str
    lang: str
    train: Path
    dev: Path
    max_epochs: int = 0  # 0: as the config step scales it, unless the space searches epochs
    gpu_id: str = "auto"
    overrides: Mapping[str, Any] = field(default_factory=dict)  # --section.key values


def write_trial_config(
    values: Mapping[str, Any], *, setup: TrialSetup, output: Path, workdir: Path
) -> Path:
    """The filled training config for these values at `output`: the base config with the values
    set (workdir/base.cfg), filled by the config step for the training corpus, then the warm-up
    set as a share of the steps the config step counted."""
    base = load_config(setup.base_path, interpolate=False)
    config, schedule = apply_values(base, values, space=setup.space)
    trial_base = workdir / "base.cfg"
    write_bytes_atomic(trial_base, config.to_str(interpolate=False).encode("utf8"))
    steps = make_config(
        base_path=trial_base,
        output=output,
        components=setup.components,
        transformer=setup.transformer,
        lang=setup.lang,
        train=setup.train,
        max_epochs=schedule.epochs if schedule.epochs is not None else setup.max_epochs,
        overrides=dict(setup.overrides),
    )
    if schedule.warmup is not None:
        filled = load_config(output, interpolate=False)
        rate = filled["training"]["optimizer"]["learn_rate"]
        rate["warmup_steps"] = max(1, round(schedule.warmup * steps.total_steps))
        write_bytes_atomic(output, filled.to_str(interpolate=False).encode("utf8"))
    return output


def run_trial(
    values: Mapping[str, Any], *, setup: TrialSetup, folder: Path, report: Report
) -> float:
    """Train one trial on train with its folder's config; its best dev score. `report` gets the
    best dev score so far at each evaluation, and may raise to stop the trial there."""
    from spacy.cli.train import train as spacy_train

    import scripts.training.registry  # noqa: F401  registers what the config names
    from scripts.common.device import activate, resolve_device

    folder.mkdir(parents=True, exist_ok=True)
    config_path = write_trial_config(
        values, setup=setup, output=folder / "config.cfg", workdir=folder
    )
    logger = load_config(config_path, interpolate=False)["training"]["logger"]
    if logger.get("@loggers") != CURVES_LOGGER:
        raise UserError(
            f"{setup.base_path} [training.logger] is {logger.get('@loggers')}; tuning reads the "
            f"dev scores through {CURVES_LOGGER}: name it there"
        )
    device = resolve_device(setup.gpu_id)
    activate(device)
    best: list[float] = []

    def keep_best(evaluation: int, score: float) -> None:
        best[:] = [max(best + [score])]
        report(evaluation, best[0])

    key = str(folder.resolve())
    overrides = {
        "paths.train": str(setup.train),
        "paths.dev": str(setup.dev),
        # No labels are precomputed there: they come from the corpus, never from a stale folder.
        "paths.labels": str(folder / "labels"),
        "paths.curves": str(folder / "curves.jsonl"),
        "training.logger.tracker": {"@loggers": TRIAL_REPORTER, "trial": key},
    }
    with reporting(key, keep_best):
        spacy_train(config_path, None, use_gpu=device.gpu_id, overrides=overrides)
    if not best:
        raise UserError(
            f"{config_path}: training logged no evaluation; give the trials more steps "
            "(the epochs in the search space, or --max-epochs)"
        )
    return best[0]


@contextmanager
def reporting(key: str, report: Report) -> Iterator[None]:
    """Make `report` the reporter of the trial whose config names `key`, while training runs."""
    REPORTERS[key] = report
    try:
        yield
    finally:
        REPORTERS.pop(key, None)


Setup = Callable[..., Tuple[Callable[[Optional[Dict[str, Any]]], None], Callable[[], None]]]


@registry.loggers(TRIAL_REPORTER)
def trial_reporter(trial: str) -> Setup:
    """Pass each evaluation's dev score (spaCy's weighted `score`, the one that picks model-best)
    to the search running trial `trial` in this process: the tracker of
    ner_textcat.curves_logger.v1 while scripts.tune trains, never in a saved config."""

    def setup(
        nlp: Language, stdout: IO = sys.stdout, stderr: IO = sys.stderr
    ) -> Tuple[Callable[[Optional[Dict[str, Any]]], None], Callable[[], None]]:
        if trial not in REPORTERS:
            raise UserError(
                f"[training.logger.tracker] {TRIAL_REPORTER} reports to a running search "
                "(python -m scripts.tune); remove it from the config to train on its own"
            )
        report = REPORTERS[trial]
        evaluations = 0

        def log_step(info: Optional[Dict[str, Any]]) -> None:
            nonlocal evaluations
            if info is not None and info.get("score") is not None:
                evaluations += 1
                report(evaluations, float(info["score"]))

        return log_step, lambda: None

    return setup
