"""Compare two evaluations (metrics.json from scripts.evaluate): deltas, overall and per label.

    python -m scripts.compare training/evaluation-baseline training/evaluation --margin 0.01 \
        [--bootstrap 1000]

--bootstrap N adds a paired bootstrap over both runs' predictions (predictions.spacy, which
scripts.evaluate writes beside metrics.json) on the same test documents: whether each difference
is significant, not only its size (scripts/scoring/bootstrap.py).
Exit status: 0 when no overall figure of the second run is worse than the first by more than the
margin, 1 when one is (for CI), 2 when a run cannot be read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from scripts.common.errors import UserError
from scripts.common.options import bootstrap_option, bootstrap_seed_option
from scripts.evaluation.comparison import (
    compare_metrics,
    describe_run,
    format_paired,
    format_table,
    notes,
    paired_comparison,
    read_metrics,
)

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    run_a: Path = typer.Argument(..., help="Baseline: metrics.json or the folder holding it"),
    run_b: Path = typer.Argument(..., help="Candidate: metrics.json or the folder holding it"),
    margin: float = typer.Option(
        0.01, "--margin", "-m", help="Largest drop (fraction, 0..1) that still passes"
    ),
    bootstrap: int = bootstrap_option(
        what="a paired bootstrap of the two runs' predictions, which says whether each "
        "difference is significant"
    ),
    seed: int = bootstrap_seed_option(),
    data: Optional[Path] = typer.Option(
        None,
        "--data",
        help="With --bootstrap: the test split both runs were scored on, where it is not at the "
        "path their metrics.json names",
    ),
) -> None:
    """Print per-label deltas of B against A; exit 1 when an overall figure of B is worse by more
    than the margin."""
    try:
        a, b = read_metrics(path=run_a), read_metrics(path=run_b)
    except UserError as err:  # exit 2, not fail()'s 1: CI can tell a broken input from a regression
        typer.echo(f"✘ {err}", err=True)
        raise typer.Exit(2) from None
    rows = compare_metrics(a=a, b=b, margin=margin)
    typer.echo(f"A: {describe_run(run_a, a)}\nB: {describe_run(run_b, b)}\n")
    typer.echo(format_table(rows, margin=margin))
    for note in notes(a=a, b=b):
        typer.echo(f"Note: {note}")
    if bootstrap:
        try:
            found = paired_comparison(
                run_a=run_a, run_b=run_b, a=a, b=b, n=bootstrap, seed=seed, data=data
            )
        except UserError as err:
            typer.echo(f"✘ {err}", err=True)
            raise typer.Exit(2) from None
        typer.echo("\n" + format_paired(found, n=bootstrap))
    worse = [row.figure for row in rows if row.worse]
    if worse:
        typer.echo(f"Worse: B is below A by more than {margin:.3f} on {', '.join(worse)}")
        raise typer.Exit(1)
    typer.echo(f"OK: no overall figure of B is below A by more than {margin:.3f}")


if __name__ == "__main__":
    app()
