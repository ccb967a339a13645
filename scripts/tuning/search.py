"""The search (the code behind scripts/tune.py): an Optuna study in SQLite under the output folder,
its trials run in this process or on Ray Tune (ray_engine.py), then the best config and the report.

    tune(options=TuneOptions(base_path=Path("configs/base.cfg"), output=Path("training/tuned.cfg"),
                             space_path=Path("configs/search_space.cfg"), trials=20))

Resuming is rerunning: `trials` counts the trials that trained (complete or pruned), so a rerun
runs only those missing, and the sampler continues from the history in the study. A trial that
failed (out of memory, an interrupted run) is not counted and another takes its place. A study
remembers its setup (components, base model, corpus and the files' checksums): a rerun with
another setup is an error, not a mix of two searches.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

from spacy.util import load_config

from scripts.common.errors import UserError, info, one_line
from scripts.common.files import sha256_of
from scripts.training.config import parse_components
from scripts.tuning.space import read_space, suggest
from scripts.tuning.trial import TrialSetup, run_trial, write_trial_config

ENGINES = ("local", "ray")
STUDY_FILE = "study.db"
TRAINED_STATES = ("COMPLETE", "PRUNED")
INSTALL = "pip install -r requirements/tune.txt"
INSTALL_RAY = "pip install -r requirements/tune.txt -r requirements/ray.txt"
# A trial whose process died stops beating; after this long a later run marks it failed.
HEARTBEAT_S, GRACE_S = 60, 180


@dataclass(frozen=True)
class TuneOptions:
    base_path: Path
    output: Path  # the best config (training/tuned.cfg)
    space_path: Path
    trials: int
    components: str = "ner,textcat"
    transformer: str = "auto"
    lang: str = "en"
    train: Path = Path("corpus/train.spacy")
    dev: Path = Path("corpus/dev.spacy")
    output_dir: Path = Path("training/tune")
    max_epochs: int = 0
    gpu_id: str = "auto"
    seed: int = 0
    study: str = "recipe"
    engine: str = "local"
    address: Optional[str] = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    overrides: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TuneResult:
    study: str
    storage: str
    trained: int  # trials that trained, complete or pruned
    pruned: int
    best_trial: int
    best_score: float
    best_values: dict[str, Any]


def tune(*, options: TuneOptions) -> TuneResult:
    """Run the missing trials, then write the best config and the report."""
    optuna = require_optuna()
    setup = check_options(options)
    study = open_study(options=options, setup=setup)
    missing = options.trials - trained(study)
    if missing > 0:
        info(
            f"Study {options.study} in {storage_url(options.output_dir)}: {trained(study)} trials "
            f"trained, running {missing} more on the {options.engine} engine"
        )
        if options.engine == "ray":
            run_on_ray = require_ray_tune()
            run_on_ray(
                setup=setup,
                trials=missing,
                storage=storage_url(options.output_dir),
                study_name=options.study,
                output_dir=options.output_dir,
                seed=options.seed,
                address=options.address,
                cpus_per_trial=options.cpus_per_trial,
                gpus_per_trial=options.gpus_per_trial,
            )
        else:
            run_here(study, setup=setup, options=options, trials=missing)
    else:
        info(f"Study {options.study} has {trained(study)} trials trained; none to run")
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not done:
        raise UserError(
            f"study {options.study} has no complete trial (all pruned or failed; see the messages "
            "above); raise [pruner] startup_trials or run more --trials"
        )
    best = study.best_trial
    write_trial_config(
        best.params, setup=setup, output=options.output, workdir=options.output_dir / "best"
    )
    from scripts.tuning.report import write_report

    write_report(study, space=setup.space, output_dir=options.output_dir)
    pruned = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.PRUNED,)))
    info(
        f"Best: trial {best.number}, dev score {best.value:.4f}; wrote {options.output} and "
        f"{options.output_dir / 'report.html'} ({trained(study)} trials, {pruned} pruned)"
    )
    return TuneResult(
        study=options.study,
        storage=storage_url(options.output_dir),
        trained=trained(study),
        pruned=pruned,
        best_trial=best.number,
        best_score=float(best.value),
        best_values=dict(best.params),
    )


def require_optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise UserError(f"tuning needs Optuna, which is not installed: {INSTALL}") from None
    return optuna


def require_ray_tune() -> Any:
    """The Ray engine's entry point, or a UserError saying how to install Ray Tune."""
    try:
        import ray.tune  # noqa: F401
    except ImportError:
        raise UserError(f"--engine ray needs Ray Tune: {INSTALL_RAY}") from None
    from scripts.tuning.ray_engine import run_on_ray

    return run_on_ray


