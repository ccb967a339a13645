"""Give a saved pipeline entity scores: the entity_confidence component added right after its
entity recognizer (scripts/scoring/entity_confidence.py), calibrated on the dev set and saved
disabled, for the train step and for pipelines trained before.

    added = add_confidence(model_dir=Path("old/model-best"), output_dir=Path("training/scored"),
                           dev_path=Path("corpus/dev.spacy"))
    added.calibration.scale, added.calibration.shift    # stored in the component's config

Saved disabled (`[nlp] disabled`), the component costs plain `nlp.pipe` nothing; evaluate,
annotate, serve and explain turn it on (scripts.scoring.pipeline.load_pipeline), users with
`nlp.enable_pipe("entity_confidence")`.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from spacy.language import Language
from spacy.tokens import DocBin
from thinc.api import Config

from scripts.common import spacy_internals  # noqa: F401  registers what the component's config names
from scripts.common.errors import UserError, one_line
from scripts.common.files import replace_dir
from scripts.scoring.calibration import Calibration, fit_calibration
from scripts.scoring.entity_confidence import ENTITY_CONFIDENCE, add_entity_confidence
from scripts.scoring.metrics import has_ent_annotation, match_ents
from scripts.scoring.pipeline import labels_of


@dataclass(frozen=True)
class Added:
    """What add_confidence saved: the component's name and its calibration (None: the dev set had
    no predicted entities to fit on, so the scores are the uncalibrated probabilities)."""

    name: str
    calibration: Optional[Calibration]


def add_confidence(
    *, model_dir: Path, output_dir: Path, ner: str = "ner", dev_path: Optional[Path] = None
) -> Added:
    """Save model_dir to output_dir (which may be model_dir itself only for the train step's own
    scratch copy) with a fresh entity_confidence after `ner`, calibrated on dev_path's entity
    annotation and disabled; an entity_confidence it had (from an older version, or calibrated
    before) is replaced."""
    import spacy

    config_path = model_dir / "config.cfg"
    if not config_path.is_file():
        raise UserError(
            f"{model_dir}: no trained pipeline here (no config.cfg); pass a pipeline folder such "
            "as training/model-best"
        )
    # Read from the config, so that a component this version cannot build is left out unbuilt.
    config = Config().from_disk(config_path, interpolate=False)
    old = [
        name
        for name, block in config.get("components", {}).items()
        if block.get("factory") == ENTITY_CONFIDENCE
    ]
    try:
        nlp = spacy.load(model_dir, exclude=old)
    except Exception as err:  # config, IO and registry errors alike: one line for the user
        raise UserError(f"cannot load the pipeline {model_dir} ({one_line(err)})") from None
    if ner not in nlp.pipe_names:
        raise UserError(
            f"{model_dir}: the pipeline has no component '{ner}' to score "
            f"({', '.join(nlp.pipe_names)}); pass the entity recognizer's name with --ner"
        )
    add_entity_confidence(nlp, ner=ner)
    calibration = calibrate(nlp, ner=ner, dev_path=dev_path) if dev_path is not None else None
    if calibration is not None:
        # The fitted values go into the component's config, which spaCy saves and rebuilds it from.
        nlp.remove_pipe(ENTITY_CONFIDENCE)
        add_entity_confidence(nlp, ner=ner, scale=calibration.scale, shift=calibration.shift)
    nlp.disable_pipe(ENTITY_CONFIDENCE)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    # Saved beside the target first, so that a failed save leaves no half-written pipeline.
    staged = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", dir=output_dir.parent))
    try:
        nlp.to_disk(staged)
        replace_dir(staged, output_dir)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return Added(name=ENTITY_CONFIDENCE, calibration=calibration)


def calibrate(nlp: Language, *, ner: str, dev_path: Path) -> Optional[Calibration]:
    """Fit the component's scale and shift on the entities the pipeline predicts in dev_path's
    texts, each right or wrong against the gold entities (as scripts.evaluate counts them); None
    where the dev set has no entity annotation or the pipeline predicts no entity in it."""
    if not dev_path.is_file():
        raise UserError(
            f"{dev_path}: dev data not found; pass the .spacy file the model was trained with, "
            "e.g. corpus/dev.spacy"
        )
    golds = [
        doc for doc in DocBin().from_disk(dev_path).get_docs(nlp.vocab) if has_ent_annotation(doc)
    ]
    labels = labels_of(nlp, [ner])
    right: list[bool] = []
    probabilities: list[float] = []
    # Only what the scores need: the components up to entity_confidence (not the classifier).
    upto = nlp.pipe_names[: nlp.pipe_names.index(ENTITY_CONFIDENCE) + 1]
    with nlp.select_pipes(enable=upto):
        preds = list(nlp.pipe(doc.text for doc in golds))
    for gold, pred in zip(golds, preds):
        record = match_ents(gold=gold, pred=pred, labels=labels)
        right += [ent["kind"] == "correct" for ent in record.pred]
        probabilities += [ent["score"] for ent in record.pred if "score" in ent]
    if not right or len(probabilities) != len(right):
        return None
    return fit_calibration(right=right, probabilities=probabilities)


def calibrated(added: Added) -> str:
    """What add_confidence did to the scores, in one clause for the log."""
    fit = added.calibration
    if fit is None:
        return "no entity predicted in the dev set to calibrate the scores on"
    return (
        f"scores calibrated on {fit.n} dev entities (scale {fit.scale:.2f}, shift "
        f"{fit.shift:+.2f}; log loss {fit.log_loss_before:.3f} -> {fit.log_loss_after:.3f})"
    )
