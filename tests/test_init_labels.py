"""The labels step writes the files spaCy's own `init labels` writes, and replaces stale ones."""

import subprocess
import sys
from pathlib import Path

import pytest
import spacy
import srsly
from spacy.tokens import DocBin
from spacy.util import load_config
from typer.testing import CliRunner

from scripts import init_labels as init_labels_command
from scripts.training.config import Schedule, build_config, write_filled_config
from scripts.training.labels import init_labels
from tests.helpers import PROJECT_ROOT, TRAIN

CATEGORIES = ("benefits", "requirements", "responsibilities")


def write_training_config(tmp_path: Path, bert: Path) -> Path:
    """A filled ner + textcat config on the tiny BERT, reading a corpus made from TRAIN."""
    nlp = spacy.blank("en")
    docs = []
    for text, spans, label in TRAIN:
        doc = nlp.make_doc(text)
        doc.set_ents([doc.char_span(s, e, label=tag) for s, e, tag in spans], default="outside")
        doc.cats = {name: float(name == label) for name in CATEGORIES}
        docs.append(doc)
    DocBin(docs=docs).to_disk(tmp_path / "train.spacy")
    config = build_config(
        load_config(PROJECT_ROOT / "configs" / "base.cfg", interpolate=False),
        components=["ner", "textcat"],
        lang="en",
        transformer_location=str(bert),
        schedule=Schedule(
            max_epochs=1, eval_frequency=5, patience=5, warmup_steps=1, total_steps=5
        ),
    )
    config["paths"]["train"] = config["paths"]["dev"] = str(tmp_path / "train.spacy")
    write_filled_config(config, tmp_path / "config.cfg")
    return tmp_path / "config.cfg"


@pytest.mark.slow
def test_label_files_are_spacys_own(tmp_path, tiny_transformer):
    config_path = write_training_config(tmp_path, tiny_transformer)
    stale = tmp_path / "labels" / "textcat_multilabel.json"
    stale.parent.mkdir()
    stale.write_text('["old"]')
    written = init_labels(config_path=config_path, output_dir=tmp_path / "labels")
    assert written == ["ner.json", "textcat.json"]
    # The entity recognizer's label data are its moves: "1" (BEGIN) with each entity label.
    assert set(srsly.read_json(tmp_path / "labels" / "ner.json")["1"]) == {"SKILL"}
    assert srsly.read_json(tmp_path / "labels" / "textcat.json") == list(CATEGORIES)
    spacys = tmp_path / "spacy-labels"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "spacy",
            "init",
            "labels",
            str(config_path),
            str(spacys),
            "--code",
            "scripts/training/registry.py",
            "--paths.labels",
            str(tmp_path / "empty"),
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(path.name for path in spacys.iterdir()) == written
    for name in written:
        assert (tmp_path / "labels" / name).read_bytes() == (spacys / name).read_bytes(), name


def test_missing_config_is_one_line(tmp_path):
    result = CliRunner().invoke(
        init_labels_command.app, [str(tmp_path / "nope.cfg"), str(tmp_path / "labels")]
    )
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"✘ {tmp_path / 'nope.cfg'}: config not found; "
        "run the config step first (spacy project run config)"
    ]
    assert not (tmp_path / "labels").exists()
