"""Write the cold-start model: what `serve --cold-start` serves before anything is annotated,
entities from entity ruler patterns and categories by zero-shot similarity to their names or
descriptions (scripts/inference/cold_start.py). Score it like any pipeline:

    python -m scripts.cold_start cold-start --labels FASHION_BRAND --patterns patterns.jsonl \
        --categories "DOCUMENTATION=a problem with the documentation" --categories OTHER
    python -m scripts.evaluate cold-start corpus/test.spacy --output training/cold-start-eval
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from scripts.common.errors import reported_as_one_line
from scripts.common.options import cold_start_option
from scripts.inference.cold_start import build_cold_start, cold_start_spec

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    output: Path = typer.Argument(..., help="The pipeline folder to write (replaced whole)"),
    labels: Optional[List[str]] = cold_start_option("labels"),
    categories: Optional[List[str]] = cold_start_option("categories"),
    patterns: Optional[Path] = cold_start_option("patterns"),
    lang: str = cold_start_option("lang"),
    transformer: str = cold_start_option("transformer"),
) -> None:
    """Write a model that predicts from patterns and category names, trained on nothing."""
    with reported_as_one_line():
        spec = cold_start_spec(
            labels=labels,
            categories=categories,
            patterns=patterns,
            lang=lang,
            transformer=transformer,
        )
        build_cold_start(spec, output=output)
    typer.echo(f"Wrote the cold-start model to {output}")


if __name__ == "__main__":
    app()
