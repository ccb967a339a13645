"""entity_confidence: one score in [0, 1] per entity of doc.ents, the entities unchanged, calibrated
on the dev set and saved disabled; the scores survive serialization, reach predict/annotate/Label
Studio output (which turn them on), filter with --min-score, are evaluated (AUC, ECE, P/R/F by
threshold) and travel inside the wheel, off until turned on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
from spacy.tokens import Doc, DocBin
from spacy.training import Example
from thinc.api import Config
from typer.testing import CliRunner

from scripts.common.errors import UserError
from scripts.evaluation.run import evaluate_model
from scripts.inference.predict import (
    LabelConfig,
    describe_pipeline,
    labelstudio_prediction,
    load_predictor,
    predict_texts,
)
from scripts.packaging.wheel import package_pipeline
from scripts.scoring.calibration import fit_calibration
from scripts.scoring.entity_confidence import (
    ENTITY_CONFIDENCE,
    ENTITY_PROBABILITIES,
    SPANS_KEY,
    add_entity_confidence,
    calibrated,
    entity_scores,
    logit,
    sigmoid,
)
from scripts.scoring.metrics import ent_confidence, match_ents
from scripts.training.confidence import add_confidence
from tests.helpers import TEXTS, TRAIN, package_options, run_outside_repo, write_gold

SENTENCES = [text for text in TEXTS if text] + [text for text, _, _ in TRAIN]


@pytest.fixture(scope="module")
def dev_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_gold(tmp_path_factory.mktemp("dev") / "dev.spacy")


@pytest.fixture(scope="module")
def scored_pipeline(
    tiny_pipeline: Path, dev_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The tiny pipeline with entity_confidence after its ner, as the train step saves it:
    calibrated on a dev set, disabled."""
    path = tmp_path_factory.mktemp("scored") / "model"
    added = add_confidence(model_dir=tiny_pipeline, output_dir=path, dev_path=dev_path)
    assert added.calibration is not None and added.calibration.n > 3
    return path


def load_scoring(path: Path) -> spacy.Language:
    nlp = spacy.load(path)
    nlp.enable_pipe(ENTITY_CONFIDENCE)
    return nlp


def ent_tuples(doc: Doc) -> list[tuple[int, int, str]]:
    return [(ent.start, ent.end, ent.label_) for ent in doc.ents]


def test_the_component_is_saved_disabled_and_plain_nlp_pipe_does_not_score(scored_pipeline):
    nlp = spacy.load(scored_pipeline)
    assert nlp.disabled == [ENTITY_CONFIDENCE]
    assert nlp.pipe_names == ["transformer", "ner", "textcat"]
    assert all(SPANS_KEY not in doc.spans for doc in nlp.pipe(SENTENCES))
    # spaCy's enable= means "only these": with a component disabled in the config it refuses.
    with pytest.raises(ValueError, match="E1042"):
        spacy.load(scored_pipeline, enable=[ENTITY_CONFIDENCE])
    on = spacy.load(scored_pipeline, config={"nlp": {"disabled": []}})
    assert on.pipe_names == ["transformer", "ner", ENTITY_CONFIDENCE, "textcat"]


def test_every_entity_gets_one_score_and_the_entities_stay_the_greedy_ones(
    tiny_pipeline, scored_pipeline
):
    plain = spacy.load(tiny_pipeline)
    scored = load_scoring(scored_pipeline)
    assert scored.pipe_names == ["transformer", "ner", ENTITY_CONFIDENCE, "textcat"]
    docs = list(scored.pipe(SENTENCES))
    assert [ent_tuples(d) for d in docs] == [ent_tuples(d) for d in plain.pipe(SENTENCES)]
    assert sum(len(doc.ents) for doc in docs) > 3, "the test needs a pipeline that finds entities"
    for doc in docs:
        group = doc.spans[SPANS_KEY]
        assert ent_tuples(doc) == [(s.start, s.end, s.label_) for s in group]
        scores = entity_scores(doc)
        assert scores == group.attrs["scores"] and len(scores) == len(doc.ents)
        assert all(isinstance(s, float) and 0.0 <= s <= 1.0 for s in scores)
    assert len({s for doc in docs for s in entity_scores(doc)}) > 1  # not one constant


