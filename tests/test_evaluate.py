"""scripts.evaluate end to end on a tiny rule-based pipeline saved to a tmp dir (no transformer, no
training)."""

import hashlib
import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import pytest
import spacy
from spacy.language import Language
from spacy.tokens import Doc, DocBin
from typer.testing import CliRunner

from scripts.common.errors import UserError
from scripts.evaluate import app
from scripts.evaluation.run import base_transformer, evaluate_model
from scripts.inference.predict import describe_pipeline

approx = pytest.approx
runner = CliRunner()
LABELS = ["POS", "NEG"]


class KeywordCats:
    """Sets doc.cats from the first keyword found in the text, else from `default`: predictable
    scores."""

    def __init__(
        self,
        labels: List[str],
        rules: List[list],
        default: List[float],
        exclusive: bool,
        threshold: float,
    ):
        self.labels = tuple(labels)
        self.rules = rules
        self.default = default
        self.cfg = {"exclusive_classes": exclusive, "threshold": threshold}

    def __call__(self, doc: Doc) -> Doc:
        scores = next((s for word, s in self.rules if word in doc.text.lower()), self.default)
        doc.cats = dict(zip(self.labels, scores))
        return doc


@Language.factory(
    "test_evaluate_keyword_cats",
    assigns=["doc.cats"],
    default_config={"labels": [], "rules": [], "default": [], "exclusive": True, "threshold": 0.5},
)
def make_keyword_cats(
    nlp: Language,
    name: str,
    labels: List[str],
    rules: List[list],
    default: List[float],
    exclusive: bool,
    threshold: float,
) -> KeywordCats:
    return KeywordCats(labels, rules, default, exclusive, threshold)


def save_pipeline(path: Path, *, ents: bool = True, cats: bool = True) -> Path:
    nlp = spacy.blank("en")
    nlp.meta.update(name="tiny", version="1.2.3")
    if ents:
        nlp.add_pipe("entity_ruler").add_patterns(
            [
                {"label": "PER", "pattern": "Alice"},
                {"label": "PER", "pattern": "Carol"},
                {"label": "ORG", "pattern": "Bob"},
                {"label": "ORG", "pattern": "Acme"},
                {"label": "LOC", "pattern": "Rome"},
                {"label": "GPE", "pattern": [{"LOWER": "new"}, {"LOWER": "york"}]},
            ]
        )
    if cats:
        nlp.add_pipe(
            "test_evaluate_keyword_cats",
            config={
                "labels": LABELS,
                "rules": [["love", [0.9, 0.1]], ["hate", [0.2, 0.8]]],
                "default": [0.6, 0.4],
            },
        )
    nlp.to_disk(path)
    return path


def gold_doc(
    text: str,
    ents: Optional[Sequence[Tuple[str, str]]] = None,
    cats: Optional[Dict[str, float]] = None,
) -> Doc:
    doc = spacy.blank("en")(text)
    if ents is not None:
        doc.set_ents(
            [
                doc.char_span(text.index(s), text.index(s) + len(s), label=label)
                for s, label in ents
            ],
            default="outside",
        )
    doc.cats = dict(cats or {})
    return doc


def write_docbin(path: Path, docs: Sequence[Doc]) -> Path:
    db = DocBin()
    for doc in docs:
        db.add(doc)
    db.to_disk(path)
    return path


# 5 docs. Entities (2 docs, 4 gold): Alice right, Bob predicted ORG, Paris missed, Carol right, Acme
# spurious. Categories (3 docs): love -> POS right, hate -> NEG right, "boring" -> default POS, gold
# NEG.
FIXTURE = [
    gold_doc("Alice met Bob in Paris.", [("Alice", "PER"), ("Bob", "PER"), ("Paris", "LOC")]),
    gold_doc("Acme hired Carol.", [("Carol", "PER")]),
    gold_doc("I love this film.", cats={"POS": 1.0, "NEG": 0.0}),
    gold_doc("I hate this film.", cats={"POS": 0.0, "NEG": 1.0}),
    gold_doc("What a boring film.", cats={"POS": 0.0, "NEG": 1.0}),
]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return save_pipeline(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="module")
def run(model, tmp_path_factory) -> Tuple[Dict, Path, Path]:
    tmp = tmp_path_factory.mktemp("run")
    data = write_docbin(tmp / "test.spacy", FIXTURE)
    metrics = evaluate_model(model=str(model), data_path=data, output_dir=tmp / "eval")
    return metrics, data, tmp / "eval"


