"""The search on Ray Tune (scripts.tune --engine ray): the same study, sampler and trials as the
local engine, with the trials spread over a Ray cluster's workers. It imports Ray Tune: import it
only for that engine (scripts/tuning/search.py does).

Ray Tune's OptunaSearch asks the study (the same SQLite file, so a run on Ray resumes a local one
and the other way round) with the same TPE sampler and search space; each trial runs
scripts.tuning.trial on a worker and reports its dev score per evaluation to Ray. Pruning is Ray
Tune's MedianStoppingRule, its counterpart of Optuna's MedianPruner (a trial whose best score is
below the median of the other trials' running means at the same evaluation stops), with the
[pruner] settings of the search space; a trial it stops is recorded in the study as pruned, as the
local engine records one.

The workers get this project's folder (scripts, configs) from Ray; the corpus, the base model and
the output folder are read at the paths the command was given, so on a cluster they must be on a
filesystem every node mounts at the same path.
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path
from typing import Any, Optional

import optuna
from ray import tune
from ray.tune.schedulers import MedianStoppingRule, TrialScheduler
from ray.tune.search.optuna import OptunaSearch

from scripts.common.errors import info
from scripts.common.files import PROJECT_ROOT
from scripts.common.ray_cluster import init_ray
from scripts.tuning.space import SearchSpace, suggest
from scripts.tuning.trial import TrialSetup, run_trial

# Not shipped to the workers: generated or large folders at the top of a project checkout
# (gitignore patterns: "/training/" would otherwise also match scripts/training/).
NOT_SHIPPED = ["/.git", "/.venvs/", "/corpus/", "/training/", "/packages/", "/assets/"]
METRIC = "score"


class MedianStopping(MedianStoppingRule):
    """Ray Tune's median stopping rule, noting the trials it stops in `stopped`."""

    def __init__(self, *, stopped: set[str], **options: Any) -> None:
        super().__init__(**options)
        self.stopped = stopped

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        decision = super().on_trial_result(tune_controller, trial, result)
        if decision == TrialScheduler.STOP:
            self.stopped.add(trial.trial_id)
        return decision


class PruningOptunaSearch(OptunaSearch):
    """OptunaSearch, telling the study that the trials in `stopped` were pruned: it would record
    them as complete, at the score they had when stopped."""

    def __init__(self, *, stopped: set[str], **options: Any) -> None:
        super().__init__(**options)
        self.stopped = stopped

    def on_trial_complete(
        self, trial_id: str, result: Optional[dict] = None, error: bool = False
    ) -> None:
        if trial_id in self.stopped and not error:
            if result and METRIC in result:
                self.on_trial_result(trial_id, result)  # the evaluation it was stopped at
            result = None  # no value and no error: OptunaSearch tells the study PRUNED
        super().on_trial_complete(trial_id, result=result, error=error)


def run_on_ray(
    *,
    setup: TrialSetup,
    trials: int,
    storage: str,
    study_name: str,
    output_dir: Path,
    seed: int = 0,
    address: Optional[str] = None,
    cpus_per_trial: float = 1.0,
    gpus_per_trial: float = 0.0,
) -> None:
    """Run `trials` more trials of the study in `storage` on Ray (a local one without address)."""
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        init_ray(address, runtime_env={"working_dir": str(PROJECT_ROOT), "excludes": NOT_SHIPPED})
    pruning, stopped = setup.space.pruning, set()
    tuner = tune.Tuner(
        tune.with_resources(
            tune.with_parameters(ray_trial, setup=setup, output_dir=output_dir.resolve()),
            {"cpu": cpus_per_trial, "gpu": gpus_per_trial},
        ),
        tune_config=tune.TuneConfig(
            search_alg=PruningOptunaSearch(
                stopped=stopped,
                space=partial(define_by_run, space=setup.space),
                metric=METRIC,
                mode="max",
                sampler=optuna.samplers.TPESampler(seed=seed),
                storage=optuna.storages.RDBStorage(storage),
                study_name=study_name,
            ),
            scheduler=MedianStopping(
                stopped=stopped,
                time_attr="training_iteration",
                metric=METRIC,
                mode="max",
                grace_period=pruning.min_evaluations,
                min_samples_required=max(1, pruning.startup_trials),
                # Never pause a trial to let others catch up: a paused trial would start again
                # from scratch, as trials keep no checkpoints.
                min_time_slice=math.inf,
            ),
            num_samples=trials,
        ),
        run_config=tune.RunConfig(storage_path=str((output_dir / "ray").resolve()), verbose=1),
    )
    try:
        results = tuner.fit()
    finally:
        if started_here:
            ray.shutdown()
    if results.errors:
        info(f"{len(results.errors)} trials failed on Ray; the first: {results.errors[0]}")


def define_by_run(trial: Any, *, space: SearchSpace) -> None:
    """The search space for OptunaSearch, which keeps what the trial suggests (a module-level
    function: Ray pickles the searcher with it)."""
    suggest(trial, space=space)


def ray_trial(values: dict, *, setup: TrialSetup, output_dir: Path) -> None:
    """One trial on a Ray worker: its dev score at each evaluation goes to Ray Tune."""
    folder = output_dir / "trials" / f"ray-{tune.get_context().get_trial_id()}"

    def report(evaluation: int, score: float) -> None:
        tune.report({METRIC: score, "evaluation": evaluation})

    run_trial(values, setup=setup, folder=folder, report=report)