def test_the_scores_are_calibrated_on_the_dev_set_and_stored_in_the_config(
    tiny_pipeline, scored_pipeline, dev_path
):
    scored = load_scoring(scored_pipeline)
    config = scored.config["components"][ENTITY_CONFIDENCE]
    scale, shift = config["scale"], config["shift"]
    # The same fit, on the raw probabilities of the dev entities against their gold ones.
    raw = spacy.load(tiny_pipeline)
    add_entity_confidence(raw)
    golds = list(DocBin().from_disk(dev_path).get_docs(raw.vocab))
    right, probabilities = [], []
    for gold, pred in zip(golds, raw.pipe(doc.text for doc in golds)):
        record = match_ents(gold=gold, pred=pred, labels=raw.get_pipe("ner").labels)
        right += [ent["kind"] == "correct" for ent in record.pred]
        probabilities += [ent["score"] for ent in record.pred]
    assert len(set(right)) == 2, "the test needs right and wrong dev entities"
    fit = fit_calibration(right=right, probabilities=probabilities)
    assert (scale, shift) == (pytest.approx(fit.scale), pytest.approx(fit.shift))
    assert (scale, shift) != (1.0, 0.0) and fit.log_loss_after < fit.log_loss_before
    for plain, doc in zip(raw.pipe(SENTENCES), scored.pipe(SENTENCES)):
        expected = [calibrated(p, scale=scale, shift=shift) for p in entity_scores(plain)]
        assert entity_scores(doc) == pytest.approx(expected)


def test_scores_survive_to_bytes_and_docbin(scored_pipeline):
    nlp = load_scoring(scored_pipeline)
    docs = list(nlp.pipe(SENTENCES))
    again = [Doc(nlp.vocab).from_bytes(doc.to_bytes()) for doc in docs]
    assert [entity_scores(d) for d in again] == [entity_scores(d) for d in docs]
    data = DocBin(docs=docs).to_bytes()
    read = list(DocBin().from_bytes(data).get_docs(nlp.vocab))
    assert [entity_scores(d) for d in read] == [entity_scores(d) for d in docs]
    assert [ent_tuples(d) for d in read] == [ent_tuples(d) for d in docs]


def test_a_pipeline_without_the_component_has_no_scores_and_adding_it_again_replaces_it(
    tiny_pipeline, scored_pipeline, tmp_path
):
    plain = spacy.load(tiny_pipeline)
    assert entity_scores(plain(SENTENCES[0])) is None
    assert add_entity_confidence(plain) and not add_entity_confidence(plain)
    again = add_confidence(model_dir=scored_pipeline, output_dir=tmp_path / "again")
    assert again.calibration is None  # no dev set: the uncalibrated probabilities
    nlp = spacy.load(tmp_path / "again")
    assert nlp.component_names == ["transformer", "ner", ENTITY_CONFIDENCE, "textcat"]
    assert nlp.config["components"][ENTITY_CONFIDENCE]["scale"] == 1.0


def test_a_pipeline_saved_with_an_older_entity_confidence_gets_the_current_one(
    tiny_pipeline, tmp_path
):
    old = tmp_path / "old"
    nlp = spacy.load(tiny_pipeline)
    add_entity_confidence(nlp)
    nlp.to_disk(old)
    config = Config().from_disk(old / "config.cfg", interpolate=False)
    # The component's config as the version with the beam search saved it.
    config["components"][ENTITY_CONFIDENCE] = {
        "factory": ENTITY_CONFIDENCE,
        "ner": "ner",
        "spans_key": SPANS_KEY,
        "beam_width": 16,
        "beam_density": 0.0001,
        "probabilities": {"@misc": "ner_textcat.entity_beam_probabilities.v1"},
    }
    config.to_disk(old / "config.cfg", interpolate=False)
    with pytest.raises(Exception, match="entity_beam_probabilities.v1"):
        spacy.load(old)
    add_confidence(model_dir=old, output_dir=tmp_path / "new")
    block = spacy.load(tmp_path / "new").config["components"][ENTITY_CONFIDENCE]
    assert block["probabilities"] == {"@misc": ENTITY_PROBABILITIES} and "beam_width" not in block


