"""Train the pipeline with `spacy train`, on the GPU when there is one, saying which device.

    python -m scripts.train training/config.cfg --output training --gpu-id auto

Extra `--section.key value` arguments override the config. Multi-label classifiers get their
threshold tuned on the dev set, the entity recognizer the entity_confidence component that
scores its entities (calibrated on the dev set, disabled by default), and both pipelines the
package's --name and --version in their meta (scripts/training/run.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from scripts.common.errors import reported_as_one_line
from scripts.common.options import GPU_ID, gpu_id_option
from scripts.training.run import parse_bool, parse_overrides, train

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def main(
    ctx: typer.Context,
    config_path: Path = typer.Argument(..., help="Filled training config (training/config.cfg)"),
    output: Path = typer.Option(
        Path("training"), "--output", help="Folder for model-best and model-last"
    ),
    gpu_id: str = gpu_id_option(),
    mixed_precision: str = typer.Option(
        "false", "--mixed-precision", help="fp16 mixed precision (GPU only): true or false"
    ),
    entity_confidence: bool = typer.Option(
        True,
        "--entity-confidence/--no-entity-confidence",
        help="Add the entity_confidence component after ner, calibrated on the dev set and "
        "disabled by default: a score per entity (doc.spans) once turned on",
    ),
    name: Optional[str] = typer.Option(
        None,
        "--name",
        help="Package name without the language prefix, into the pipelines' meta "
        "(spaCy's 'pipeline' if not given)",
    ),
    version: Optional[str] = typer.Option(
        None,
        "--version",
        help="Package version, into the pipelines' meta (spaCy's 0.0.0 if not given)",
    ),
) -> None:
    """Train the pipeline; extra --section.key value arguments override the config."""
    with reported_as_one_line(
        options={**GPU_ID, "name": "--name", "version": "--version"}, project_step=True
    ):
        train(
            config_path=config_path,
            output=output,
            gpu_id=gpu_id,
            mixed_precision=parse_bool(mixed_precision, var="mixed_precision"),
            overrides=parse_overrides(ctx.args),
            entity_confidence=entity_confidence,
            name=name,
            version=version,
        )


if __name__ == "__main__":
    app()
