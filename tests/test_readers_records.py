"""JSONL records (spaCy, Prodigy, doccano, cats) and the span policies they go through."""

import json

import pytest

from scripts.corpus.readers import DataError
from scripts.corpus.readers.spans import OVERLAP_REASON, SPAN_KEY
from tests.helpers import LINE_ENDS, ents, read, reasons, with_line_ends


def jsonl(*records):
    return "\n".join(json.dumps(r) for r in records)


def test_spacy_entities_and_cats_together():
    (doc,), _ = read(
        jsonl(
            {
                "text": "Who is Shaka Khan?",
                "entities": [[7, 17, "PERSON"]],
                "cats": {"Q": 1.0, "S": 0},
            }
        ),
        "jsonl",
    )
    assert ents(doc) == [("Shaka Khan", "PERSON")]
    assert doc.cats == {"Q": 1.0, "S": 0.0}


def test_cats_only_leaves_entities_missing():
    (doc,), _ = read(jsonl({"text": "add please", "cats": {"DOC": 0.0, "OTHER": 1.0}}), "jsonl")
    assert doc.cats == {"DOC": 0.0, "OTHER": 1.0}
    assert not doc.has_annotation("ENT_IOB")


def test_prodigy_spans_accept_only_and_negatives_kept():
    docs, log = read(
        jsonl(
            {
                "text": "Old Navy",
                "spans": [{"start": 0, "end": 8, "label": "BRAND"}],
                "answer": "accept",
            },
            {"text": "No brand here", "spans": [], "answer": "accept"},
            {
                "text": "Gap",
                "spans": [{"start": 0, "end": 3, "label": "BRAND"}],
                "answer": "reject",
            },
            {"text": "Zara", "spans": [], "answer": "ignore"},
        ),
        "jsonl",
    )
    assert [ents(d) for d in docs] == [[("Old Navy", "BRAND")], []]
    assert docs[1].has_annotation("ENT_IOB")
    assert log.total("dropped") == 2


def test_prodigy_binary_textcat_merges_by_input_hash():
    docs, log = read(
        jsonl(
            {"text": "Add FAQ", "label": "DOCS", "answer": "accept", "_input_hash": 1},
            {"text": "Add FAQ", "label": "BUG", "answer": "reject", "_input_hash": 1},
            {"text": "Crash", "label": "DOCS", "answer": "reject", "_input_hash": 2},
            {"text": "Meh", "label": "DOCS", "answer": "ignore", "_input_hash": 3},
        ),
        "jsonl",
    )
    assert [(d.text, d.cats) for d in docs] == [
        ("Add FAQ", {"DOCS": 1.0, "BUG": 0.0}),
        ("Crash", {"DOCS": 0.0}),
    ]
    assert not docs[0].has_annotation("ENT_IOB")


def test_prodigy_choice():
    (doc,), _ = read(
        jsonl(
            {
                "text": "Nice",
                "options": [{"id": "POS", "text": "POS"}, {"id": "NEG", "text": "NEG"}],
                "accept": ["POS"],
                "answer": "accept",
            }
        ),
        "jsonl",
    )
    assert doc.cats == {"POS": 1.0, "NEG": 0.0}


def test_prodigy_binary_ner_leaves_other_tokens_missing():
    (doc,), _ = read(
        jsonl(
            {
                "text": "Old Navy rocks",
                "spans": [{"start": 0, "end": 8, "label": "B"}],
                "answer": "accept",
                "_view_id": "ner",
            }
        ),
        "jsonl",
    )
    assert [t.ent_iob_ for t in doc] == ["B", "I", ""]


def test_doccano_shapes():
    docs, _ = read(
        jsonl(
            {
                "id": 1,
                "text": "EU rejects German call",
                "label": [[0, 2, "ORG"], [11, 17, "MISC"]],
                "Comments": [],
            },
            {
                "id": 2,
                "text": "EU again",
                "entities": [{"id": 0, "label": "ORG", "start_offset": 0, "end_offset": 2}],
                "relations": [],
            },
            {"id": 3, "text": "Old export", "labels": [[0, 3, "X"]]},
            {"id": 4, "text": "Nothing", "label": []},
        ),
        "jsonl",
    )
    assert [ents(d) for d in docs] == [
        [("EU", "ORG"), ("German", "MISC")],
        [("EU", "ORG")],
        [("Old", "X")],
        [],
    ]


def test_doccano_classification():
    docs, log = read(
        jsonl(
            {"text": "Terrible.", "label": ["negative"]},
            {"text": "Both", "label": ["a", "b"]},
            {"text": "None", "label": []},
        ),
        "jsonl",
    )
    assert [d.cats for d in docs] == [{"negative": 1.0}, {"a": 1.0, "b": 1.0}]
    assert reasons(log) == {"dropped: record has no label": 1}


def test_whitespace_is_trimmed_and_misaligned_spans_follow_the_policy():
    record = jsonl({"text": "EU rejects German call", "label": [[0, 3, "ORG"], [13, 17, "MISC"]]})
    (doc,), log = read(record, "jsonl")
    assert ents(doc) == [("EU", "ORG"), ("German", "MISC")]
    assert set(reasons(log)) == {
        "repaired: span trimmed of surrounding whitespace",
        "repaired: span cuts into a word: expanded to token boundaries",
    }
    assert log.events[("repaired", "span trimmed of surrounding whitespace")].examples == [
        "f:1: 'EU ' (ORG)"
    ]
    (doc,), _ = read(record, "jsonl", misaligned="contract")
    assert ents(doc) == [("EU", "ORG")]
    (doc,), log = read(record, "jsonl", misaligned="drop")
    assert ents(doc) == [("EU", "ORG")]
    assert reasons(log)["dropped: span cuts into a word (--misaligned drop)"] == 1


