"""Precompute label sets with spaCy's `init labels`, never reusing stale ones.

The config reads labels from ${paths.labels}; pointing that at an empty folder makes spaCy
collect them from the corpus afresh, and the result replaces the old folder in one step.

    python -m scripts.init_labels training/config.cfg training/labels
"""

from __future__ import annotations

from pathlib import Path

import typer

from scripts.common.errors import reported_as_one_line
from scripts.training.labels import init_labels


def main(
    config_path: Path = typer.Argument(..., help="Filled training config"),
    output_dir: Path = typer.Argument(..., help="Folder for the label files"),
) -> None:
    """Collect the labels of every component from the training corpus."""
    with reported_as_one_line():
        written = init_labels(config_path=config_path, output_dir=output_dir)
    typer.echo(f"✔ Labels for {', '.join(written)} in {output_dir}")


app = typer.Typer(add_completion=False)
app.command()(main)

if __name__ == "__main__":
    app()