def test_predict_records_and_labelstudio_regions_carry_the_scores(scored_pipeline):
    predictor = load_predictor(str(scored_pipeline))
    records = predict_texts(predictor, TEXTS)
    docs = list(predictor.nlp.pipe([text for text in TEXTS if text]))
    expected = iter([entity_scores(doc) for doc in docs])
    for text, record in zip(TEXTS, records):
        scores = [ent["score"] for ent in record["entities"]]
        assert scores == pytest.approx(next(expected) if text else [], abs=1e-6)
    record = next(r for r in records if r["entities"])
    task = labelstudio_prediction(record, predictor=predictor, config=LabelConfig())
    regions = [item for item in task["result"] if item["type"] == "labels"]
    assert [item["score"] for item in regions] == [ent["score"] for ent in record["entities"]]
    first, second = sorted(record["cats"].values(), reverse=True)[:2]
    # The least sure decision: the categories' margin or the lowest entity score.
    least = min([first - second] + [ent["score"] for ent in record["entities"]])
    assert task["score"] == pytest.approx(least, abs=1e-6)


def test_min_score_leaves_out_the_entities_scored_below_it(scored_pipeline, tiny_pipeline):
    nlp = load_scoring(scored_pipeline)
    everything = predict_texts(describe_pipeline(nlp), SENTENCES)
    scores = sorted(ent["score"] for r in everything for ent in r["entities"])
    cut = scores[len(scores) // 2]
    kept = predict_texts(describe_pipeline(nlp, min_score=cut), SENTENCES)
    assert kept == [
        {**r, "entities": [ent for ent in r["entities"] if ent["score"] >= cut]} for r in everything
    ]
    assert 0 < sum(len(r["entities"]) for r in kept) < len(scores)
    with pytest.raises(UserError, match="runs no entity_confidence.*scripts.add_confidence"):
        describe_pipeline(spacy.load(tiny_pipeline), min_score=0.5)
    with pytest.raises(UserError, match=r"nlp.enable_pipe\('entity_confidence'\)"):
        describe_pipeline(spacy.load(scored_pipeline), min_score=0.5)


def test_annotate_writes_scores_and_filters_with_min_score(scored_pipeline, tmp_path):
    from scripts.annotate import app

    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"text": t}) + "\n" for t in SENTENCES), encoding="utf8")
    runner = CliRunner()
    args = [str(scored_pipeline), str(source)]
    result = runner.invoke(app, args + [str(tmp_path / "all.jsonl"), "--no-progress"])
    assert result.exit_code == 0, result.output
    every = [json.loads(line) for line in (tmp_path / "all.jsonl").read_text().splitlines()]
    scores = [ent["score"] for record in every for ent in record["entities"]]
    assert scores and all(0.0 <= s <= 1.0 for s in scores)
    cut = sorted(scores)[len(scores) // 2]
    out = tmp_path / "kept.jsonl"
    result = runner.invoke(app, args + [str(out), "--no-progress", "--min-score", str(cut)])
    assert result.exit_code == 0, result.output
    kept = [json.loads(line) for line in out.read_text().splitlines()]
    assert [[e for e in r["entities"] if e["score"] >= cut] for r in every] == [
        r["entities"] for r in kept
    ]
    bad = runner.invoke(app, args + [str(tmp_path / "x.jsonl"), "--min-score", "1.5"])
    assert bad.exit_code != 0 and not (tmp_path / "x.jsonl").exists()


def test_auc_and_precision_recall_by_threshold_on_a_worked_example():
    # Correct, wrong, correct, wrong; 3 gold entities. Of the 4 (correct, wrong) pairs, 3 are
    # ordered right (0.9 > 0.2, 0.9 > 0.7, 0.6 > 0.2; not 0.6 < 0.7): AUC 3/4.
    result = ent_confidence(
        correct=[True, False, True, False], scores=[0.9, 0.2, 0.6, 0.7], n_gold=3
    )
    assert result is not None
    assert result["auc"] == pytest.approx(0.75)
    assert (result["n_correct"], result["n_wrong"]) == (2, 2)
    rows = {row["threshold"]: row for row in result["by_threshold"]}
    assert (rows[0.0]["p"], rows[0.0]["r"], rows[0.0]["n_kept"]) == (0.5, pytest.approx(2 / 3), 4)
    assert (rows[0.65]["p"], rows[0.65]["r"], rows[0.65]["n_kept"]) == (
        0.5,
        pytest.approx(1 / 3),
        2,
    )
    assert rows[0.8]["p"] == 1.0 and rows[0.8]["n_kept"] == 1
    assert ent_confidence(correct=[True], scores=[None], n_gold=1) is None


def test_evaluation_reports_the_auc_the_ece_and_plots_precision_recall_by_min_score(
    scored_pipeline, tmp_path
):
    nlp = spacy.blank("en")
    docs = []
    for text, spans, _ in TRAIN:
        example = Example.from_dict(nlp.make_doc(text), {"entities": list(spans)})
        docs.append(example.reference)
    DocBin(docs=docs).to_disk(tmp_path / "test.spacy")
    metrics = evaluate_model(
        model=str(scored_pipeline), data_path=tmp_path / "test.spacy", output_dir=tmp_path / "ev"
    )
    result = metrics["ents"]["confidence"]
    assert result is not None and result["n_correct"] + result["n_wrong"] > 0
    assert [row["threshold"] for row in result["by_threshold"]][:2] == [0.0, 0.05]
    assert (tmp_path / "ev/plots/ents_confidence.png").read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "ev/plots/reliability.png").read_bytes().startswith(b"\x89PNG")
    page = (tmp_path / "ev/report.html").read_text(encoding="utf8")
    assert "Entity scores" in page and "Calibration" in page
    assert result["ece"] is not None and 0.0 <= result["ece"] <= 1.0
    assert sum(b["n"] for b in result["reliability"]) == result["n_correct"] + result["n_wrong"]
    written = json.loads((tmp_path / "ev/metrics.json").read_text(encoding="utf8"))
    assert written["ents"]["confidence"] == result


