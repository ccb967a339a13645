"""scripts.bench_train runs the workflow's stages (convert, config, labels, train, evaluate) into
its folder and prints one JSON line; a multi-label model comes out of training with its threshold
tuned on dev."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
from typer.testing import CliRunner

from scripts.bench_train import app
from scripts.common.errors import UserError
from scripts.convert import settings_from_words
from scripts.corpus.conversion import Settings
from scripts.scoring.metrics import CURVE_GRID
from tests.helpers import PROJECT_ROOT, write_tiny_bert

TOPICS = {
    "bug": ["it crashes on start", "segfault when saving", "the app freezes"],
    "docs": ["typo in the readme", "the tutorial is outdated", "missing docstring"],
    "question": ["how do i install it", "is windows supported", "where is the config"],
}


def write_split(path, n):
    """n cats JSONL records; every third one carries two labels."""
    labels = sorted(TOPICS)
    with path.open("w", encoding="utf8") as file_:
        for i in range(n):
            first, second = labels[i % 3], labels[(i + 1) % 3]
            text = f"{TOPICS[first][i % 3]} {i}" + (
                f" and {TOPICS[second][(i + 1) % 3]}" if i % 3 == 0 else ""
            )
            cats = {
                label: float(label == first or (i % 3 == 0 and label == second)) for label in labels
            }
            file_.write(json.dumps({"text": text, "cats": cats}) + "\n")
    return path


@pytest.mark.slow
def test_bench_train_prints_quality_and_speed_and_stores_a_tuned_threshold(tmp_path):
    bert = write_tiny_bert(tmp_path / "tiny-bert")
    splits = {
        name: write_split(tmp_path / f"{name}.jsonl", n)
        for name, n in (("train", 24), ("dev", 9), ("test", 9))
    }
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "scripts.bench_train",
            "--train",
            str(splits["train"]),
            "--dev",
            str(splits["dev"]),
            "--test",
            str(splits["test"]),
            "--components",
            "textcat_multilabel",
            "--transformer",
            str(bert),
            "--max-epochs",
            "1",
            "--gpu-id",
            "-1",
            "--output",
            str(tmp_path / "run"),
        ],
        cwd=elsewhere,  # every stage reads and writes the run folder only, wherever it runs
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    [line] = result.stdout.strip().splitlines()
    figures = json.loads(line)
    assert figures["components"] == "textcat_multilabel"
    assert figures["base_model"] == "tiny-bert"
    # --max-epochs 1 schedules an average epoch's steps ([training] max_steps), the last one
    # evaluated; an epoch that shuffles into fewer batches leaves a few for a second.
    config = spacy.util.load_config(tmp_path / "run" / "config.cfg", interpolate=False)
    assert figures["steps"] == config["training"]["max_steps"] > 0
    assert figures["epochs"] in (1, 2)
    assert figures["train_words"] > 0 and figures["train_words_per_second"] > 0
    assert figures["textcat"]["mode"] == "multilabel"
    assert figures["textcat"]["n_docs"] == 9
    assert 0.0 <= figures["textcat"]["macro_f"] <= 1.0
    assert "threshold" in result.stderr and "dev macro F" in result.stderr
    assert not list(elsewhere.iterdir())
    run = tmp_path / "run"
    assert [p.name for p in (run / "labels").iterdir()] == ["textcat_multilabel.json"]
    assert (run / "curves.jsonl").stat().st_size > 0
    assert sorted(p.name for p in (run / "corpus").iterdir()) == [
        "dev.spacy",
        "report.json",
        "test.spacy",
        "train.spacy",
    ]
    nlp = spacy.load(tmp_path / "run" / "model-best")
    threshold = nlp.get_pipe("textcat_multilabel").cfg["threshold"]
    assert any(abs(threshold - point) < 1e-9 for point in CURVE_GRID)
    metrics = json.loads(
        (tmp_path / "run" / "evaluation" / "metrics.json").read_text(encoding="utf8")
    )
    assert {entry["model"] for entry in metrics["textcat"]["thresholds"].values()} == {threshold}


def test_convert_options_are_the_convert_commands_reader_options():
    settings = settings_from_words(
        ["--format", "jsonl", "--labels-file", "names.txt", "--lenient"],
        lang="de",
        option="--convert-options",
    )
    assert settings == Settings(fmt="jsonl", lang="de", labels_file=Path("names.txt"), lenient=True)
    assert settings_from_words([], lang="en", option="--convert-options") == Settings()


@pytest.mark.parametrize(
    "words, says",
    [
        (["--output", "x.spacy"], "--output is not a reader option; give only --format,"),
        (["--lang", "de"], "--lang is not a reader option"),
        (["extra.tsv"], "SOURCE is not a reader option"),
        (["--tag-column", "last"], "Invalid value for '--tag-column'"),
        (["--no-such"], "No such option: --no-such"),
    ],
)
def test_convert_options_that_are_not_reader_options_are_refused_by_name(words, says):
    with pytest.raises(UserError, match="^--convert-options '") as caught:
        settings_from_words(words, lang="en", option="--convert-options")
    assert says in str(caught.value)


def test_bench_train_says_in_one_line_what_is_wrong_with_its_convert_options(tmp_path):
    result = CliRunner().invoke(
        app,
        ["--train", str(tmp_path / "t.jsonl"), "--convert-options", "--seed 3", "--gpu-id", "-1"],
    )
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "✘ --convert-options '--seed 3': --seed is not a reader option; give only --format, "
        "--tag-column, --token-column, --labels-file, --misaligned, --encoding, --recursive, "
        "--lenient, --strict"
    ]
