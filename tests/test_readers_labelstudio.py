"""Label Studio full JSON and JSON_MIN exports."""

import json

from scripts.corpus.readers.spans import OVERLAP_REASON, SPAN_KEY
from tests.helpers import ents, read, reasons


def task(data, *annotations, **extra):
    return {"id": 1, "data": data, "annotations": list(annotations), "predictions": [], **extra}


def ann(*results, **extra):
    return {
        "id": 9,
        "was_cancelled": False,
        "ground_truth": False,
        "created_at": "2024-01-01",
        "result": list(results),
        **extra,
    }


def span(start, end, label, text=None, to_name="text"):
    value = {"start": start, "end": end, "labels": [label]}
    if text is not None:
        value["text"] = text
    return {"from_name": "label", "to_name": to_name, "type": "labels", "value": value}


def choice(*choices):
    return {
        "from_name": "sentiment",
        "to_name": "text",
        "type": "choices",
        "value": {"choices": list(choices)},
    }


RELATION = {"type": "relation", "from_id": "a", "to_id": "b", "labels": []}


def test_spans_choices_and_relations():
    data = [
        task(
            {"text": "Sundar Pichai is the CEO of Google."},
            ann(
                span(0, 13, "PERSON", "Sundar Pichai"),
                span(28, 34, "ORG"),
                choice("Neutral"),
                RELATION,
            ),
        )
    ]
    (doc,), log = read(json.dumps(data, indent=2), "labelstudio")
    assert ents(doc) == [("Sundar Pichai", "PERSON"), ("Google", "ORG")]
    assert doc.cats == {"Neutral": 1.0}
    assert log.notes == ["f: Label Studio result types ignored: relation 1"]


def test_text_key_from_to_name_or_the_only_string():
    data = [
        task({"review": "Great film", "url": "http://x"}, ann(span(0, 5, "A", to_name="review"))),
        task({"body": "Bad film", "n": 3}, ann(choice("Negative"))),
    ]
    docs, _ = read(json.dumps(data), "labelstudio")
    assert [d.text for d in docs] == ["Great film", "Bad film"]
    assert docs[1].has_annotation(
        "ENT_IOB"
    )  # the file has spans: tasks without spans have no entities


def test_annotation_choice_ground_truth_then_latest_and_cancelled_skipped():
    data = [
        task(
            {"text": "a b"},
            ann(choice("X"), created_at="2024-03"),
            ann(choice("Y"), ground_truth=True, created_at="2024-01"),
        ),
        task(
            {"text": "c d"},
            ann(choice("X"), created_at="2024-01"),
            ann(choice("Y"), created_at="2024-02"),
            ann(choice("Z"), was_cancelled=True, created_at="2024-09"),
        ),
        task({"text": "e f"}, ann(choice("X"), was_cancelled=True)),
    ]
    docs, log = read(json.dumps(data), "labelstudio")
    assert [d.cats for d in docs] == [{"Y": 1.0}, {"Y": 1.0}]
    assert reasons(log) == {
        "dropped: other annotation of a task (ground truth, else the latest, kept)": 2,
        "dropped: cancelled annotation skipped": 2,
        "dropped: task without a usable annotation (predictions are not used)": 1,
    }


def test_legacy_completions():
    data = [{"data": {"text": "Paris"}, "completions": [ann(span(0, 5, "LOC"))]}]
    (doc,), _ = read(json.dumps(data), "labelstudio")
    assert ents(doc) == [("Paris", "LOC")]


def test_utf16_offsets_after_emoji_are_converted():
    data = [task({"text": "😀 Paris"}, ann(span(3, 8, "LOC", "Paris")))]
    (doc,), log = read(json.dumps(data), "labelstudio")
    assert ents(doc) == [("Paris", "LOC")]
    assert log.total("repaired") == 1


def test_overlapping_spans_all_kept_in_doc_spans_the_longest_as_entity():
    data = [
        task(
            {"text": "New York City mayor"},
            ann(span(0, 8, "GPE"), span(0, 13, "GPE"), span(9, 19, "ROLE"), span(14, 19, "ROLE")),
        )
    ]
    (doc,), log = read(json.dumps(data), "labelstudio")
    assert ents(doc) == [("New York City", "GPE"), ("mayor", "ROLE")]
    assert [(s.text, s.label_) for s in doc.spans[SPAN_KEY]] == [
        ("New York", "GPE"),
        ("New York City", "GPE"),
        ("City mayor", "ROLE"),
        ("mayor", "ROLE"),
    ]
    assert reasons(log) == {f"kept: {OVERLAP_REASON}": 2}
    assert log.total("dropped") == 0


def test_json_min():
    data = [
        {
            "id": 3,
            "text": "Sundar Pichai is CEO",
            "label": [{"start": 0, "end": 13, "text": "Sundar Pichai", "labels": ["PERSON"]}],
            "sentiment": "Neutral",
            "annotator": 1,
        }
    ]
    (doc,), _ = read(json.dumps(data), "labelstudio")
    assert ents(doc) == [("Sundar Pichai", "PERSON")]
    assert doc.cats == {"Neutral": 1.0}


def test_invalid_json_names_the_line():
    import pytest

    from scripts.corpus.readers import DataError

    with pytest.raises(DataError, match=r"^3: invalid JSON"):
        read('[\n {"data": {"text": "a"}, "annotations": []},\n {"data": }\n]', "labelstudio")
