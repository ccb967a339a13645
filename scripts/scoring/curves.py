"""Training curves: one JSON line per evaluation during training, as the train step writes them
(scripts/training/logger.py) and the evaluate step reads them back for its plot.

    points = read_curves(path=Path("training/curves.jsonl"))
    points[-1]["scores"]["ents_f"]  # -> the dev entity F at the last evaluation

Each line is a `CurvePoint`:

    {"step": 200, "epoch": 3, "score": 0.61,       # step, epoch, the weighted dev score
     "losses": {"transformer": 1.2, "ner": 35.0},  # per component, summed since the last line
     "scores": {"ents_f": 0.58, "cats_macro_f": 0.64, "ents_per_type": {...}, ...},  # dev
     "words": 51234,                               # training words seen so far
     "words_per_second": 812.5,                    # words / wall seconds since the last line
     "seconds": 63.1}                              # wall seconds since training started
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, TypedDict

from scripts.common.errors import UserError

# Dev scores drawn beside the weighted score: each task's overall F, as spaCy's scorers name it.
PLOTTED_SCORES = ("ents_f", "cats_macro_f", "cats_micro_f")
REQUIRED_KEYS = ("step", "losses", "scores")


class CurvePoint(TypedDict):
    step: int
    epoch: int
    score: Optional[float]
    losses: Dict[str, float]
    scores: Dict[str, Any]
    words: int
    words_per_second: Optional[float]
    seconds: float


def plain(value: Any) -> Any:
    """A score as strict JSON holds it: NaN and infinity become null, numpy numbers floats."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if value is None or isinstance(value, (str, bool, int)):
        return value
    number = float(value)
    return number if math.isfinite(number) else None


def curve_point(
    info: Dict[str, Any], *, seconds: float, words_per_second: Optional[float]
) -> CurvePoint:
    """The line for one evaluation from the `info` dict spaCy's training loop passes to loggers."""
    return CurvePoint(
        step=int(info["step"]),
        epoch=int(info["epoch"]),
        score=plain(info.get("score")),
        losses={name: plain(loss) for name, loss in (info.get("losses") or {}).items()},
        scores=plain(info.get("other_scores") or {}),
        words=int(info.get("words", 0)),
        words_per_second=None if words_per_second is None else round(words_per_second, 1),
        seconds=round(seconds, 3),
    )


def read_curves(*, path: Path) -> List[CurvePoint]:
    """Every line of a curves file; a last line cut short by a killed run is left out."""
    if not path.is_file():
        raise UserError(
            f"{path}: no training curves there; train with the train step "
            "(spacy project run train), which writes them, or leave out --curves"
        )
    lines = path.read_text(encoding="utf8").splitlines()
    points: List[CurvePoint] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            point = json.loads(line)
        except ValueError as err:
            if number == len(lines):
                break  # the process was killed while writing this line
            raise UserError(
                f"{path}, line {number}: not JSON ({err}); delete the file and train again"
            ) from None
        missing = [k for k in REQUIRED_KEYS if not isinstance(point, dict) or k not in point]
        if missing:
            raise UserError(
                f"{path}, line {number}: not a training-curve record (no {', '.join(missing)}); "
                "pass the curves.jsonl the train step wrote"
            )
        points.append(point)
    return points


def plotted_scores(points: List[CurvePoint]) -> List[str]:
    """The dev scores worth a line in the plot: those of PLOTTED_SCORES that were recorded."""
    return [
        key
        for key in PLOTTED_SCORES
        if any(isinstance(p["scores"].get(key), (int, float)) for p in points)
    ]


def best_point(points: List[CurvePoint]) -> Optional[CurvePoint]:
    """The evaluation model-best was saved at: the best score, the last one on ties (as spaCy's
    training loop saves at every evaluation that equals the best so far)."""
    scored = [p for p in points if p.get("score") is not None]
    return max(scored, key=lambda p: (p["score"], p["step"])) if scored else None


def from_same_run(points: List[CurvePoint], performance: Dict[str, Any]) -> bool:
    """Whether a pipeline whose meta.json holds `performance` (the dev scores spaCy copies there
    when it saves model-best) was saved during the run of these curves; True when it cannot tell."""
    wanted = {
        key: value
        for key, value in performance.items()
        if not key.endswith("_loss") and isinstance(value, (int, float))
    }
    if not wanted:
        return True
    return any(
        all(
            isinstance(p["scores"].get(key, 0.0), (int, float))
            and abs(p["scores"].get(key, 0.0) - value) < 1e-9
            for key, value in wanted.items()
        )
        for p in points
    )
