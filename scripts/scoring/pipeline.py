"""A trained pipeline as evaluation and inference read it: loaded with one-line errors, the
components that predict, their labels, and how its categories are decided.

    nlp = load_pipeline("training/model-best", entity_scores=True)
    components = find_components(nlp)           # Components(ents=("ner",), cats=("textcat",))
    labels_of(nlp, components.ents)              # ("SKILL",)
    cat_decision_rule(nlp.get_pipe("textcat"), name="textcat")   # (True, 0.5): exclusive
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import spacy
from spacy.language import Language
from spacy.pipeline import MultiLabel_TextCategorizer, TextCategorizer

# A trained pipeline's entity_confidence component and the beam search its config names.
from scripts.common import spacy_internals  # noqa: F401
from scripts.common.cats import POSITIVE
from scripts.common.errors import UserError, one_line

# The cold-start model's zero-shot categories (scripts/inference/cold_start.py).
from scripts.scoring import zero_shot  # noqa: F401
from scripts.scoring.entity_confidence import enable_entity_confidence


@dataclass(frozen=True)
class Components:
    """The components that predict: those that set doc.ents and those that set doc.cats."""

    ents: tuple[str, ...]
    cats: tuple[str, ...]


def load_pipeline(
    model: str, *, overrides: Mapping[str, Any] | None = None, entity_scores: bool = False
) -> Language:
    """spacy.load(model) with one-line errors; overrides as for spacy.load(config=...);
    entity_scores: turn on the entity_confidence component the pipeline ships disabled, where it
    has one, e.g. load_pipeline("training/model-best", entity_scores=True)."""
    if not Path(model).exists() and not spacy.util.is_package(model):
        raise UserError(
            f"model not found: '{model}' is neither a directory nor an installed spaCy package; "
            "pass a pipeline directory such as training/model-best (python -m spacy project run "
            "train writes it) or an installed package (pip install packages/.../*.whl)"
        )
    try:
        nlp = spacy.load(model, config=dict(overrides or {}))
    except Exception as err:  # config, IO and registry errors alike: one line for the user
        with_overrides = f" with overrides {dict(overrides)}" if overrides else ""
        raise UserError(
            f"cannot load the model '{model}'{with_overrides} ({one_line(err)}); pass a pipeline "
            "directory such as training/model-best, which holds config.cfg and meta.json"
        ) from None
    if entity_scores:
        enable_entity_confidence(nlp)
    return nlp


def find_components(nlp: Language) -> Components:
    """The components that set doc.ents and doc.cats, by what their factories declare."""
    return Components(
        ents=tuple(n for n in nlp.pipe_names if "doc.ents" in nlp.get_pipe_meta(n).assigns),
        cats=tuple(n for n in nlp.pipe_names if "doc.cats" in nlp.get_pipe_meta(n).assigns),
    )


def labels_of(nlp: Language, names: Sequence[str]) -> tuple[str, ...]:
    """The sorted labels of the named components together."""
    return tuple(sorted({label for n in names for label in getattr(nlp.get_pipe(n), "labels", ())}))


def cat_decision_rule(pipe: Any, *, name: str) -> tuple[bool, float]:
    """(exclusive, threshold) of a component that sets doc.cats: textcat is exclusive (the top
    score is the label), textcat_multilabel predicts every label scored >= its threshold; another
    component says which in its cfg, e.g. {"exclusive_classes": False, "threshold": 0.5}. An
    exclusive component's threshold is unused and given as POSITIVE."""
    cfg = getattr(pipe, "cfg", {}) or {}
    if isinstance(pipe, MultiLabel_TextCategorizer):
        exclusive = False
    elif isinstance(pipe, TextCategorizer):
        exclusive = True
    elif "exclusive_classes" in cfg:
        exclusive = bool(cfg["exclusive_classes"])
    else:
        raise UserError(
            f"component '{name}' sets doc.cats but is neither textcat nor textcat_multilabel, and "
            "its cfg has no 'exclusive_classes'; set cfg['exclusive_classes'] (and 'threshold') "
            "on the component"
        )
    return exclusive, POSITIVE if exclusive else float(cfg.get("threshold", POSITIVE))


def pipeline_name(nlp: Language) -> str:
    """The package name of a pipeline, e.g. "en_job_postings"."""
    return f"{nlp.meta.get('lang', nlp.lang)}_{nlp.meta.get('name', 'pipeline')}"
