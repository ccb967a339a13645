"""spaCy v2 JSON, TRAIN_DATA and .spacy pass-through."""

import json

import pytest
from spacy.tokens import Doc, DocBin
from spacy.vocab import Vocab

from scripts.corpus.readers import READERS, DataError, Log, ReadOptions
from scripts.corpus.readers.spans import SPAN_KEY
from tests.helpers import ents, read


def v2(tokens_per_sentence, raw=None, cats=None):
    paragraph = {
        "sentences": [
            {"tokens": [{"id": i, "orth": o, "ner": n} for i, (o, n) in enumerate(s)]}
            for s in tokens_per_sentence
        ]
    }
    if raw is not None:
        paragraph["raw"] = raw
    if cats is not None:
        paragraph["cats"] = cats
    return json.dumps([{"id": 0, "paragraphs": [paragraph]}], indent=1)


def test_v2_json_biluo_sentences_and_raw_spaces():
    text = v2(
        [[("Chicago", "U-GPE"), ("'s", "O")], [("Oct.", "B-DATE"), ("19", "L-DATE")]],
        raw="Chicago's Oct. 19",
    )
    (doc,), log = read(text, "spacy-json")
    assert doc.text == "Chicago's Oct. 19"
    assert ents(doc) == [("Chicago", "GPE"), ("Oct. 19", "DATE")]
    assert [s.text for s in doc.sents] == ["Chicago's", "Oct. 19"]
    assert "BILUO" in log.notes[0]


def test_v2_json_without_ner_is_missing_and_cats_kept():
    (doc,), _ = read(
        v2([[("a", "-"), ("b", "-")]], cats=[{"label": "X", "value": 1.0}]), "spacy-json"
    )
    assert not doc.has_annotation("ENT_IOB")
    assert doc.cats == {"X": 1.0}


def test_train_data():
    (doc,), _ = read(
        json.dumps([["Who is Shaka Khan?", {"entities": [[7, 17, "PERSON"]]}]]), "train-data"
    )
    assert ents(doc) == [("Shaka Khan", "PERSON")]
    with pytest.raises(DataError, match=r"^1: element is not \[text"):
        read('[["only text"]]', "train-data")


def test_train_data_overlapping_entities_are_kept_in_doc_spans():
    (doc,), _ = read(
        json.dumps([["Bank of England staff", {"entities": [[0, 15, "ORG"], [8, 15, "GPE"]]}]]),
        "train-data",
    )
    assert ents(doc) == [("Bank of England", "ORG")]
    assert [(s.text, s.label_) for s in doc.spans[SPAN_KEY]] == [
        ("Bank of England", "ORG"),
        ("England", "GPE"),
    ]


def test_docbin_pass_through_keeps_missing_annotation():
    vocab = Vocab()
    ner = Doc(vocab, words=["a", "b"], ents=["B-X", "O"])
    textcat = Doc(vocab, words=["c"])
    textcat.cats = {"A": 1.0}
    data = DocBin(docs=[ner, textcat]).to_bytes()
    docs = list(READERS["spacy"].read(data, options=ReadOptions(), log=Log()))
    assert ents(docs[0]) == [("a", "X")] and docs[1].cats == {"A": 1.0}
    assert not docs[1].has_annotation("ENT_IOB")
    with pytest.raises(DataError, match="^1: not a readable .spacy file"):
        list(READERS["spacy"].read(b"junk", options=ReadOptions(), log=Log()))
