"""Fixtures the test modules share; plain helpers and data are in helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import spacy

from scripts.inference.predict import load_predictor
from tests.helpers import build_tiny_pipeline, write_tiny_bert


@pytest.fixture(scope="session")
def tiny_transformer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built once per session (every test module shares the folder), on a BERT of its own with
    seeded weights, so that what it learns (some SKILL entities) is the same every run."""
    path = tmp_path_factory.getbasetemp() / "tiny-pipeline"
    if not (path / "meta.json").is_file():
        spacy.util.fix_random_seed(0)
        build_tiny_pipeline(
            path, bert=write_tiny_bert(tmp_path_factory.getbasetemp() / "tiny-pipeline-bert")
        )
    return path


@pytest.fixture(scope="session")
def predictor(tiny_pipeline: Path):
    return load_predictor(str(tiny_pipeline), gpu_id="-1")