def test_add_confidence_command_writes_a_copy_and_never_over_its_input(tiny_pipeline, tmp_path):
    from scripts.add_confidence import app

    runner = CliRunner()
    same = runner.invoke(app, [str(tiny_pipeline), str(tiny_pipeline)])
    assert same.exit_code == 1 and "is the input pipeline" in same.output
    result = runner.invoke(app, [str(tiny_pipeline), str(tmp_path / "scored")])
    assert result.exit_code == 0, result.output
    assert "uncalibrated" in result.output
    assert spacy.load(tmp_path / "scored").disabled == [ENTITY_CONFIDENCE]
    missing = runner.invoke(app, [str(tmp_path / "nothing"), str(tmp_path / "out")])
    assert missing.exit_code == 1 and len(missing.output.strip().splitlines()) == 1


LOAD_SCORED = (
    "import json, sys, spacy\n"
    "nlp = spacy.load('en_scored')\n"
    "texts = json.loads(sys.argv[1])\n"
    "off = [sorted(d.spans) for d in nlp.pipe(texts)]\n"
    "pipe_names = nlp.pipe_names\n"
    "nlp.enable_pipe('entity_confidence')\n"
    "docs = list(nlp.pipe(texts))\n"
    "out = {'pipe_names': pipe_names, 'off': off,\n"
    "       'ents': [[(e.start, e.end, e.label_) for e in d.ents] for d in docs],\n"
    "       'scores': [list(d.spans['ents_scored'].attrs['scores']) for d in docs],\n"
    "       'repo': sorted(m for m in sys.modules if m.split('.')[0] == 'scripts')}\n"
    "print(json.dumps(out))\n"
)


