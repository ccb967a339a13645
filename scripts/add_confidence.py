"""Give a trained pipeline a score per entity: save a copy with the entity_confidence component
right after its entity recognizer (the train step adds it already; this is for older pipelines).

    python -m scripts.add_confidence old/model-best training/model-scored

The copy's entities are the same; doc.spans["ents_scored"] holds them with attrs["scores"]
(scripts/scoring/entity_confidence.py), and scripts.evaluate, scripts.annotate, scripts.serve and
scripts.package use them.
"""

from __future__ import annotations

from pathlib import Path

import typer

from scripts.common.errors import UserError, info, reported_as_one_line
from scripts.training.confidence import add_confidence

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    model_dir: Path = typer.Argument(..., help="Trained pipeline folder, e.g. training/model-best"),
    output_dir: Path = typer.Argument(..., help="Folder for the copy with entity scores"),
    ner: str = typer.Option("ner", "--ner", help="Name of the entity recognizer to score"),
) -> None:
    """Save MODEL_DIR with the entity_confidence component to OUTPUT_DIR."""
    with reported_as_one_line():
        if output_dir.resolve() == model_dir.resolve():
            raise UserError(f"{output_dir} is the input pipeline; pass another folder for the copy")
        added = add_confidence(model_dir=model_dir, output_dir=output_dir, ner=ner)
    if added:
        info(f"Wrote {output_dir}: {model_dir} with entity_confidence after {ner}")
    else:
        info(f"{model_dir} already scores its entities (entity_confidence); nothing written")


if __name__ == "__main__":
    app()
