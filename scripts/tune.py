"""Search the recipe's hyperparameters with Optuna on train and dev; write the best config.

    python -m scripts.tune configs/base.cfg training/tuned.cfg --trials 20
    python -m scripts.tune configs/base.cfg training/tuned.cfg --engine ray --address auto

configs/search_space.cfg says what is searched. The study lives in training/tune/study.db: rerun
the command to resume it (--trials counts the trials trained so far). training/tune/report.html
shows every trial and each parameter's importance; train the best config with
`spacy project run train --vars.config training/tuned.cfg`. Extra `--section.key value`
arguments override configs/base.cfg for every trial, as for scripts.make_config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from scripts.common.errors import reported_as_one_line
from scripts.common.options import GPU_ID, gpu_id_option
from scripts.training.config import VALID_COMPONENTS
from scripts.training.run import parse_overrides
from scripts.tuning.search import ENGINES, TuneOptions, tune

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def main(
    ctx: typer.Context,
    base_path: Path = typer.Argument(..., help="Base config (configs/base.cfg)"),
    output: Path = typer.Argument(..., help="Where to write the best config (training/tuned.cfg)"),
    space: Path = typer.Option(
        Path("configs/search_space.cfg"), "--space", help="What to search, and the pruner"
    ),
    trials: int = typer.Option(
        20, "--trials", help="Trials to train, those of earlier runs included"
    ),
    components: str = typer.Option(
        "ner,textcat", "--components", help=f"One of: {' | '.join(VALID_COMPONENTS)}"
    ),
    transformer: str = typer.Option(
        "auto", "--transformer", help="'auto', a Hugging Face hub name or a local model folder"
    ),
    lang: str = typer.Option("en", "--lang", help="Language code of the texts"),
    train: Path = typer.Option(Path("corpus/train.spacy"), "--train", help="Training corpus"),
    dev: Path = typer.Option(
        Path("corpus/dev.spacy"), "--dev", help="Dev corpus, scored by trials"
    ),
    output_dir: Path = typer.Option(
        Path("training/tune"), "--output-dir", help="The study, each trial's config and the report"
    ),
    max_epochs: int = typer.Option(
        0, "--max-epochs", help="Epochs when the space does not search them; 0 scales them"
    ),
    gpu_id: str = gpu_id_option(),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampler"),
    study: str = typer.Option(
        "recipe", "--study", help="Study name in the output folder; a new name starts a new search"
    ),
    engine: str = typer.Option(
        "local",
        "--engine",
        help=f"{' | '.join(ENGINES)}: trials in this process, or on Ray Tune "
        "(pip install -r requirements/ray.txt)",
    ),
    address: Optional[str] = typer.Option(
        None, "--address", help="ray engine: cluster address (e.g. auto); default: a local Ray"
    ),
    cpus_per_trial: float = typer.Option(1.0, "--cpus-per-trial", help="ray engine: CPUs a trial"),
    gpus_per_trial: float = typer.Option(0.0, "--gpus-per-trial", help="ray engine: GPUs a trial"),
) -> None:
    """Search the hyperparameters of configs/search_space.cfg on train and dev, resumably; write
    the best config, and training/tune/report.html. Extra --section.key value arguments override
    the base config for every trial."""
    with reported_as_one_line(options=GPU_ID):
        tune(
            options=TuneOptions(
                base_path=base_path,
                output=output,
                space_path=space,
                trials=trials,
                components=components,
                transformer=transformer,
                lang=lang,
                train=train,
                dev=dev,
                output_dir=output_dir,
                max_epochs=max_epochs,
                gpu_id=gpu_id,
                seed=seed,
                study=study,
                engine=engine,
                address=address,
                cpus_per_trial=cpus_per_trial,
                gpus_per_trial=gpus_per_trial,
                overrides=parse_overrides(ctx.args),
            )
        )


if __name__ == "__main__":
    app()
