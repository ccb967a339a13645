"""Give a saved pipeline entity scores: the entity_confidence component added right after its
entity recognizer (scripts/scoring/entity_confidence.py), for the train step and for pipelines
trained before it added one.

    add_confidence(model_dir=Path("old/model-best"), output_dir=Path("training/model-scored"))
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from scripts.common import spacy_internals  # noqa: F401  registers what the component's config names
from scripts.common.errors import UserError, one_line
from scripts.common.files import replace_dir
from scripts.scoring.entity_confidence import add_entity_confidence


def add_confidence(*, model_dir: Path, output_dir: Path, ner: str = "ner") -> bool:
    """Save model_dir with the component after `ner` to output_dir (which may be model_dir itself
    only for the train step's own scratch copy); False, and nothing written, where the pipeline
    already scores its entities."""
    import spacy

    if not (model_dir / "config.cfg").is_file():
        raise UserError(
            f"{model_dir}: no trained pipeline here (no config.cfg); pass a pipeline folder such "
            "as training/model-best"
        )
    try:
        nlp = spacy.load(model_dir)
    except Exception as err:  # config, IO and registry errors alike: one line for the user
        raise UserError(f"cannot load the pipeline {model_dir} ({one_line(err)})") from None
    if ner not in nlp.pipe_names:
        raise UserError(
            f"{model_dir}: the pipeline has no component '{ner}' to score "
            f"({', '.join(nlp.pipe_names)}); pass the entity recognizer's name with --ner"
        )
    if not add_entity_confidence(nlp, ner=ner):
        return False
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    # Saved beside the target first, so that a failed save leaves no half-written pipeline.
    staged = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", dir=output_dir.parent))
    try:
        nlp.to_disk(staged)
        replace_dir(staged, output_dir)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return True