def test_entity_figures_by_hand(run):
    ents = run[0]["ents"]
    assert (ents["p"], ents["r"], ents["f"]) == (approx(0.5), approx(0.5), approx(0.5))
    assert ents["errors"] == {"missed": 1, "spurious": 1, "wrong_label": 1, "wrong_span": 0}
    assert ents["per_label"]["PER"] == {
        "p": approx(1.0),
        "r": approx(2 / 3),
        "f": approx(0.8),
        "support": 3,
    }
    assert ents["per_label"]["LOC"]["support"] == 1 and ents["per_label"]["ORG"]["p"] == 0.0
    assert (ents["n_docs"], ents["n_skipped"], ents["tokenization"]) == (2, 3, "model")


def test_textcat_figures_by_hand(run):
    tc = run[0]["textcat"]
    assert tc["mode"] == "exclusive"
    assert tc["accuracy"] == approx(2 / 3)
    assert tc["confusion"] == {"labels": LABELS, "matrix": [[1, 0], [1, 1]]}
    assert (tc["per_label"]["POS"]["p"], tc["per_label"]["POS"]["r"]) == (approx(0.5), approx(1.0))
    assert (tc["per_label"]["NEG"]["p"], tc["per_label"]["NEG"]["r"]) == (approx(1.0), approx(0.5))
    assert (tc["macro_f"], tc["micro_f"]) == (approx(2 / 3), approx(2 / 3))
    assert tc["macro_auc"] == approx(1.0)  # POS scores 0.9 > 0.6 > 0.2 order the gold perfectly
    assert (tc["n_docs"], tc["n_skipped"]) == (3, 2)
    # The top scores: 0.9 (love, right), 0.8 (hate, right), 0.6 (boring, wrong), one per bin.
    assert tc["ece"] == approx((0.1 + 0.2 + 0.6) / 3)
    filled = [(b["lower"], b["n"], b["score"], b["right"]) for b in tc["reliability"] if b["n"]]
    assert filled == [
        (0.6, 1, approx(0.6), 0.0),
        (0.8, 1, approx(0.8), 1.0),
        (0.9, 1, approx(0.9), 1.0),
    ]


def test_model_and_data_are_described(run, model):
    metrics, data, _ = run
    assert metrics["model"]["name"] == "en_tiny" and metrics["model"]["version"] == "1.2.3"
    assert metrics["model"]["transformer"] is None
    assert metrics["model"]["path"] == str(model.resolve())
    assert metrics["data"] == {
        "path": str(data),
        "sha256": hashlib.sha256(data.read_bytes()).hexdigest(),
        "n_docs": 5,
        "gold_preproc": False,
    }
    assert metrics["warnings"] == []


def test_outputs_are_written_without_leftovers(run):
    metrics, _, out = run
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert sorted(p.name for p in (out / "plots").iterdir()) == [
        "ents_per_label.png",
        "reliability.png",
        "textcat_confusion.png",
        "textcat_per_label.png",
    ]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in (out / "plots").iterdir())
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]
    assert sorted(p.name for p in out.iterdir()) == [
        "metrics.json",
        "plots",
        "predictions.spacy",
        "report.html",
    ]
    predicted = list(
        DocBin().from_disk(out / "predictions.spacy").get_docs(spacy.blank("en").vocab)
    )
    assert [doc.text for doc in predicted] == [doc.text for doc in FIXTURE]
    assert [e.text for e in predicted[0].ents] == ["Alice", "Bob"]


