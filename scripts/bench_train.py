"""Benchmark the training recipe on a corpus: quality on its test split, words/s and wall time.

    python -m scripts.bench_train --train data/train.tsv --dev data/dev.tsv --test data/test.tsv \
        --components ner [--seeds 0,1,2]

It runs the workflow's own stages (scripts/workflow/stages.py: convert, config, labels, train,
evaluate) into --output and prints one JSON line; their messages go to stderr. --seeds trains once
per training seed ([system] seed), each run in --output/seed-N, prints each run's line, then one
line with the mean and standard deviation of each test figure over the seeds. Training speed
counts the words of every training pass, evaluation included in the time, as the training log
reports them.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Optional

import typer

from scripts.bench.recipe import across_seeds, bench_train
from scripts.common.errors import UserError, reported_as_one_line
from scripts.common.options import GPU_ID, gpu_id_option
from scripts.common.spacy_internals import parse_config_overrides
from scripts.convert import settings_from_words

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def main(
    ctx: typer.Context,
    train: str = typer.Option(
        ..., "--train", help="Training files, comma-separated, any format scripts.convert reads"
    ),
    dev: str = typer.Option("", "--dev", help="Dev files (empty: split off --train)"),
    test: str = typer.Option("", "--test", help="Test files (empty: split off --train)"),
    components: str = typer.Option("ner,textcat", "--components", help="As the components var"),
    transformer: str = typer.Option("auto", "--transformer", help="As the transformer var"),
    lang: str = typer.Option("en", "--lang", help="Language code"),
    max_epochs: int = typer.Option(0, "--max-epochs", help="Epochs; 0 scales them with the corpus"),
    gpu_id: str = gpu_id_option(),
    seed: int = typer.Option(0, "--seed", help="Seed of the dev/test split"),
    seeds: str = typer.Option(
        "",
        "--seeds",
        help="Training seeds, comma-separated, e.g. 0,1,2: one run each, then the mean and "
        "standard deviation of the test figures (empty: one run, the config's seed)",
    ),
    convert_options: str = typer.Option(
        "", "--convert-options", help="Extra options for scripts.convert, quoted"
    ),
    output_dir: Optional[Path] = typer.Option(
        None, "--output", help="Where the run goes (default: a temporary folder)"
    ),
) -> None:
    """Train and evaluate once; print quality, training words/s and wall time as one JSON line.
    Extra --section.key value arguments override the config, as for scripts.make_config."""
    with reported_as_one_line(options=GPU_ID):
        training_seeds = parse_seeds(seeds)
    overrides = parse_config_overrides(ctx.args)
    results = {}
    for training_seed in training_seeds or [None]:
        run_overrides = dict(overrides)
        run_output = output_dir
        if training_seed is not None:
            run_overrides["system.seed"] = training_seed
            run_output = output_dir / f"seed-{training_seed}" if output_dir else None
        with (
            reported_as_one_line(options=GPU_ID),
            tempfile.TemporaryDirectory() as tmp,
            contextlib.redirect_stdout(sys.stderr),  # stdout carries the result lines alone
        ):
            settings = settings_from_words(
                shlex.split(convert_options), lang=lang, option="--convert-options"
            )
            result = bench_train(
                train=train,
                dev=dev,
                test=test,
                components=components,
                transformer=transformer,
                max_epochs=max_epochs,
                gpu_id=gpu_id,
                seed=seed,
                settings=settings,
                output_dir=run_output or Path(tmp),
                config_overrides=run_overrides,
            )
            if run_output is None:
                result["output"] = None  # the temporary folder is gone
        print(json.dumps(dict(result, seed=training_seed) if training_seeds else result))
        results[training_seed] = result
    if training_seeds:
        print(json.dumps(across_seeds(results)))


def parse_seeds(text: str) -> list[int]:
    """--seeds 0,1,2 as [0, 1, 2]; empty: []."""
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserError(
            f"--seeds {text!r}: not a comma-separated list of whole numbers, e.g. --seeds 0,1,2"
        ) from None
    if len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds {text!r} repeats a seed; give each once, e.g. --seeds 0,1,2")
    return seeds


if __name__ == "__main__":
    app()
