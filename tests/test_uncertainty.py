"""scripts/scoring/uncertainty.py: how unsure the pipeline is about a text, by rule, and the Label
Studio task score (1 - uncertainty) that the server and annotate give each prediction."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import spacy

from scripts.common.errors import UserError
from scripts.common.spacy_internals import parse_probabilities
from scripts.inference.predict import (
    LabelConfig,
    describe_pipeline,
    labelstudio_config,
    labelstudio_prediction,
    parse_label_config,
    predict_texts,
)
from scripts.scoring.uncertainty import (
    ENTROPY,
    LEAST_CONFIDENT,
    MARGIN,
    no_entity_probabilities,
    uncertainty,
)
from scripts.training.confidence import add_confidence
from tests.helpers import TEXTS

approx = pytest.approx


def test_one_label_per_text_by_each_rule():
    cats = {"a": 0.6, "b": 0.3, "c": 0.1}
    assert uncertainty(cats, rule=MARGIN) == approx(0.7)  # 1 - (0.6 - 0.3)
    assert uncertainty(cats, rule=LEAST_CONFIDENT) == approx(0.4)
    spread = -sum(p * math.log(p) for p in cats.values()) / math.log(3)
    assert uncertainty(cats, rule=ENTROPY) == approx(spread)
    assert uncertainty({"a": 0.5, "b": 0.5}) == approx(1.0)
    assert uncertainty({"a": 1.0, "b": 0.0}) == approx(0.0)


def test_several_labels_per_text_count_the_label_nearest_its_threshold():
    cats = {"a": 0.9, "b": 0.45, "c": 0.0}
    # a: 0.8 of the way from 0.5 to 1; b: 0.1 of the way from 0.5 to 0; c: all the way.
    assert uncertainty(cats, exclusive=False, threshold=0.5) == approx(0.9)
    # Threshold 0.2: b is (0.45 - 0.2) / 0.8 of the way up, a 0.875.
    assert uncertainty(cats, exclusive=False, threshold=0.2) == approx(1 - 0.25 / 0.8)
    assert uncertainty(cats, exclusive=False, rule=ENTROPY) == approx(
        -(0.45 * math.log2(0.45) + 0.55 * math.log2(0.55))
    )


def test_entities_count_their_lowest_score_or_the_parse_without_any():
    assert uncertainty({}, entity_scores=[0.98, 0.4]) == approx(0.6)
    assert uncertainty({}, entity_scores=[], parse_probability=0.9) == approx(0.1)
    assert uncertainty({}, entity_scores=[0.7], parse_probability=0.01) == approx(0.3)
    assert uncertainty({}, entity_scores=[0.5], rule=ENTROPY) == approx(1.0)
    assert uncertainty({}, entity_scores=[]) is None
    assert uncertainty({}) is None


def test_both_take_the_least_sure_decision():
    cats = {"a": 0.9, "b": 0.1}  # margin 0.8: uncertainty 0.2
    assert uncertainty(cats, entity_scores=[0.7]) == approx(0.3)
    assert uncertainty(cats, entity_scores=[0.95]) == approx(0.2)
    assert uncertainty(cats, entity_scores=[], parse_probability=0.6) == approx(0.4)


def test_an_unknown_rule_is_one_line_naming_the_rules(tiny_pipeline):
    with pytest.raises(ValueError, match="one of margin, entropy, least-confident"):
        uncertainty({"a": 1.0}, rule="variance")
    with pytest.raises(UserError, match="--uncertainty 'variance' is not a rule"):
        describe_pipeline(spacy.load(tiny_pipeline), uncertainty="variance")


@pytest.fixture(scope="module")
def scored(tiny_pipeline: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("scored") / "model"
    add_confidence(model_dir=tiny_pipeline, output_dir=out)
    return out


def test_label_studio_task_scores_rank_texts_without_entities_by_their_parse(scored):
    nlp = spacy.load(scored)
    nlp.enable_pipe("entity_confidence")
    predictor = describe_pipeline(nlp)
    texts = [*TEXTS, "nothing to see here", "thanks"]
    plain = predict_texts(predictor, texts)
    records = predict_texts(predictor, texts, parse_scores=True)
    assert all("parse_score" not in record for record in plain)
    docs = list(nlp.pipe([text for text in texts if text]))
    without = [doc for doc in docs if not doc.ents]
    assert without and len(without) < len(docs), "the test needs texts with and without entities"
    expected = iter(parse_probabilities(nlp.get_pipe("ner"), without))
    for text, record, bare in zip(texts, records, plain):
        assert {k: v for k, v in record.items() if k != "parse_score"} == bare
        if text and not record["entities"]:
            assert record["parse_score"] == approx(next(expected), abs=1e-6)
            assert 0.0 < record["parse_score"] <= 1.0
            task = labelstudio_prediction(record, predictor=predictor, config=LabelConfig())
            first, second = sorted(record["cats"].values(), reverse=True)[:2]
            least = min(first - second, record["parse_score"])
            assert task["score"] == approx(least, abs=1e-5)
        else:
            assert "parse_score" not in record
    assert no_entity_probabilities(spacy.load(scored), docs) == [None] * len(docs)  # scores off


def test_the_task_score_counts_only_what_the_project_labels(predictor):
    record = {
        "entities": [{"start": 0, "end": 6, "label": "SKILL", "text": "Python", "score": 0.3}],
        "cats": {"requirements": 0.9, "responsibilities": 0.05, "benefits": 0.05},
    }
    both = parse_label_config(labelstudio_config(predictor))
    only_cats = parse_label_config(
        '<View><Text name="text" value="$text"/><Choices name="section" toName="text">'
        '<Choice value="requirements"/></Choices></View>'
    )
    only_ents = parse_label_config(
        '<View><Labels name="label" toName="text"><Label value="SKILL"/></Labels>'
        '<Text name="text" value="$text"/></View>'
    )

    def score(record, config):
        return labelstudio_prediction(record, predictor=predictor, config=config)["score"]

    assert score(record, both) == approx(0.3)  # the entity is the least sure decision
    assert score(record, only_cats) == approx(0.85)  # margin 0.9 - 0.05
    assert score(record, only_ents) == approx(0.3)
    empty = {"entities": [], "cats": record["cats"], "parse_score": 0.2}
    assert score(empty, both) == approx(0.2) and score(empty, only_cats) == approx(0.85)
    assert score({**empty, "cats": {}}, only_ents) == approx(0.2)
