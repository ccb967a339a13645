"""Precompute the label set of every component from the training corpus, as `spacy init labels`.

python -m scripts.init_labels training/config.cfg training/labels
"""

from __future__ import annotations

from pathlib import Path

import typer

from scripts.common.errors import reported_as_one_line
from scripts.training.labels import init_labels

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    config_path: Path = typer.Argument(..., help="Filled training config (training/config.cfg)"),
    output_dir: Path = typer.Argument(..., help="Folder for the label files (training/labels)"),
) -> None:
    """Collect the labels of every component from the training corpus, one JSON file each."""
    with reported_as_one_line(project_step=True):
        written = init_labels(config_path=config_path, output_dir=output_dir)
    typer.echo(f"✔ Labels for {', '.join(written)} in {output_dir}")


if __name__ == "__main__":
    app()
