"""Auto-detection picks a reader from a file's first lines and says why; tokenizer parity."""

from pathlib import Path

import pytest
import spacy

from scripts.corpus.readers import READERS, detect_format
from scripts.corpus.readers.spans import tokenizer_for


@pytest.mark.parametrize(
    "name,head,expected",
    [
        ("a.tsv", ["-DOCSTART- -X- O O", "", "EU\tB-ORG", "rejects\tO"], "conll"),
        ("a.bmes", ["吴 B-NAME", "重 M-NAME"], "conll"),
        ("a.iob", ["I|PRP|O like|VBP|O London|NNP|B-GPE"], "iob"),
        ("a.jsonl", ['{"text": "a", "cats": {"A": 1}}'], "jsonl"),
        ("a.json", ["[", '  {"id": 1, "paragraphs": []}', "]"], "spacy-json"),
        ("a.json", ['[["Who is Shaka Khan?", {"entities": [[7, 17, "PERSON"]]}]]'], "train-data"),
        ("a.json", ['[{"id": 1, "data": {"text": "x"}, "annotations": []}]'], "labelstudio"),
        ("a.json", ['[{"text": "x", "label": [[0, 1, "X"]]}]'], "json"),
        ("a.txt", ["__label__pos great"], "fasttext"),
        ("a.txt", ["i didnt feel humiliated;sadness", "im grouchy;anger"], "text-label"),
        ("a.tsv", ["My favourite food\t27\teebbqej", "Now if he\t2,27\ted00q6i"], "tsv"),
        ("a.csv", ["text,label", "Great movie,pos"], "csv"),
        ("a.spacy", [], "spacy"),
    ],
)
def test_detects(name, head, expected):
    found, reason = detect_format(Path(name), head)
    assert found == expected and reason


@pytest.mark.parametrize(
    "head,reason",
    [
        ([], "the file is empty"),
        (['{"label": "BRAND", "pattern": [{"lower": "gap"}]}'], "patterns file"),
        (["# A readme", "Some words here."], "no known format"),
    ],
)
def test_unknown(head, reason):
    found, why = detect_format(Path("x"), head)
    assert found is None and reason in why


def test_registry_names_are_the_format_choices():
    assert {
        "conll",
        "iob",
        "jsonl",
        "labelstudio",
        "spacy-json",
        "train-data",
        "spacy",
        "csv",
        "tsv",
        "text-label",
        "fasttext",
    } <= set(READERS)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_tokenizer_matches_spacy_blank(lang):
    text = "Dr. Smith's café (U.S.) isn't 吴重阳，中国 e-mail: a@b.com"
    assert [t.text for t in tokenizer_for(lang)(text)] == [t.text for t in spacy.blank(lang)(text)]