def check_options(options: TuneOptions) -> TrialSetup:
    """Everything a trial needs, checked before the first one starts."""
    if options.trials < 1:
        raise UserError(f"--trials {options.trials}: run at least 1 trial")
    if options.engine not in ENGINES:
        raise UserError(f"--engine {options.engine}: use one of {' | '.join(ENGINES)}")
    if options.engine == "ray" and str(options.gpu_id).strip().lower() != "auto":
        raise UserError(
            "--gpu-id picks the GPU of the local engine; on Ray each trial gets "
            "--gpus-per-trial GPUs: drop --gpu-id"
        )
    given = {options.base_path.resolve(), options.space_path.resolve()}
    if options.output.resolve() in given:
        raise UserError(
            f"{options.output}: is an input of the search; write the best config elsewhere"
        )
    for split, path in (("train", options.train), ("dev", options.dev)):
        if not path.is_file():
            raise UserError(
                f"{path}: {split} corpus not found; run the convert step first "
                f"(spacy project run convert) or pass --{split}"
            )
    if not options.base_path.is_file():
        raise UserError(f"{options.base_path}: base config not found")
    base = load_config(options.base_path, interpolate=False)
    space = read_space(
        options.space_path, base=base, components=parse_components(options.components)
    )
    clash = sorted(space.settings & set(options.overrides))
    if clash:
        raise UserError(
            f"--{clash[0]} is searched ({options.space_path}); drop the override, or its "
            "parameter from the search space to keep it fixed"
        )
    return TrialSetup(
        base_path=options.base_path.resolve(),
        space=space,
        components=options.components,
        transformer=options.transformer,
        lang=options.lang,
        train=options.train.resolve(),
        dev=options.dev.resolve(),
        max_epochs=options.max_epochs,
        gpu_id=options.gpu_id,
        overrides=dict(options.overrides),
    )


def storage_url(output_dir: Path) -> str:
    return f"sqlite:///{(output_dir / STUDY_FILE).resolve()}"


def study_setup(setup: TrialSetup, options: TuneOptions) -> dict[str, Any]:
    """What makes two runs one search: a study refuses to continue with anything else."""
    return {
        "components": setup.components,
        "transformer": setup.transformer,
        "lang": setup.lang,
        "max_epochs": setup.max_epochs,
        "overrides": {key: str(value) for key, value in sorted(setup.overrides.items())},
        "base config": sha256_of(setup.base_path),
        "search space": sha256_of(options.space_path),
        "train corpus": sha256_of(setup.train),
        "dev corpus": sha256_of(setup.dev),
    }


def open_study(*, options: TuneOptions, setup: TrialSetup) -> Any:
    """The study in output_dir/study.db: created, or loaded when its setup is this one."""
    import optuna

    options.output_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # the heartbeat
        storage = optuna.storages.RDBStorage(
            storage_url(options.output_dir), heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S
        )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        storage=storage,
        study_name=options.study,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=options.seed),
        pruner=optuna.pruners.MedianPruner(
            n_startup_trials=setup.space.pruning.startup_trials,
            n_warmup_steps=setup.space.pruning.min_evaluations,
        ),
        load_if_exists=True,
    )
    expected = study_setup(setup, options)
    recorded = study.user_attrs.get("setup")
    if recorded is None:
        study.set_user_attr("setup", expected)
    elif recorded != expected:
        changed = [key for key in expected if recorded.get(key) != expected[key]]
        raise UserError(
            f"{options.output_dir / STUDY_FILE}: study {options.study} searched with another "
            f"{', '.join(changed)}; pass --study <new name> to start a new search beside it"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # Trials of a run that died mid-trial (no heartbeat since) are failed, not left running.
        optuna.storages.fail_stale_trials(study)
    return study


def trained(study: Any) -> int:
    return sum(t.state.name in TRAINED_STATES for t in study.get_trials(deepcopy=False))


def run_here(study: Any, *, setup: TrialSetup, options: TuneOptions, trials: int) -> None:
    """Run the trials one after the other in this process."""
    import optuna

    def objective(trial: Any) -> float:
        values = suggest(trial, space=setup.space)
        folder = options.output_dir / "trials" / str(trial.number)

        def report(evaluation: int, score: float) -> None:
            trial.report(score, evaluation)
            if trial.should_prune():
                raise optuna.TrialPruned(
                    f"dev score {score:.4f} at evaluation {evaluation} is below the median"
                )

        info(f"Trial {trial.number}: {describe(values)}")
        try:
            return run_trial(values, setup=setup, folder=folder, report=report)
        except RuntimeError as err:  # e.g. out of memory at a large batch size: the next trial
            trial.set_user_attr("error", one_line(err))
            info(f"Trial {trial.number} failed: {one_line(err)}")
            raise

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # the heartbeat
        study.optimize(objective, n_trials=trials, catch=(RuntimeError,), gc_after_trial=True)


def describe(values: Mapping[str, Any]) -> str:
    return ", ".join(
        f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items()
    )