@pytest.mark.slow
def test_a_trained_pipeline_loads_outside_the_repo_with_the_component_excluded(
    scored_pipeline, tmp_path
):
    script = (
        "import json, sys, spacy\n"
        "nlp = spacy.load(sys.argv[1], exclude=['entity_confidence'])\n"
        "docs = list(nlp.pipe(json.loads(sys.argv[2])))\n"
        "print(json.dumps([[(e.start, e.end, e.label_) for e in d.ents] for d in docs]))\n"
    )
    ents = run_outside_repo(script, str(scored_pipeline), json.dumps(SENTENCES), cwd=tmp_path)
    docs = spacy.load(scored_pipeline).pipe(SENTENCES)
    assert ents == [[list(ent) for ent in ent_tuples(d)] for d in docs]


@pytest.mark.slow
def test_the_default_wheel_ships_the_component_and_scores_outside_the_repo(
    scored_pipeline, tiny_pipeline, tmp_path
):
    options = package_options(
        tiny_pipeline, tmp_path, metrics={"ents": None, "textcat": None}, model_dir=scored_pipeline
    )
    wheel = package_pipeline(**options, name="scored").wheel
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site)]
        + [str(wheel)],
        check=True,
    )
    assert sorted(p.name for p in (site / "en_scored").glob("*.py")) == [
        "__init__.py",
        "entity_confidence.py",
        "spacy_internals.py",
    ]
    out = run_outside_repo(LOAD_SCORED, json.dumps(SENTENCES), cwd=tmp_path, site=site)
    assert out["repo"] == []
    assert out["pipe_names"] == ["transformer", "ner", "textcat"]  # scores off by default
    assert out["off"] == [[] for _ in SENTENCES]
    docs = list(load_scoring(scored_pipeline).pipe(SENTENCES))
    assert out["ents"] == [[list(ent) for ent in ent_tuples(d)] for d in docs]
    for scores, doc in zip(out["scores"], docs):
        assert scores == pytest.approx(entity_scores(doc), abs=1e-6)


def test_scores_bunched_at_one_are_calibrated_without_overshooting():
    """Most scores at 1.0 (the greedy parse is sure) yet 30% wrong: a full Newton step from
    (1, 0) overshoots to an enormous scale that makes every score 1.0 and the log loss worse.
    The fit must lower the log loss and keep the order of the scores."""
    probabilities = [1.0] * 30 + [0.999999] * 5 + [0.97, 0.9, 0.99, 0.6, 0.999, 0.95]
    right = [i % 10 < 7 for i in range(len(probabilities))]
    fit = fit_calibration(right=right, probabilities=probabilities)
    assert fit.log_loss_after < fit.log_loss_before / 2
    assert 0 < fit.scale < 1  # the scores were too sure: they are pulled in, in the same order
    calibrated = [sigmoid(fit.scale * logit(p) + fit.shift) for p in probabilities]
    assert calibrated[0] < 0.9
    assert sorted(range(41), key=lambda i: probabilities[i]) == sorted(
        range(41), key=lambda i: calibrated[i]
    )


def test_a_fit_that_cannot_lower_the_log_loss_keeps_the_scores():
    fit = fit_calibration(right=[True, False], probabilities=[0.5, 0.5])
    assert (fit.scale, fit.shift) == (1.0, 0.0)
    assert fit.log_loss_after == fit.log_loss_before
