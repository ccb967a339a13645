"""Compare two evaluations (metrics.json from scripts.evaluate): deltas, overall and per label.

    rows = compare_metrics(a=read_metrics(path=run_a), b=read_metrics(path=run_b), margin=0.01)
    print(format_table(rows, margin=0.01))

Only overall figures can be `worse`; scripts.compare turns that into its exit status. A label
only B scores, one A counted as unknown (its model lacks it), is `new`: never worse, and a note
says that the overall figures then cover different labels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from scripts.common.errors import UserError
from scripts.common.files import sha256_of
from scripts.scoring.bootstrap import OVERALL, PREDICTIONS, DocUnits, paired
from scripts.scoring.metrics import Tasks, format_score

PER_LABEL = {"ents": ("f",), "textcat": ("f",)}
EPSILON = 1e-9  # so that a drop of exactly the margin does not fail on float rounding


@dataclass(frozen=True)
class Row:
    figure: str
    a: Optional[float]
    b: Optional[float]
    overall: bool
    worse: bool
    new: bool = False  # a label only B's model has

    @property
    def delta(self) -> Optional[float]:
        return None if self.a is None or self.b is None else self.b - self.a


def read_metrics(*, path: Path) -> Dict[str, Any]:
    """metrics.json itself, or the folder scripts.evaluate wrote it to."""
    file = path / "metrics.json" if path.is_dir() else path
    if not file.is_file():
        raise UserError(
            f"no metrics at {path}; pass a metrics.json or the --output folder of scripts.evaluate"
        )
    try:
        metrics = json.loads(file.read_text(encoding="utf8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise UserError(
            f"{file} is not valid JSON ({err}); write it again with scripts.evaluate"
        ) from None
    if not isinstance(metrics, dict) or "format" not in metrics:
        raise UserError(f"{file} is not a metrics.json from scripts.evaluate (no 'format' key)")
    return metrics


def compare_metrics(*, a: Dict[str, Any], b: Dict[str, Any], margin: float) -> List[Row]:
    """Overall figures first, then per-label ones; only overall figures can be `worse`."""
    rows = []
    for task, keys in OVERALL.items():
        if not a.get(task) and not b.get(task):
            continue
        for key in keys:
            if key not in (a.get(task) or {}) and key not in (b.get(task) or {}):
                continue  # metrics.json files from before the figure existed
            va, vb = _get(a, task, key), _get(b, task, key)
            worse = va is not None and (vb is None or va - vb > margin + EPSILON)
            rows.append(Row(figure=f"{task}.{key}", a=va, b=vb, overall=True, worse=worse))
    for task, keys in PER_LABEL.items():
        labels = sorted(
            set((a.get(task) or {}).get("per_label", {}))
            | set((b.get(task) or {}).get("per_label", {}))
        )
        new = new_labels(a=a, b=b, task=task)
        for label in labels:
            for key in keys:
                va, vb = _label(a, task, label, key), _label(b, task, label, key)
                rows.append(
                    Row(
                        figure=f"{task}.{label}.{key}",
                        a=va,
                        b=vb,
                        overall=False,
                        worse=False,
                        new=label in new,
                    )
                )
    return rows


def new_labels(*, a: Dict[str, Any], b: Dict[str, Any], task: str) -> List[str]:
    """Labels B's model scores that A's model lacks (A counted them as unknown)."""
    unknown = (a.get(task) or {}).get("unknown_labels") or {}
    scored = (b.get(task) or {}).get("per_label") or {}
    return sorted(label for label in scored if label in unknown)


def _get(metrics: Dict[str, Any], task: str, key: str) -> Optional[float]:
    return (metrics.get(task) or {}).get(key)


def _label(metrics: Dict[str, Any], task: str, label: str, key: str) -> Optional[float]:
    return (metrics.get(task) or {}).get("per_label", {}).get(label, {}).get(key)


def notes(*, a: Dict[str, Any], b: Dict[str, Any]) -> List[str]:
    """Reasons the two runs may not be comparable."""
    found = []
    if a.get("data", {}).get("sha256") != b.get("data", {}).get("sha256"):
        found.append("the runs were scored on different data (sha256 differs)")
    if (a.get("textcat") or {}).get("mode") != (b.get("textcat") or {}).get("mode"):
        found.append("the textcat modes differ (exclusive vs multilabel, or missing in one run)")
    if (a.get("ents") or {}).get("tokenization") != (b.get("ents") or {}).get("tokenization"):
        found.append(
            "entities were scored on different tokenizations (--gold-preproc in one run only)"
        )
    new = [label for task in OVERALL for label in new_labels(a=a, b=b, task=task)]
    if new:
        found.append(
            f"B scores labels A's model lacks ({', '.join(new)}): B's overall figures include "
            "them, A's do not"
        )
    return found


def format_table(rows: List[Row], *, margin: float) -> str:
    """One line per row, A, B and the delta in columns; a blank line between overall and
    per-label figures."""
    fmt = format_score
    width = max([len("figure")] + [len(r.figure) for r in rows])
    lines = [f"{'figure':<{width}}  {'A':>7}  {'B':>7}  {'delta':>7}"]
    for i, row in enumerate(rows):
        if i and row.overall != rows[i - 1].overall:
            lines.append("")
        flag = (
            f"  worse by more than {margin:.3f}" if row.worse else "  new label" if row.new else ""
        )
        figures = f"{fmt(row.a):>7}  {fmt(row.b):>7}  {fmt(row.delta, signed=True):>7}"
        lines.append(f"{row.figure:<{width}}  {figures}{flag}")
    return "\n".join(lines)


def describe_run(path: Path, metrics: Dict[str, Any]) -> str:
    """Where a run was read from and which model it scored, e.g. "eval/ (en_tiny 0.0.1)"."""
    model = metrics.get("model", {})
    return f"{path} ({model.get('name', '?')} {model.get('version', '?')})"


def paired_comparison(
    *,
    run_a: Path,
    run_b: Path,
    a: Dict[str, Any],
    b: Dict[str, Any],
    n: int,
    seed: int = 0,
    data: Optional[Path] = None,
) -> Dict[str, Any]:
    """The paired bootstrap (scripts/scoring/bootstrap.py) of two evaluations: their
    predictions.spacy on the same test documents (data, or the path metrics.json names)."""
    from spacy.tokens import DocBin
    from spacy.vocab import Vocab

    if a.get("data", {}).get("sha256") != b.get("data", {}).get("sha256"):
        raise UserError(
            f"{run_a} and {run_b} were scored on different data (sha256 differs); the paired "
            "bootstrap needs both evaluated on the same test split"
        )
    gold_path = data or Path(a.get("data", {}).get("path", ""))
    if not gold_path.is_file() or sha256_of(gold_path) != a["data"]["sha256"]:
        raise UserError(
            f"{gold_path}: not the test split both runs were scored on (missing, or its sha256 "
            "differs); pass it with --data"
        )
    vocab = Vocab()
    golds = list(DocBin().from_disk(gold_path).get_docs(vocab))
    units = []
    for run, metrics in ((run_a, a), (run_b, b)):
        folder = run if run.is_dir() else run.parent
        predictions, tasks = folder / PREDICTIONS, metrics.get("model", {}).get("tasks")
        if not predictions.is_file() or tasks is None:
            raise UserError(
                f"{folder}: no {PREDICTIONS} or no model.tasks in metrics.json, written by "
                "scripts.evaluate since the paired bootstrap exists; evaluate the model again"
            )
        preds = list(DocBin().from_disk(predictions).get_docs(vocab))
        if len(preds) != len(golds):
            raise UserError(
                f"{predictions} holds {len(preds)} documents, {gold_path} {len(golds)}; "
                "evaluate the model again on this test split"
            )
        units.append(
            DocUnits.of(
                golds=golds,
                preds=preds,
                tasks=Tasks(
                    ent_labels=none_or_tuple(tasks["ent_labels"]),
                    cat_labels=none_or_tuple(tasks["cat_labels"]),
                    exclusive=tasks["exclusive"],
                    threshold=tasks["threshold"],
                ),
                tokenization=(metrics.get("ents") or {}).get("tokenization", "model"),
            )
        )
    return paired(units[0], units[1], n=n, seed=seed)


def none_or_tuple(labels: Optional[List[str]]) -> Optional[Tuple[str, ...]]:
    return None if labels is None else tuple(labels)


def format_paired(found: Dict[str, Any], *, n: int) -> str:
    """One line per overall figure: A, B, B - A, its 95% interval, p, and whether it is
    significant."""
    rows = [(f"{task}.{key}", d) for task, figures in found.items() for key, d in figures.items()]
    width = max([len("figure")] + [len(figure) for figure, _ in rows])
    lines = [
        f"Paired bootstrap, {n} draws of the test documents: is B - A real?",
        f"{'figure':<{width}}  {'A':>7}  {'B':>7}  {'B - A':>7}  {'95% interval':>17}  {'p':>6}",
    ]
    for figure, d in rows:
        interval = f"[{d['interval'][0]:+.3f}, {d['interval'][1]:+.3f}]"
        verdict = "  significant" if d["significant"] else ""
        lines.append(
            f"{figure:<{width}}  {format_score(d['a']):>7}  {format_score(d['b']):>7}  "
            f"{format_score(d['difference'], signed=True):>7}  {interval:>17}  "
            f"{d['p']:>6.3f}{verdict}"
        )
    return "\n".join(lines)
