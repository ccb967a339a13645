"""scripts.bench_train runs convert, config, train and evaluate and prints one JSON line; a
multi-label model comes out of training with its threshold tuned on dev."""

import json
import subprocess
import sys

import pytest
import spacy

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
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    [line] = result.stdout.strip().splitlines()
    figures = json.loads(line)
    assert figures["components"] == "textcat_multilabel"
    assert figures["base_model"] == "tiny-bert"
    assert figures["epochs"] == 1
    assert figures["train_words"] > 0 and figures["train_words_per_second"] > 0
    assert figures["textcat"]["mode"] == "multilabel"
    assert figures["textcat"]["n_docs"] == 9
    assert 0.0 <= figures["textcat"]["macro_f"] <= 1.0
    assert "threshold" in result.stderr and "dev macro F" in result.stderr
    nlp = spacy.load(tmp_path / "run" / "model-best")
    threshold = nlp.get_pipe("textcat_multilabel").cfg["threshold"]
    assert any(abs(threshold - point) < 1e-9 for point in CURVE_GRID)
    metrics = json.loads(
        (tmp_path / "run" / "evaluation" / "metrics.json").read_text(encoding="utf8")
    )
    assert {entry["model"] for entry in metrics["textcat"]["thresholds"].values()} == {threshold}
