"""Evaluate a trained pipeline on gold data: metrics.json, report.html and plots/*.png in a folder.

    python -m scripts.evaluate training/model-best corpus/test.spacy --output training/evaluation \
        [--bootstrap 1000]

The layout of metrics.json is documented at the top of scripts/scoring/metrics.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from scripts.common.errors import reported_as_one_line
from scripts.common.options import (
    GPU_ID,
    bootstrap_option,
    bootstrap_seed_option,
    gpu_id_option,
    model_argument,
)
from scripts.evaluation.run import evaluate_model, summary

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    model: str = model_argument(),
    data_path: Path = typer.Argument(
        ..., help="Gold data as a .spacy DocBin, e.g. corpus/test.spacy"
    ),
    output_dir: Path = typer.Option(
        ..., "--output", "-o", help="Folder for metrics.json, report.html, plots/"
    ),
    gold_preproc: bool = typer.Option(
        False,
        "--gold-preproc",
        "-G",
        help="Run the model on the gold tokens instead of the raw text (for token-per-line data)",
    ),
    batch_size: int = typer.Option(
        64, "--batch-size", "-b", help="Documents per batch for nlp.pipe"
    ),
    gpu_id: str = gpu_id_option(),
    max_examples: int = typer.Option(
        50, "--max-examples", help="Error examples per task in the report"
    ),
    curves: Optional[Path] = typer.Option(
        None,
        "--curves",
        help="The train step's curves.jsonl, drawn as plots/training_curves.png and in the report",
    ),
    explain: int = typer.Option(
        10,
        "--explain",
        min=0,
        help="Misclassified texts whose words the report weighs for the predicted and gold label "
        "(needs shap: pip install -r requirements/explain.txt; 0: none)",
    ),
    explain_max_evals: int = typer.Option(
        100,
        "--explain-max-evals",
        min=4,
        help="Texts the pipeline scores per explanation at most (more: finer, slower)",
    ),
    bootstrap: int = bootstrap_option(
        what="95% intervals of every overall figure, in metrics.json and the report"
    ),
    seed: int = bootstrap_seed_option(),
) -> None:
    """Score a trained pipeline on gold data; write metrics.json, report.html and PNG plots."""
    with reported_as_one_line(options=GPU_ID, project_step=True):
        metrics = evaluate_model(
            model=model,
            data_path=data_path,
            output_dir=output_dir,
            gold_preproc=gold_preproc,
            batch_size=batch_size,
            gpu_id=gpu_id,
            max_examples=max_examples,
            curves_path=curves,
            explain=explain,
            explain_max_evals=explain_max_evals,
            bootstrap=bootstrap,
            seed=seed,
        )
    for warning in metrics["warnings"]:
        typer.echo(f"⚠ {warning}", err=True)
    typer.echo("\n".join(summary(metrics, output_dir)))


if __name__ == "__main__":
    app()
