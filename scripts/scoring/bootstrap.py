"""How far a test score can be trusted: bootstrap intervals for the overall figures of
metrics.json, and a paired bootstrap that says whether two pipelines differ on the same test
documents.

    units = DocUnits.of(golds=golds, preds=preds, tasks=tasks)
    intervals(units, n=1000, seed=0)
    # {"n": 1000, "level": 0.95, "seed": 0, "ents": {"f": [0.71, 0.80], ...}, "textcat": {...}}
    paired(units_a, units_b, n=1000, seed=0)
    # {"ents": {"f": {"a", "b", "difference", "interval": [-0.01, 0.05], "p", "significant"}}}

Documents are drawn with replacement, as many as the test split holds (a document's entities and
categories go together), and each draw is scored by the functions that write metrics.json
(score_ents, score_exclusive, score_multilabel); the interval is the 2.5th to 97.5th percentile of
a figure over the draws. The paired bootstrap scores both runs on the same draws: the interval is
that of B - A, p is twice the share of draws on the far side of zero (two-sided, at most 1), and a
difference is significant where its interval leaves out zero. Draws come from numpy's generator
seeded with `seed`: the same inputs give the same intervals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy

from scripts.scoring.metrics import (
    CatRow,
    EntRecord,
    Tasks,
    collect_cats,
    match_ents,
    score_ents,
    score_exclusive,
    score_multilabel,
)

AVERAGES = ("macro_p", "macro_r", "macro_f", "weighted_p", "weighted_r", "weighted_f")
# The overall figures of each task in metrics.json: those scripts.compare compares, and the
# bootstrap gives intervals for ("confidence.auc": ents["confidence"]["auc"]).
OVERALL = {
    "ents": ("p", "r", "f", *AVERAGES),  # p, r, f: micro
    "textcat": (
        "accuracy",
        "macro_f",
        "micro_f",
        "macro_auc",
        "micro_p",
        "micro_r",
        "macro_p",
        "macro_r",
        "weighted_p",
        "weighted_r",
        "weighted_f",
    ),
}
CALIBRATION = {"ents": ("confidence.auc", "confidence.ece"), "textcat": ("ece",)}
FIGURES = {task: OVERALL[task] + CALIBRATION[task] for task in OVERALL}
LEVEL = 0.95
# The predicted Docs scripts.evaluate writes beside metrics.json, in the test split's order: what
# the paired bootstrap of two runs (scripts.compare --bootstrap) reads.
PREDICTIONS = "predictions.spacy"


@dataclass(frozen=True)
class DocUnits:
    """Each test document's part of the scores, computed once: its entities matched against gold
    (None where the model has no NER) and its category rows (none where it is not scored)."""

    tasks: Tasks
    records: Tuple[Optional[EntRecord], ...]
    rows: Tuple[Tuple[CatRow, ...], ...]
    tokenization: str = "model"

    @classmethod
    def of(
        cls,
        *,
        golds: Sequence[Any],
        preds: Sequence[Any],
        tasks: Tasks,
        tokenization: str = "model",
    ) -> "DocUnits":
        if len(golds) != len(preds):
            raise ValueError(f"{len(golds)} gold docs but {len(preds)} predicted docs")
        records = tuple(
            match_ents(gold=g, pred=p, labels=tasks.ent_labels)
            if tasks.ent_labels is not None
            else None
            for g, p in zip(golds, preds)
        )
        rows = tuple(
            tuple(
                collect_cats(
                    golds=[g], preds=[p], labels=tasks.cat_labels, exclusive=tasks.exclusive
                )[0]
            )
            if tasks.cat_labels is not None
            else ()
            for g, p in zip(golds, preds)
        )
        return cls(tasks=tasks, records=records, rows=rows, tokenization=tokenization)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def task_names(self) -> Tuple[str, ...]:
        """The sections of metrics.json the model's tasks fill: "ents", "textcat" or both."""
        return tuple(
            name
            for name, labels in (
                ("ents", self.tasks.ent_labels),
                ("textcat", self.tasks.cat_labels),
            )
            if labels is not None
        )

    def figures(self, indices: Sequence[int]) -> Dict[str, Dict[str, Optional[float]]]:
        """The overall figures of the documents at indices (repeats count again)."""
        found: Dict[str, Dict[str, Optional[float]]] = {}
        tasks = self.tasks
        if tasks.ent_labels is not None:
            records = [record for i in indices if (record := self.records[i]) is not None]
            ents = score_ents(records=records, tokenization=self.tokenization)
            found["ents"] = {key: lookup(ents, key) for key in FIGURES["ents"]}
        if tasks.cat_labels is not None:
            rows = [row for i in indices for row in self.rows[i]]
            if tasks.exclusive:
                cats = score_exclusive(rows=rows, labels=tasks.cat_labels)
            else:
                cats = score_multilabel(
                    rows=rows, labels=tasks.cat_labels, threshold=tasks.threshold
                )
            found["textcat"] = {key: lookup(cats, key) for key in FIGURES["textcat"]}
        return found


