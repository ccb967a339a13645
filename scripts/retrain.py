"""Retrain on the annotations a server stored (serve --data-dir DIR) and say whether the candidate
is no worse than the served model: what the server runs in the background, runnable by hand.

    python -m scripts.retrain ls-data --model training/model-best --epochs 5 \
        --with corpus/train.spacy --dev corpus/dev.spacy

Writes DIR/runs/<run>/ (corpus, config, model-best, both evaluations, compare.txt, result.json);
serve the candidate with python -m scripts.serve DIR/runs/<run>/model-best.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from scripts.common.errors import fail, reported_as_one_line
from scripts.common.options import GPU_ID, gpu_id_option, retrain_option
from scripts.inference.annotation_check import MAX_CHARS
from scripts.inference.retraining import (
    RetrainSettings,
    check_data_files,
    file_list,
    next_run,
    retrain,
)

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    data_dir: Path = typer.Argument(..., help="The --data-dir of scripts.serve"),
    model: str = typer.Option(
        ..., "--model", help="The served model to compare with (folder or package name)"
    ),
    run: int = typer.Option(0, "--run", min=0, help="Run number (DIR/runs/<run>); 0: the next"),
    upto: Optional[int] = typer.Option(
        None, "--upto", min=0, help="Use the journal up to this line; default: all of it"
    ),
    epochs: int = retrain_option("epochs", RetrainSettings.epochs),
    margin: float = retrain_option("margin", RetrainSettings.margin),
    test: Optional[Path] = retrain_option("test", None),
    gpu_id: str = gpu_id_option(),
    with_data: Optional[list[str]] = retrain_option("with", None),
    dev: Optional[list[str]] = retrain_option("dev", None),
    max_chars: int = typer.Option(
        MAX_CHARS,
        "--max-chars",
        min=1,
        help="Skip annotated texts longer than this (the server's --max-chars)",
    ),
) -> None:
    """Train a candidate on DIR's annotations and compare it with MODEL on held-out data."""
    with reported_as_one_line(options=GPU_ID):
        if not (data_dir / "annotations.jsonl").is_file():
            fail(f"{data_dir}: no annotations.jsonl; pass the --data-dir of scripts.serve")
        settings = RetrainSettings(
            epochs=epochs,
            margin=margin,
            test=test,
            gpu_id=gpu_id,
            with_data=file_list(with_data),
            dev=file_list(dev),
            max_chars=max_chars,
        )
        check_data_files(settings, with_option="--with", dev_option="--dev")
        outcome = retrain(
            data_dir=data_dir,
            model=model,
            run=run or next_run(data_dir),
            upto=upto,
            settings=settings,
        )
    typer.echo(f"{outcome.result}: {outcome.reason}")
    if outcome.result == "failed":
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
