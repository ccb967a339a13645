"""Plain helpers and data the tests share (fixtures live in conftest.py): a tiny BERT built
locally with random weights (no test needs a network), the tiny pipeline trained on it, and the
reader helpers."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import spacy
from click.testing import Result
from spacy.tokens import Doc, DocBin
from spacy.training import Example
from spacy.util import load_config
from spacy.vocab import Vocab
from typer.testing import CliRunner

from scripts.corpus.readers import READERS, Log, ReadOptions
from scripts.corpus.textfiles import split_lines

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def missing_extra(extra: str, *modules: str) -> str:
    """Why a test of the optional extra requirements/<extra>.txt cannot run ("" when it can): the
    README's test command installs requirements-dev.txt only, so such a test skips, naming what
    to install, where any of the extra's modules is missing (.ci/run runs it both ways)."""
    missing = [module for module in modules if importlib.util.find_spec(module) is None]
    if not missing:
        return ""
    return f"{', '.join(missing)} not installed: pip install -r requirements/{extra}.txt"


def needs_extra(extra: str, *modules: str) -> pytest.MarkDecorator:
    """Skip the test (or, as pytestmark, the module) unless the extra's modules are installed."""
    reason = missing_extra(extra, *modules)
    return pytest.mark.skipif(bool(reason), reason=reason)


