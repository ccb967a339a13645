"""Annotate a corpus with a trained pipeline: JSON lines with entities and label scores per record.

    python -m scripts.annotate training/model-best texts.jsonl annotated.jsonl
    python -m scripts.annotate en_job_postings texts.csv tasks.json --format labelstudio
    python -m scripts.annotate en_job_postings texts.jsonl out.jsonl --engine ray --address auto

Input: JSON lines or a JSON array (a "text" field; the record's other fields are kept), CSV (a text
column) or plain text (one text per line). Output line i belongs to input record i, so a rerun
resumes after the last complete line (a partial last line from an interrupted run is dropped). Both
engines cut the input into the same batches and predict through scripts.inference.predict, so they
write the same bytes. A record whose text spaCy cannot take (a lone surrogate such as "\\ud800" in
JSON) keeps its line with an "error" field instead of predictions; --strict stops before writing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from scripts.common.errors import UserError, info, reported_as_one_line
from scripts.common.options import (
    GPU_ID,
    gpu_id_option,
    min_score_option,
    model_argument,
    pipe_batch_size_option,
    uncertainty_option,
)
from scripts.inference.annotation import Job, annotate_file

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
MAX_WARNINGS = 20  # records not predicted, listed one a line; the rest are counted


@app.command()
def main(
    model: str = model_argument(),
    input_path: Path = typer.Argument(
        ...,
        help="Texts: .jsonl/.json (a text field), .csv/.tsv (a text column) or plain text lines",
    ),
    output_path: Path = typer.Argument(
        ..., help="Annotated JSON lines, or a Label Studio JSON file with --format labelstudio"
    ),
    engine: str = typer.Option(
        "local",
        "--engine",
        help="local: this process; ray: Ray Data workers (pip install -r requirements/ray.txt)",
    ),
    address: Optional[str] = typer.Option(
        None,
        "--address",
        help="Ray cluster address (e.g. auto or ray://host:10001); default: a local Ray",
    ),
    batch_size: Optional[int] = pipe_batch_size_option(what="Records"),
    fmt: str = typer.Option(
        "jsonl",
        "--format",
        help="jsonl: records + entities + cats; labelstudio: import JSON with predictions",
    ),
    text_field: str = typer.Option(
        "text", "--text-field", help="The field or column that holds the text"
    ),
    label_config: Optional[Path] = typer.Option(
        None,
        "--label-config",
        help="Label Studio labeling config (XML) whose tag names the predictions use",
    ),
    gpu_id: str = gpu_id_option(),
    workers: int = typer.Option(
        1, "--workers", min=1, help="ray engine: pipeline copies running in parallel"
    ),
    cpus_per_worker: float = typer.Option(
        1.0, "--cpus-per-worker", help="ray engine: CPUs (torch threads) per worker"
    ),
    gpus_per_worker: float = typer.Option(
        0.0, "--gpus-per-worker", help="ray engine: GPUs per worker (0: CPU only)"
    ),
    progress: bool = typer.Option(
        True, "--progress/--no-progress", help="Show a progress bar with documents/s"
    ),
    strict: bool = typer.Option(
        False,
        "--strict",
        help="Stop before writing when a text cannot be predicted (default: write it with an "
        '"error" field and go on)',
    ),
    min_score: float = min_score_option(),
    uncertainty: str = uncertainty_option(),
) -> None:
    """Annotate INPUT with MODEL into OUTPUT; rerun the same command to resume."""
    with reported_as_one_line(options=GPU_ID, project_step=True):
        if label_config is not None and not label_config.is_file():
            raise UserError(
                f"--label-config {label_config}: file not found; save the labeling config XML "
                "from the project settings"
            )
        job = Job(
            model=model,
            text_field=text_field,
            fmt=fmt,
            batch_size=batch_size,
            label_config=label_config.read_text(encoding="utf8") if label_config else None,
            min_score=min_score,
            uncertainty=uncertainty,
        )
        summary = annotate_file(
            job=job,
            input_path=input_path,
            output_path=output_path,
            engine=engine,
            address=address,
            gpu_id=gpu_id,
            workers=workers,
            cpus_per_worker=cpus_per_worker,
            gpus_per_worker=gpus_per_worker,
            progress=progress,
            strict=strict,
        )
    for warning in summary.not_predicted[:MAX_WARNINGS]:
        typer.echo(f"⚠ {warning}", err=True)
    if len(summary.not_predicted) > MAX_WARNINGS:
        more = len(summary.not_predicted) - MAX_WARNINGS
        typer.echo(f'⚠ ... and {more} more records written with an "error" field', err=True)
    if summary.written == 0:
        info(f"Nothing to do: all {summary.total} records of {input_path} are in {output_path}")
        return
    rate = summary.written / summary.seconds if summary.seconds > 0 else 0.0
    info(
        f"Annotated {summary.written} records ({summary.skipped} already done) of "
        f"{summary.total} into {output_path} in {summary.seconds:.1f} s ({rate:.1f} docs/s)"
    )


if __name__ == "__main__":
    app()
