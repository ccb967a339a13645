"""Peer baseline, NOT part of the project's workflow: fine-tune the same base model with a plain
Hugging Face `transformers.Trainer` on the same corpus split, to compare with scripts.bench_train
at equal epochs.

    python -m scripts.convert --train train.tsv --dev "" --test test.tsv --output-dir corpus
    python -m scripts.peer_hf_trainer corpus --task ner --epochs 3

It needs `accelerate` (pip install -r requirements/peer.txt). How each task is trained and scored:
scripts/bench/peer_hf_trainer.py.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Optional

import transformers
import typer

from scripts.bench.peer_hf_trainer import peer_train
from scripts.common.cats import POSITIVE
from scripts.common.errors import reported_as_one_line

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    corpus_dir: Path = typer.Argument(
        ..., help="Folder with train.spacy, dev.spacy and test.spacy"
    ),
    task: str = typer.Option(..., "--task", help="ner, textcat or textcat_multilabel"),
    epochs: int = typer.Option(
        ..., "--epochs", help="Training epochs (compare at the recipe's count)"
    ),
    transformer: str = typer.Option("auto", "--transformer", help="As the transformer var"),
    lang: str = typer.Option("en", "--lang", help="Language code"),
    batch_size: int = typer.Option(8, "--batch-size", help="Examples per training step"),
    learning_rate: float = typer.Option(5e-5, "--learning-rate", help="Peak learning rate"),
    seed: int = typer.Option(0, "--seed", help="Seed of the head's init and the shuffling"),
    threshold: float = typer.Option(
        POSITIVE, "--threshold", help="textcat_multilabel: a label is predicted at >= this"
    ),
    output_dir: Optional[Path] = typer.Option(
        None, "--output", help="Trainer checkpoints (default: a temporary folder)"
    ),
) -> None:
    """Fine-tune with a plain Hugging Face Trainer; print quality and training words/s as one JSON
    line."""
    transformers.logging.set_verbosity_warning()
    # the Trainer prints its logs to stdout, which carries only the result line
    with reported_as_one_line(), contextlib.redirect_stdout(sys.stderr):
        result = peer_train(
            corpus_dir=corpus_dir,
            task=task,
            epochs=epochs,
            transformer=transformer,
            lang=lang,
            batch_size=batch_size,
            learning_rate=learning_rate,
            seed=seed,
            threshold=threshold,
            output_dir=output_dir,
        )
    print(json.dumps(result))


if __name__ == "__main__":
    app()
