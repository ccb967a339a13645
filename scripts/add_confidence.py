"""Give a trained pipeline a score per entity: save a copy with the entity_confidence component
right after its entity recognizer, calibrated on the dev set and disabled by default (the train
step adds it already; this is for pipelines trained before, or to calibrate again).

    python -m scripts.add_confidence old/model-best training/model-scored --dev corpus/dev.spacy

The copy's entities are the same; once the component is turned on (scripts.evaluate,
scripts.annotate, scripts.serve and scripts.explain do it; `nlp.enable_pipe("entity_confidence")`
in your code), doc.spans["ents_scored"] holds them with attrs["scores"]
(scripts/scoring/entity_confidence.py). An entity_confidence the pipeline had is replaced.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from scripts.common.errors import UserError, info, reported_as_one_line
from scripts.training.confidence import add_confidence, calibrated

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    model_dir: Path = typer.Argument(..., help="Trained pipeline folder, e.g. training/model-best"),
    output_dir: Path = typer.Argument(..., help="Folder for the copy with entity scores"),
    ner: str = typer.Option("ner", "--ner", help="Name of the entity recognizer to score"),
    dev: Optional[Path] = typer.Option(
        None,
        "--dev",
        help="Annotated .spacy data to calibrate the scores on, e.g. corpus/dev.spacy; without "
        "it the scores are the recognizer's uncalibrated probabilities",
    ),
) -> None:
    """Save MODEL_DIR with the entity_confidence component to OUTPUT_DIR."""
    with reported_as_one_line():
        if output_dir.resolve() == model_dir.resolve():
            raise UserError(f"{output_dir} is the input pipeline; pass another folder for the copy")
        added = add_confidence(model_dir=model_dir, output_dir=output_dir, ner=ner, dev_path=dev)
    how = calibrated(added) if dev is not None else "uncalibrated (no --dev)"
    info(f"Wrote {output_dir}: {model_dir} with {added.name} after {ner}, disabled; {how}")


if __name__ == "__main__":
    app()