def test_overlapping_spans_keep_the_longest():
    (doc,), log = read(
        jsonl(
            {
                "text": "New York City",
                "entities": [[0, 8, "GPE"], [0, 13, "GPE"], [4, 13, "LOC"], [0, 13, "GPE"]],
            }
        ),
        "jsonl",
    )
    assert ents(doc) == [("New York City", "GPE")]
    assert [(s.text, s.label_) for s in doc.spans[SPAN_KEY]] == [
        ("New York", "GPE"),
        ("New York City", "GPE"),
        ("York City", "LOC"),
    ]
    assert reasons(log) == {f"kept: {OVERLAP_REASON}": 2, "dropped: duplicate span": 1}


def test_doccano_overlapping_and_conflicting_spans_are_all_kept():
    (doc,), _ = read(
        jsonl(
            {
                "text": "Apple Park opened",
                "label": [[0, 5, "ORG"], [0, 10, "LOC"], [0, 5, "PRODUCT"]],
            }
        ),
        "jsonl",
    )
    assert ents(doc) == [("Apple Park", "LOC")]
    assert [(s.text, s.label_) for s in doc.spans[SPAN_KEY]] == [
        ("Apple", "ORG"),
        ("Apple", "PRODUCT"),
        ("Apple Park", "LOC"),
    ]


def test_prodigy_answers_merged_keep_every_span():
    docs, _ = read(
        jsonl(
            {
                "text": "Old Navy jeans",
                "spans": [{"start": 0, "end": 8, "label": "BRAND"}],
                "answer": "accept",
                "_input_hash": 7,
            },
            {
                "text": "Old Navy jeans",
                "spans": [{"start": 4, "end": 14, "label": "PRODUCT"}],
                "answer": "accept",
                "_input_hash": 7,
            },
        ),
        "jsonl",
    )
    (doc,) = docs
    assert len(doc.spans[SPAN_KEY]) == 2 and len(doc.ents) == 1


def test_spans_without_overlap_are_in_both_and_cats_only_docs_have_no_span_group():
    docs, _ = read(
        jsonl(
            {"text": "EU rejects German call", "label": [[0, 2, "ORG"], [11, 17, "MISC"]]},
            {"text": "add please", "cats": {"DOC": 1.0}},
        ),
        "jsonl",
    )
    assert [(s.text, s.label_) for s in docs[0].spans[SPAN_KEY]] == ents(docs[0])
    assert SPAN_KEY not in docs[1].spans


@pytest.mark.parametrize(
    "line,message",
    [
        ('{"text": "ab", "entities": [[0, 5, "X"]]}', "1: span [0, 5) X is beyond the text"),
        ('{"text": "ab", "entities": [[0, 1]]}', "1: span [0, 1] is not [start, end, label]"),
        ('{"text": "ab", "entities": [[0, 1, ""]]}', "1: span [0, 1) has no label"),
        ('{"text": "ab", "entities": [["0", 1, "X"]]}', "1: span offsets '0', 1 are not integers"),
        ('{"text": "ab", "cats": {"A": 2}}', "1: category 'A' has value 2"),
        ('{"text": "ab" "cats"}', "1: invalid JSON"),
        ('{"tokens": []}', '1: record has no "text" string'),
        ('["ab"]', "1: expected a JSON object"),
    ],
)
def test_malformed_records(line, message):
    with pytest.raises(DataError) as error:
        read(line, "jsonl")
    assert str(error.value).startswith(message)


def test_lenient_skips_bad_records():
    docs, log = read(
        '{"text": "ab", "entities": [[0, 5, "X"]]}\nnot json\n{"text": "ok", "cats": {"A": 1}}',
        "jsonl",
        lenient=True,
    )
    assert [d.text for d in docs] == ["ok"]
    assert log.total("skipped") == 2


def test_json_array_of_records():
    (doc,), _ = read('[\n {"text": "EU", "label": [[0, 2, "ORG"]]}\n]', "json")
    assert ents(doc) == [("EU", "ORG")]


@pytest.mark.parametrize("ends", LINE_ENDS)
def test_every_kind_of_line_end_reads_the_same(ends):
    records = [
        {"text": "EU rejects", "entities": [[0, 2, "ORG"]]},
        {"text": "two\r\nlines", "cats": {"A": 1}},  # escaped in JSON: text, not line ends
    ]
    for fmt, text in (
        ("jsonl", jsonl(*records) + "\n"),
        ("json", json.dumps(records, indent=1) + "\n"),
    ):
        docs, _ = read(with_line_ends(text, ends), fmt)
        assert [(d.text, ents(d), d.cats) for d in docs] == [
            ("EU rejects", [("EU", "ORG")], {}),
            ("two\r\nlines", [], {"A": 1.0}),
        ]


def test_a_carriage_return_between_the_values_of_a_json_line_ends_the_line():
    # Python's open() and srsly.read_jsonl read JSON lines so; the record is refused by its line.
    with pytest.raises(DataError) as error:
        read('{"text": "ok", "cats": {"A": 1}}\n{"text": "a",\r"cats": {"A": 1}}', "jsonl")
    assert str(error.value).startswith("2: invalid JSON (Expecting property name")
