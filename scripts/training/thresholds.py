"""Choose a multi-label classifier's decision threshold on the dev set and store it in the model.

    tuned = tune_thresholds(Path("training/.run-x/model-best"), Path("corpus/dev.spacy"))

spaCy's `textcat_multilabel` outputs one probability per label and calls a label positive at
its `threshold` (0.5 unless set). With skewed labels and a class-weighted loss 0.5 is rarely the
best cut, so after training the threshold that gives the best macro F on the dev set is written
into the model's config.cfg and component cfg (what `spacy find-threshold` does, on the scores
this project reports). The packaged pipeline then carries it: evaluation, annotation, serving and
users reading `nlp.get_pipe("textcat_multilabel").cfg["threshold"]` all get the tuned value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence

from spacy.tokens import Doc, DocBin
from thinc.api import Config

from scripts.common.cats import POSITIVE
from scripts.common.files import write_bytes_atomic
from scripts.scoring.metrics import (
    CURVE_GRID,
    CatRow,
    collect_cats,
    has_cat_annotation,
    score_multilabel,
)

# A trained pipeline names spaCy's own factory (run.py replaces the training one).
SPACY_MULTILABEL_FACTORY = "textcat_multilabel"


@dataclass(frozen=True)
class TunedThreshold:
    component: str
    threshold: float
    macro_f: float  # on the dev set at `threshold`
    macro_f_before: float  # on the dev set at the model's previous threshold
    previous: float
    n_docs: int


def multilabel_components(model_dir: Path) -> List[str]:
    """Names of the model's textcat_multilabel components, read from its config.cfg."""
    config = Config().from_disk(model_dir / "config.cfg", interpolate=False)
    return [
        name
        for name, block in config["components"].items()
        if block.get("factory") == SPACY_MULTILABEL_FACTORY
    ]


def best_threshold(
    *, rows: Sequence[CatRow], labels: Sequence[str], previous: float
) -> tuple[float, float]:
    """(threshold, macro F) with the best macro F over a 0.05 grid; ties go to the one nearest
    `previous`."""
    scored = [
        (t, score_multilabel(rows=rows, labels=labels, threshold=t)["macro_f"] or 0.0)
        for t in CURVE_GRID
    ]
    return max(scored, key=lambda item: (round(item[1], 6), -abs(item[0] - previous)))


def tune_thresholds(model_dir: Path, dev_path: Path) -> List[TunedThreshold]:
    """Tune and store the threshold of each multi-label classifier; [] when the model has none."""
    import spacy

    names = multilabel_components(model_dir)
    if not names:
        return []
    nlp = spacy.load(model_dir)
    golds = [
        doc for doc in DocBin().from_disk(dev_path).get_docs(nlp.vocab) if has_cat_annotation(doc)
    ]
    if not golds:
        return []
    preds: List[Doc] = list(nlp.pipe(doc.text for doc in golds))
    tuned = []
    for name in names:
        pipe = nlp.get_pipe(name)
        previous = float(pipe.cfg.get("threshold", POSITIVE))
        rows, _, _ = collect_cats(golds=golds, preds=preds, labels=pipe.labels, exclusive=False)
        if not rows:
            continue
        threshold, macro_f = best_threshold(rows=rows, labels=pipe.labels, previous=previous)
        before = (
            score_multilabel(rows=rows, labels=pipe.labels, threshold=previous)["macro_f"] or 0.0
        )
        store_threshold(model_dir, name, threshold)
        tuned.append(TunedThreshold(name, threshold, macro_f, before, previous, len(rows)))
    return tuned


def store_threshold(model_dir: Path, component: str, threshold: float) -> None:
    """Write the threshold where spaCy reads it back: the config, and the component's own cfg."""
    config_path = model_dir / "config.cfg"
    config = Config().from_disk(config_path, interpolate=False)
    config["components"][component]["threshold"] = threshold
    write_bytes_atomic(config_path, config.to_str(interpolate=False).encode("utf8"))
    cfg_path = model_dir / component / "cfg"
    cfg = json.loads(cfg_path.read_text(encoding="utf8"))
    cfg["threshold"] = threshold
    write_bytes_atomic(cfg_path, json.dumps(cfg, indent=2).encode("utf8"))