def lookup(section: Any, key: str) -> Optional[float]:
    """section["confidence"]["auc"] for "confidence.auc"; None where a level is missing."""
    value = section
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return None if value is None else float(value)


def draws(n_docs: int, *, n: int, seed: int) -> numpy.ndarray:
    """n draws of n_docs document indices, with replacement."""
    return numpy.random.default_rng(seed).integers(0, n_docs, size=(n, n_docs))


def percentiles(values: List[float], n: int) -> Optional[List[float]]:
    """The central LEVEL interval of values; None where fewer than half the n draws had one."""
    if len(values) < max(1, n // 2):
        return None
    tail = 100 * (1 - LEVEL) / 2
    low, high = numpy.percentile(values, [tail, 100 - tail])
    # Rounded outwards to 4 digits, so that the interval still holds what it held.
    return [math.floor(float(low) * 1e4) / 1e4, math.ceil(float(high) * 1e4) / 1e4]


def intervals(units: DocUnits, *, n: int, seed: int = 0) -> Dict[str, Any]:
    """The LEVEL interval of every overall figure, from n draws of the test documents."""
    samples: Dict[str, Dict[str, List[float]]] = {}
    for indices in draws(len(units), n=n, seed=seed):
        for task, figures in units.figures(indices).items():
            for key, value in figures.items():
                if value is not None:
                    samples.setdefault(task, {}).setdefault(key, []).append(value)
    found: Dict[str, Any] = {"n": n, "level": LEVEL, "seed": seed}
    for task in units.task_names:
        found[task] = {
            key: percentiles(samples.get(task, {}).get(key, []), n) for key in FIGURES[task]
        }
    return found


def paired(units_a: DocUnits, units_b: DocUnits, *, n: int, seed: int = 0) -> Dict[str, Any]:
    """B - A on every overall figure both runs have, its LEVEL interval over n shared draws of
    the test documents, p and whether the difference is significant."""
    if len(units_a) != len(units_b):
        raise ValueError(f"run A scored {len(units_a)} documents, run B {len(units_b)}")
    everything = range(len(units_a))
    a_all, b_all = units_a.figures(everything), units_b.figures(everything)
    differences: Dict[Tuple[str, str], List[float]] = {}
    for indices in draws(len(units_a), n=n, seed=seed):
        a, b = units_a.figures(indices), units_b.figures(indices)
        for task in [task for task in a if task in b]:
            for key in FIGURES[task]:
                if a[task][key] is not None and b[task][key] is not None:
                    differences.setdefault((task, key), []).append(b[task][key] - a[task][key])
    found: Dict[str, Any] = {}
    for task in [task for task in a_all if task in b_all]:
        for key in FIGURES[task]:
            a_value, b_value = a_all[task][key], b_all[task][key]
            values = differences.get((task, key), [])
            interval = percentiles(values, n)
            if a_value is None or b_value is None or interval is None:
                continue
            share_below = sum(v <= 0 for v in values) / len(values)
            share_above = sum(v >= 0 for v in values) / len(values)
            found.setdefault(task, {})[key] = {
                "a": a_value,
                "b": b_value,
                "difference": round(b_value - a_value, 4),
                "interval": interval,
                "p": round(min(1.0, 2 * min(share_below, share_above)), 4),
                "significant": interval[0] > 0 or interval[1] < 0,
            }
    return found
