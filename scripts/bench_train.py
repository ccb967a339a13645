"""Benchmark the training recipe on a corpus: quality on its test split, words/s and wall time.

    python -m scripts.bench_train --train data/train.tsv --dev data/dev.tsv --test data/test.tsv \
        --components ner

It runs the workflow's own stages (convert, config, train, evaluate) into --output and prints
one JSON line. Training speed counts the words of every training pass, evaluation included in
the time, as the training log reports them.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Optional

import typer

from scripts.bench.recipe import bench_train
from scripts.common.errors import reported_as_one_line
from scripts.common.options import GPU_ID, gpu_id_option

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
    convert_options: str = typer.Option(
        "", "--convert-options", help="Extra options for scripts.convert, quoted"
    ),
    output_dir: Optional[Path] = typer.Option(
        None, "--output", help="Where the run goes (default: a temporary folder)"
    ),
) -> None:
    """Train and evaluate once; print quality, training words/s and wall time as one JSON line.
    Extra --section.key value arguments override the config, as for scripts.make_config."""
    with reported_as_one_line(options=GPU_ID), tempfile.TemporaryDirectory() as tmp:
        result = bench_train(
            train=train,
            dev=dev,
            test=test,
            components=components,
            transformer=transformer,
            lang=lang,
            max_epochs=max_epochs,
            gpu_id=gpu_id,
            seed=seed,
            convert_options=convert_options,
            output_dir=output_dir or Path(tmp),
            config_overrides=list(ctx.args),
        )
        if output_dir is None:
            result["output"] = None  # the temporary folder is gone
    print(json.dumps(result))


if __name__ == "__main__":
    app()
