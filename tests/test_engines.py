"""The engines package_pipeline builds for (scripts/packaging/engines.py): one interface, so that
packaging knows no engine by name."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from scripts.common.errors import UserError
from scripts.packaging import wheel
from scripts.packaging.engines import ENGINES, FLOAT32, INT8, ONNX, Splits, compare_scores
from tests.helpers import FLOAT_METRICS


def test_each_engine_names_its_package_and_only_converted_ones_are_scored_again(tmp_path):
    assert list(ENGINES) == ["float32", "int8", "onnx"]
    names = [engine.package_name("jobs") for engine in ENGINES.values()]
    assert names == ["jobs", "jobs_int8", "jobs_onnx"]
    assert [engine.converted for engine in ENGINES.values()] == [False, True, True]
    scores = FLOAT32.score(
        tmp_path, Splits(), float_metrics=FLOAT_METRICS, workdir=tmp_path, gold_preproc=False
    )
    assert scores is FLOAT_METRICS
    assert FLOAT32.build(tmp_path, Splits()) == "" and not list(tmp_path.iterdir())
    assert ONNX.requirements and not INT8.requirements


@pytest.mark.parametrize(
    "engine, splits, message",
    [
        (INT8, Splits(), "no test split to score the int8 build on"),
        (INT8, Splits(test=Path(__file__)), "no texts to calibrate the int8 build on"),
        (ONNX, Splits(), "no test split to score the ONNX build on"),
    ],
)
def test_a_converted_engine_stops_before_any_work_without_its_splits(engine, splits, message):
    with pytest.raises(UserError, match=message):
        engine.check(splits)


def test_package_pipeline_names_no_engine():
    tree = ast.parse(inspect.getsource(wheel.package_pipeline))
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    names |= {node.arg for node in ast.walk(tree) if isinstance(node, ast.arg)}
    assert "engine" in names
    assert not {name for name in names if "int8" in name.lower() or "onnx" in name.lower()}


def test_comparison_names_the_engine():
    lines, _ = compare_scores(FLOAT_METRICS, {"ents": {"f": 0.2}}, engine=ONNX)
    assert lines == ["entity F: ONNX 0.200 against float32 0.123 (+7.7 points)"]