def write_tiny_bert(path: Path) -> Path:
    """A 2-layer, 32-wide BERT with a character-level WordPiece vocabulary, as save_pretrained()
    writes it."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    chars = sorted(set("abcdefghijklmnopqrstuvwxyz0123456789.,;:!?'\"()-+/&%$#@*"))
    vocab = SPECIAL_TOKENS + chars + [f"##{c}" for c in chars]
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf8")
    BertTokenizerFast(
        vocab_file=str(path / "vocab.txt"), do_lower_case=True, model_max_length=512
    ).save_pretrained(path)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    BertModel(config).save_pretrained(path)
    return path


TRAIN = [
    ("Python and SQL are required.", [(0, 6, "SKILL"), (11, 14, "SKILL")], "requirements"),
    ("You will maintain our Python services.", [(22, 28, "SKILL")], "responsibilities"),
    ("We offer 30 days of paid leave.", [], "benefits"),
    (
        "Experience with SQL and Excel is a plus.",
        [(16, 19, "SKILL"), (24, 29, "SKILL")],
        "requirements",
    ),
    ("Free lunch and a gym budget.", [], "benefits"),
    ("Build dashboards in Excel for the sales team.", [(20, 25, "SKILL")], "responsibilities"),
]
TEXTS = [
    "Python and SQL are required.",
    "We offer free lunch.",
    "",
    "Ünïcode 💡 text: build Excel dashboards, naïve café.",
    "A longer posting. " * 40,
]


def build_tiny_pipeline(path: Path, *, bert: Path, steps: int = 20) -> Path:
    """configs/base.cfg with a tiny random BERT, ner + textcat, trained a few steps on TRAIN and
    saved to path."""
    import scripts.training.registry  # noqa: F401  what base.cfg names
    from scripts.training.config import Schedule, build_config
    from scripts.training.run import use_stock_components

    schedule = Schedule(
        max_epochs=1, eval_frequency=10, patience=10, warmup_steps=1, total_steps=steps
    )
    config = build_config(
        load_config(PROJECT_ROOT / "configs/base.cfg", interpolate=False),
        components=["ner", "textcat"],
        lang="en",
        transformer_location=str(bert),
        schedule=schedule,
    )
    config["training"]["optimizer"]["learn_rate"] = 0.005
    # base.cfg reads labels from training/labels, relative to the working directory: where the
    # workflow has run there, they are the sample's; this pipeline takes its labels from TRAIN.
    config["paths"]["labels"] = str(path / "no-precomputed-labels")
    nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
    examples = []
    for text, spans, label in TRAIN:
        doc = nlp.make_doc(text)
        cats = {
            name: float(name == label) for name in ("requirements", "responsibilities", "benefits")
        }
        examples.append(Example.from_dict(doc, {"entities": list(spans), "cats": cats}))
    spacy.util.fix_random_seed(0)
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(steps):
        nlp.update(examples, sgd=optimizer, drop=0.0)
        optimizer.step_schedules()
    nlp.meta.update(name="tiny", version="0.0.1")
    nlp.to_disk(path)
    use_stock_components(path)  # as the train step does: loads with stock spaCy
    return path


def read(text: str, fmt: str, *, lenient: bool = False, **options: Any) -> tuple[list[Doc], Log]:
    """Docs and the log from reading `text` with the named reader, its lines split as a file's are
    (at CRLF, CR or LF)."""
    log = Log(file="f", lenient=lenient)
    lines = enumerate(split_lines(text, "\r", "\n"), 1)
    docs = list(READERS[fmt].read(lines, options=ReadOptions(**options), log=log))
    return docs, log


LINE_ENDS = ("LF", "CRLF", "CR", "mixed")  # Unix; Windows; Excel for Mac's "CSV (Macintosh)"


def with_line_ends(text: str, style: str) -> str:
    """`text` with its LF line ends written in `style`: LF, CRLF, CR, or mixed (CR, CRLF, LF)."""
    ends = {"LF": ["\n"], "CRLF": ["\r\n"], "CR": ["\r"], "mixed": ["\r", "\r\n", "\n"]}[style]
    lines = text.split("\n")
    return "".join(line + ends[i % len(ends)] for i, line in enumerate(lines[:-1])) + lines[-1]


def ents(doc: Doc) -> list[tuple[str, str]]:
    return [(ent.text, ent.label_) for ent in doc.ents]


def reasons(log: Log) -> dict[str, int]:
    return {f"{e.kind}: {e.reason}": e.count for e in log.events.values()}


def run_convert(*args: object) -> Result:
    """python -m scripts.convert with these arguments, in this process."""
    from scripts.convert import app

    return CliRunner().invoke(app, [str(a) for a in args])


def load_docs(path: Path) -> list[Doc]:
    """The documents of a .spacy file."""
    return list(DocBin().from_disk(path).get_docs(Vocab()))


def run_outside_repo(script: str, *args: str, cwd: Path, site: Path | None = None) -> Any:
    """Run a Python snippet in a fresh interpreter that cannot import this repository (only
    `site` added to its path, if given) and return the JSON of its last line of output."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if site is not None:
        env["PYTHONPATH"] = str(site)
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def write_gold(path: Path) -> Path:
    """TRAIN as a gold test split: entities and one category per text."""
    nlp, db = spacy.blank("en"), DocBin()
    for text, spans, label in TRAIN:
        doc = nlp(text)
        doc.set_ents(
            [doc.char_span(start, end, label=name) for start, end, name in spans], default="outside"
        )
        doc.cats = {
            name: float(name == label) for name in ("requirements", "responsibilities", "benefits")
        }
        db.add(doc)
    db.to_disk(path)
    return path


# Float32 scores no real run printed, so that the meta can be told apart from them.
FLOAT_METRICS = {
    "ents": {"p": 0.5, "r": 0.5, "f": 0.123, "per_label": {}, "n_docs": 6},
    "textcat": {
        "mode": "exclusive",
        "accuracy": 0.5,
        "macro_f": 0.456,
        "micro_f": 0.5,
        "per_label": {},
        "n_docs": 6,
    },
}


def package_options(
    tiny_pipeline: Path, tmp_path: Path, *, metrics: dict, model_dir: Path | None = None
) -> dict[str, Any]:
    """package_pipeline's arguments for a pipeline on the tiny BERT (beside tiny_pipeline) into
    tmp_path/packages, with `metrics` as its test scores (tmp_path/metrics.json); model_dir
    defaults to tiny_pipeline."""
    metrics_path = tmp_path / "metrics.json"
    metrics_path.write_text(json.dumps(metrics), encoding="utf8")
    return dict(
        model_dir=model_dir or tiny_pipeline,
        output_dir=tmp_path / "packages",
        version="0.0.1",
        metrics_path=metrics_path,
        transformer=str(tiny_pipeline.parent / "tiny-pipeline-bert"),
        lang="en",
    )
