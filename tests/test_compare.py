"""scripts.compare: the table of deltas and the exit status CI relies on."""

import copy
import json
import re
from pathlib import Path
from typing import Any, Dict

import pytest
from typer.testing import CliRunner

from scripts.compare import app
from scripts.evaluation.comparison import compare_metrics

runner = CliRunner()
BASE: Dict[str, Any] = {
    "format": 1,
    "model": {"name": "en_tiny", "version": "0.0.1"},
    "data": {"path": "corpus/test.spacy", "sha256": "ab" * 32},
    "ents": {
        "p": 0.8,
        "r": 0.7,
        "f": 0.75,
        "tokenization": "model",
        "per_label": {
            "PER": {"p": 0.9, "r": 0.8, "f": 0.85},
            "LOC": {"p": 0.6, "r": 0.5, "f": 0.55},
        },
    },
    "textcat": {
        "mode": "exclusive",
        "accuracy": 0.9,
        "macro_f": 0.88,
        "micro_f": 0.9,
        "macro_auc": 0.95,
        "per_label": {"POS": {"f": 0.9}, "NEG": {"f": 0.86}},
    },
}


def write(path: Path, metrics: Dict[str, Any]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "metrics.json").write_text(json.dumps(metrics))
    return path


def changed(**changes: float) -> Dict[str, Any]:
    """BASE with e.g. ents__f=0.7 or textcat__per_label__POS__f=0.5."""
    metrics = copy.deepcopy(BASE)
    for key, value in changes.items():
        *parents, last = key.split("__")
        target = metrics
        for part in parents:
            target = target[part]
        target[last] = value
    return metrics


def test_same_run_passes_and_prints_every_figure(tmp_path):
    a = write(tmp_path / "a", BASE)
    result = runner.invoke(app, [str(a), str(a / "metrics.json")])
    assert result.exit_code == 0, result.output
    for figure in ("ents.f", "textcat.macro_auc", "ents.PER.f", "ents.LOC.f", "textcat.NEG.f"):
        assert figure in result.stdout
    assert "OK: no overall figure" in result.stdout


def test_drop_beyond_margin_fails_with_the_figure_named(tmp_path):
    a, b = (
        write(tmp_path / "a", BASE),
        write(tmp_path / "b", changed(ents__f=0.73, textcat__macro_f=0.87)),
    )
    result = runner.invoke(app, [str(a), str(b), "--margin", "0.01"])
    assert result.exit_code == 1, result.output
    assert re.search(
        r"^ents\.f +0\.750 +0\.730 +-0\.020  worse by more than 0\.010$", result.stdout, re.M
    )
    assert "Worse: B is below A by more than 0.010 on ents.f" in result.stdout
    assert "textcat.macro_f" not in result.stdout.splitlines()[-1]  # -0.01 is within the margin


def test_drop_within_margin_and_per_label_drops_pass(tmp_path):
    b = changed(ents__f=0.74, textcat__per_label__POS__f=0.2)
    assert not any(row.worse for row in compare_metrics(a=BASE, b=b, margin=0.01))
    rows = {row.figure: row for row in compare_metrics(a=BASE, b=b, margin=0.01)}
    assert rows["textcat.POS.f"].delta == pytest.approx(-0.7) and not rows["textcat.POS.f"].overall


def test_missing_figure_in_second_run_is_worse():
    b = changed()
    b["textcat"] = None
    worse = [row.figure for row in compare_metrics(a=BASE, b=b, margin=0.01) if row.worse]
    assert worse == ["textcat.accuracy", "textcat.macro_f", "textcat.micro_f", "textcat.macro_auc"]


def test_different_data_is_noted(tmp_path):
    other = changed()
    other["data"]["sha256"] = "cd" * 32
    result = runner.invoke(
        app, [str(write(tmp_path / "a", BASE)), str(write(tmp_path / "b", other))]
    )
    assert result.exit_code == 0 and "Note: the runs were scored on different data" in result.stdout


def test_unreadable_run_is_one_line_error_with_exit_2(tmp_path):
    a = write(tmp_path / "a", BASE)
    result = runner.invoke(app, [str(a), str(tmp_path / "missing")])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"✘ no metrics at {tmp_path / 'missing'}; pass a metrics.json or the --output folder of "
        "scripts.evaluate"
    ]
    (tmp_path / "bad.json").write_text("{not json")
    result = runner.invoke(app, [str(a), str(tmp_path / "bad.json")])
    assert result.exit_code == 2 and "is not valid JSON" in result.stderr


def test_weighted_and_macro_averages_are_overall_figures_when_the_runs_have_them():
    averages = {"macro_p": 0.7, "weighted_p": 0.8, "weighted_r": 0.7, "weighted_f": 0.74}
    a = copy.deepcopy(BASE)
    a["ents"].update(averages)
    a["textcat"].update(averages)
    b = copy.deepcopy(a)
    b["ents"]["weighted_f"] = 0.7
    b["textcat"]["weighted_f"] = 0.74
    rows = {row.figure: row for row in compare_metrics(a=a, b=b, margin=0.01)}
    assert rows["ents.weighted_f"].worse and rows["ents.weighted_f"].overall
    assert rows["ents.weighted_f"].delta == pytest.approx(-0.04)
    assert not rows["textcat.weighted_f"].worse
    assert rows["textcat.macro_p"].delta == pytest.approx(0.0)
    # figures neither run has (metrics.json from before they existed) get no row
    assert "ents.macro_r" not in rows and "textcat.micro_p" not in rows