def test_metrics_json_keeps_its_layout_and_key_order(run):
    written = json.loads((run[2] / "metrics.json").read_text())
    assert list(written) == ["format", "model", "data", "warnings", "ents", "textcat"]
    assert list(written["model"]) == [
        "name",
        "version",
        "path",
        "spacy_version",
        "pipeline",
        "transformer",
        "ents_components",
        "textcat_component",
        "tasks",
    ]
    assert written["model"]["tasks"] == {
        "ent_labels": ["GPE", "LOC", "ORG", "PER"],
        "cat_labels": LABELS,
        "exclusive": True,
        "threshold": 0.5,
    }
    assert list(written["ents"]) == [
        "p",
        "r",
        "f",
        "macro_p",
        "macro_r",
        "macro_f",
        "weighted_p",
        "weighted_r",
        "weighted_f",
        "tokenization",
        "n_docs",
        "n_skipped",
        "errors",
        "unknown_labels",
        "per_label",
        "confidence",
    ]
    assert list(written["textcat"]) == [
        "mode",
        "accuracy",
        "macro_f",
        "micro_f",
        "macro_auc",
        "macro_p",
        "macro_r",
        "micro_p",
        "micro_r",
        "weighted_p",
        "weighted_r",
        "weighted_f",
        "n_docs",
        "per_label",
        "confusion",
        "thresholds",
        "ece",
        "reliability",
        "n_skipped",
        "skipped",
        "unknown_labels",
    ]
    assert list(written["textcat"]["per_label"]["POS"]) == [
        "p",
        "r",
        "f",
        "auc",
        "support",
        "n_docs",
    ]


def test_report_is_self_contained_and_shows_errors_in_context(run):
    page = (run[2] / "report.html").read_text()
    assert "http://" not in page and "https://" not in page
    assert page.count("data:image/png;base64,") == 4
    assert "<h2>Calibration</h2>" in page and "category scores" in page
    assert "LOC · missed" in page and "ORG · spurious" in page and "ORG · gold PER" in page
    assert "Scored on 2 documents; 3 skipped" in page
    assert "What a boring film." in page  # the misclassified text
    assert "the model's own tokenization of the raw text" in page


def test_gold_preproc_runs_the_model_on_gold_tokens(model, tmp_path):
    gold = Doc(
        spacy.blank("en").vocab,
        words=["I", "visited", "New", "York."],
        spaces=[True, True, True, False],
    )
    gold.set_ents([gold.char_span(10, 19, label="GPE")], default="outside")
    data = write_docbin(tmp_path / "iob.spacy", [gold])
    raw = evaluate_model(model=str(model), data_path=data, output_dir=tmp_path / "raw")
    preproc = evaluate_model(
        model=str(model), data_path=data, output_dir=tmp_path / "gold", gold_preproc=True
    )
    assert raw["ents"]["f"] == approx(
        1.0
    )  # the model splits "York." and its entity aligns to the gold one
    assert (preproc["ents"]["r"], preproc["ents"]["errors"]["missed"]) == (
        0.0,
        1,
    )  # "York." does not match
    assert (raw["ents"]["tokenization"], preproc["ents"]["tokenization"]) == ("model", "gold")
    assert "gold tokenization (--gold-preproc" in (tmp_path / "gold" / "report.html").read_text()


