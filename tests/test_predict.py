"""scripts.inference.predict: texts to records, Label Studio results, input files."""

from __future__ import annotations

import json

import pytest
import spacy

from scripts.common.errors import UserError
from scripts.inference.predict import (
    LabelConfig,
    describe_pipeline,
    labelstudio_config,
    labelstudio_prediction,
    load_predictor,
    parse_label_config,
    predict_texts,
    predicted_labels,
    read_records,
)
from tests.helpers import TEXTS


def test_records_have_offsets_that_slice_the_text_and_a_score_per_label(predictor):
    records = predict_texts(predictor, TEXTS)
    assert len(records) == len(TEXTS)
    assert any(record["entities"] for record in records), "the tiny pipeline should find some SKILL"
    for text, record in zip(TEXTS, records):
        assert set(record) == {"entities", "cats"}
        for ent in record["entities"]:
            assert text[ent["start"] : ent["end"]] == ent["text"] and ent["label"] == "SKILL"
        assert set(record["cats"]) == {"requirements", "responsibilities", "benefits"}
        assert all(isinstance(v, float) and 0 <= v <= 1 for v in record["cats"].values())
    json.dumps(records)  # plain JSON types only


def test_batch_size_does_not_change_the_records(predictor):
    assert predict_texts(predictor, TEXTS, batch_size=1) == predict_texts(
        predictor, TEXTS, batch_size=64
    )


def test_describe_pipeline_finds_labels_and_mode(predictor):
    assert predictor.ent_labels == ("SKILL",)
    assert set(predictor.cat_labels) == {"requirements", "responsibilities", "benefits"}
    assert predictor.exclusive and predictor.version == "en_tiny-0.0.1"


def test_missing_model_is_one_clear_error(tmp_path):
    with pytest.raises(UserError, match="neither a directory nor an installed spaCy package"):
        load_predictor(str(tmp_path / "nope"))


def test_labelstudio_prediction_uses_the_config_names_and_filters_unknown_labels(predictor):
    record = {
        "entities": [
            {"start": 0, "end": 6, "label": "SKILL", "text": "Python"},
            {"start": 11, "end": 14, "label": "TOOL", "text": "SQL"},
        ],
        "cats": {"requirements": 0.9, "benefits": 0.1},
    }
    config = parse_label_config(
        '<View><Labels name="ner" toName="body"><Label value="SKILL"/></Labels>'
        '<Text name="body" value="$content"/><Choices name="section" toName="body">'
        '<Choice value="requirements"/></Choices></View>'
    )
    assert config.text_field == "content"
    prediction = labelstudio_prediction(record, predictor=predictor, config=config)
    # The task score: 1 - the margin rule's uncertainty, 1 - (0.9 - 0.1); the entities are unscored.
    assert prediction["model_version"] == "en_tiny-0.0.1" and prediction["score"] == 0.8
    labels, choices = prediction["result"]
    assert (
        labels["from_name"] == "ner" and labels["to_name"] == "body" and labels["type"] == "labels"
    )
    assert labels["value"] == {"start": 0, "end": 6, "text": "Python", "labels": ["SKILL"]}
    assert choices["from_name"] == "section" and choices["value"] == {"choices": ["requirements"]}


def test_labelstudio_config_round_trips_through_the_parser(predictor):
    config = parse_label_config(labelstudio_config(predictor))
    assert config == LabelConfig(
        ner_labels=frozenset({"SKILL"}), cat_labels=frozenset(predictor.cat_labels)
    )


def test_bad_labeling_config_is_a_user_error():
    with pytest.raises(UserError, match="not valid XML"):
        parse_label_config("<View><Text")
    with pytest.raises(UserError, match="no <Text"):
        parse_label_config("<View></View>")


def test_multilabel_decisions():
    cats = {"a": 0.7, "b": 0.2, "c": 0.55}
    assert predicted_labels(cats, exclusive=False, threshold=0.5) == ["a", "c"]
    assert predicted_labels(cats, exclusive=True, threshold=0.5) == ["a"]


def test_read_records_from_jsonl_csv_and_text(tmp_path):
    (tmp_path / "a.jsonl").write_text(
        '{"id": 1, "text": "x"}\n\n{"id": 2, "text": "y", "meta": {"k": 1}}\n', encoding="utf8"
    )
    assert list(read_records(tmp_path / "a.jsonl")) == [
        {"id": 1, "text": "x"},
        {"id": 2, "text": "y", "meta": {"k": 1}},
    ]
    (tmp_path / "a.csv").write_text('id,body\n1,"Hello, world"\n2,"multi\nline"\n', encoding="utf8")
    assert list(read_records(tmp_path / "a.csv", text_field="body")) == [
        {"id": "1", "body": "Hello, world"},
        {"id": "2", "body": "multi\nline"},
    ]
    (tmp_path / "a.txt").write_text("one\n\ntwo\r\n", encoding="utf8")
    assert list(read_records(tmp_path / "a.txt")) == [{"text": "one"}, {"text": "two"}]
    (tmp_path / "a.json").write_text('[{"text": "z"}]', encoding="utf8")
    assert list(read_records(tmp_path / "a.json")) == [{"text": "z"}]


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("bad.jsonl", '{"text": "ok"}\n{"text": \n', r"bad.jsonl:2: not valid JSON"),
        (
            "notext.jsonl",
            '{"body": "x"}\n',
            r"notext.jsonl:1: the record has no string field 'text'",
        ),
        ("nocol.csv", "id,body\n1,x\n", r"no 'text' column \(columns: id, body\)"),
        ("obj.json", '{"text": "x"}', r"not an array of records"),
    ],
)
def test_bad_inputs_name_the_file_and_line(tmp_path, name, content, message):
    (tmp_path / name).write_text(content, encoding="utf8")
    with pytest.raises(UserError, match=message):
        list(read_records(tmp_path / name))


def test_describe_pipeline_on_a_multilabel_pipeline():
    nlp = spacy.blank("en")
    textcat = nlp.add_pipe("textcat_multilabel", config={"threshold": 0.3})
    textcat.add_label("x")
    predictor = describe_pipeline(nlp)
    assert not predictor.exclusive and predictor.threshold == 0.3 and predictor.ent_labels == ()
