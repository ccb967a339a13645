"""Train the pipeline with `spacy train`, on the GPU when there is one, saying which device.

    python -m scripts.train training/config.cfg --output training --gpu-id auto

Extra `--section.key value` arguments override the config. Multi-label classifiers get their
threshold tuned on the dev set, and the entity recognizer the entity_confidence component that
scores its entities, calibrated on the dev set and disabled by default (scripts/training/run.py).
"""

from __future__ import annotations

from pathlib import Path

import typer

from scripts.common.errors import reported_as_one_line
from scripts.training.run import parse_bool, parse_overrides, train

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def main(
    ctx: typer.Context,
    config_path: Path = typer.Argument(..., help="Filled training config (training/config.cfg)"),
    output: Path = typer.Option(
        Path("training"), "--output", help="Folder for model-best and model-last"
    ),
    gpu_id: str = typer.Option(
        "auto", "--gpu-id", help="'auto' (GPU if usable, else CPU), -1 for the CPU, or a GPU index"
    ),
    mixed_precision: str = typer.Option(
        "false", "--mixed-precision", help="fp16 mixed precision (GPU only): true or false"
    ),
    entity_confidence: bool = typer.Option(
        True,
        "--entity-confidence/--no-entity-confidence",
        help="Add the entity_confidence component after ner, calibrated on the dev set and "
        "disabled by default: a score per entity (doc.spans) once turned on",
    ),
) -> None:
    """Train the pipeline; extra --section.key value arguments override the config."""
    with reported_as_one_line():
        train(
            config_path=config_path,
            output=output,
            gpu_id=gpu_id,
            mixed_precision=parse_bool(mixed_precision, var="mixed_precision"),
            overrides=parse_overrides(ctx.args),
            entity_confidence=entity_confidence,
        )


if __name__ == "__main__":
    app()