def test_cli_prints_key_figures(model, tmp_path):
    data = write_docbin(tmp_path / "test.spacy", FIXTURE)
    result = runner.invoke(app, [str(model), str(data), "--output", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "Entities: P 0.500  R 0.500  F 0.500  on 2 docs (3 skipped" in result.stdout
    assert "Textcat (exclusive): accuracy 0.667" in result.stdout


def _fails_with(args: List[str], *expected: str) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)  # typer.Exit, not a crash
    lines = [line for line in result.stderr.strip().splitlines() if not line.startswith("ℹ ")]
    assert len(lines) == 1 and lines[0].startswith("✘ "), result.stderr
    for text in expected:
        assert text in lines[0]
    return lines[0]


def test_missing_model_is_one_line_error(tmp_path):
    data = write_docbin(tmp_path / "test.spacy", FIXTURE)
    _fails_with(
        [str(tmp_path / "nope"), str(data), "-o", str(tmp_path / "out")],
        "model not found",
        str(tmp_path / "nope"),
        "project run train",
    )
    assert not (tmp_path / "out").exists()


def test_data_without_annotation_for_the_model_is_one_line_error(model, tmp_path):
    data = write_docbin(tmp_path / "plain.spacy", [gold_doc("No annotation here.")])
    _fails_with(
        [str(model), str(data), "-o", str(tmp_path / "out")],
        str(data),
        "no annotation for any of the model's components",
        "entity_ruler: 0 of 1",
    )


def test_missing_or_broken_data_is_one_line_error(model, tmp_path):
    _fails_with(
        [str(model), str(tmp_path / "none.spacy"), "-o", str(tmp_path / "o")], "data not found"
    )
    (tmp_path / "bad.spacy").write_bytes(b"not a docbin")
    _fails_with(
        [str(model), str(tmp_path / "bad.spacy"), "-o", str(tmp_path / "o")],
        "cannot read",
        "DocBin",
    )


def test_model_without_ents_or_cats_is_one_line_error(tmp_path):
    path = save_pipeline(tmp_path / "empty", ents=False, cats=False)
    data = write_docbin(tmp_path / "test.spacy", FIXTURE)
    _fails_with(
        [str(path), str(data), "-o", str(tmp_path / "o")],
        "predicts neither entities nor categories",
    )


def test_unknown_labels_warn_per_label_and_known_ones_are_scored(model, tmp_path):
    docs = FIXTURE + [
        gold_doc("Zed works at Hooli.", [("Zed", "PER"), ("Hooli", "COMPANY")]),
        gold_doc("Sunny today.", cats={"WEATHER": 1.0, "POS": 0.0, "NEG": 0.0}),
    ]
    data = write_docbin(tmp_path / "test.spacy", docs)
    result = runner.invoke(app, [str(model), str(data), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("⚠ ")]
    assert len(warnings) == 1 and "ents: COMPANY (1); textcat: WEATHER (1)" in warnings[0]
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["ents"]["r"] == approx(2 / 5)  # Zed is a known PER entity and is missed
    assert metrics["textcat"]["skipped"]["unknown_label"] == 1 and metrics["textcat"]["n_docs"] == 3


def test_spacy_textcat_components_give_mode_and_threshold(tmp_path):
    data = write_docbin(tmp_path / "test.spacy", FIXTURE)
    for factory, threshold in (("textcat_multilabel", 0.3), ("textcat", 0.0)):
        nlp = spacy.blank("en")
        pipe = nlp.add_pipe(factory, config={"threshold": threshold})
        for label in LABELS:
            pipe.add_label(label)
        nlp.initialize()
        nlp.to_disk(tmp_path / factory)
        tc = evaluate_model(
            model=str(tmp_path / factory), data_path=data, output_dir=tmp_path / "out"
        )["textcat"]
        assert tc["n_docs"] == 3 and tc["accuracy"] is not None
        if factory == "textcat_multilabel":
            assert tc["mode"] == "multilabel" and tc["thresholds"]["POS"]["model"] == approx(0.3)
            assert (tmp_path / "out" / "plots" / "textcat_thresholds.png").exists()
        else:  # the exclusive run in the same folder removes the multi-label run's threshold plot
            assert tc["mode"] == "exclusive" and tc["confusion"]["labels"] == LABELS
            assert not (tmp_path / "out" / "plots" / "textcat_thresholds.png").exists()


def test_base_transformer_comes_from_the_config():
    config = {
        "components": {
            "transformer": {"factory": "transformer", "model": {"name": "roberta-base"}},
            "ner": {"factory": "ner"},
        }
    }
    assert base_transformer(config=config) == "roberta-base"
    assert base_transformer(config={"components": {"ner": {"factory": "ner"}}}) is None


@Language.factory("test_evaluate_cats_with_cfg", assigns=["doc.cats"], default_config={"cfg": {}})
def make_cats_with_cfg(nlp: Language, name: str, cfg: Dict[str, object]) -> KeywordCats:
    component = KeywordCats(LABELS, [], [0.7, 0.4], exclusive=True, threshold=0.5)
    component.cfg = dict(cfg)  # what the component says about its scores, or nothing
    return component


def test_evaluate_and_predict_read_a_custom_cats_component_alike(tmp_path):
    data = write_docbin(tmp_path / "test.spacy", FIXTURE)
    nlp = spacy.blank("en")
    nlp.add_pipe(
        "test_evaluate_cats_with_cfg",
        config={"cfg": {"exclusive_classes": False, "threshold": 0.6}},
    )
    nlp.to_disk(tmp_path / "multilabel")
    tc = evaluate_model(
        model=str(tmp_path / "multilabel"), data_path=data, output_dir=tmp_path / "out"
    )["textcat"]
    predictor = describe_pipeline(nlp)
    assert tc["mode"] == "multilabel" and tc["thresholds"]["POS"]["model"] == approx(0.6)
    assert (predictor.exclusive, predictor.threshold) == (False, approx(0.6))
    undecided = spacy.blank("en")
    undecided.add_pipe("test_evaluate_cats_with_cfg")
    undecided.to_disk(tmp_path / "undecided")
    _fails_with(
        [str(tmp_path / "undecided"), str(data), "-o", str(tmp_path / "o")],
        "no 'exclusive_classes'",
    )
    with pytest.raises(UserError, match="no 'exclusive_classes'"):
        describe_pipeline(undecided)


def test_bootstrap_intervals_hold_each_figure_and_compare_tests_the_difference(model, tmp_path):
    """--bootstrap gives every overall figure an interval around it, in metrics.json, the printed
    summary and the report; compare --bootstrap pairs two evaluations on the same documents."""
    docs = [doc for _ in range(8) for doc in FIXTURE]  # 40 docs: draws differ
    data = write_docbin(tmp_path / "test.spacy", docs)
    args = [str(model), str(data), "--bootstrap", "100", "--explain", "0"]
    result = runner.invoke(app, [*args, "--output", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    drawn = metrics["bootstrap"]
    assert (drawn["n"], drawn["level"], drawn["seed"]) == (100, 0.95, 0)
    for task in ("ents", "textcat"):
        for key, interval in drawn[task].items():
            value = metrics[task][key] if "." not in key else None
            if interval is not None and value is not None:
                assert interval[0] <= value <= interval[1], (task, key)
    low, high = drawn["ents"]["f"]
    assert low < metrics["ents"]["f"] < high  # 16 annotated docs: not one point
    assert f"f 0.500 [{low:.3f}, {high:.3f}]" in result.stdout
    assert "How sure are these figures?" in (tmp_path / "a" / "report.html").read_text()
    again = runner.invoke(app, [*args, "--output", str(tmp_path / "b")])
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["bootstrap"] == drawn

    from scripts.compare import app as compare_app

    compared = runner.invoke(
        compare_app, [str(tmp_path / "a"), str(tmp_path / "b"), "--bootstrap", "50"]
    )
    assert compared.exit_code == 0, compared.output
    assert "Paired bootstrap, 50 draws" in compared.stdout
    assert "ents.f" in compared.stdout and "significant" not in compared.stdout  # same model
    refused = runner.invoke(
        compare_app,
        [str(tmp_path / "a"), str(tmp_path / "b"), "--bootstrap", "50", "--data", str(model)],
    )
    assert refused.exit_code == 2
    assert "not the test split both runs were scored on" in refused.output
    assert again.exit_code == 0
