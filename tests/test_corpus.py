"""Corpus: cutting long runs, completing categories, splitting, writing DocBins atomically and
deterministically, telling repeated texts apart."""

import os
import subprocess
import sys
from collections import Counter

import pytest
from spacy.tokens import Doc, DocBin, Span
from spacy.vocab import Vocab

from scripts.common import files
from scripts.corpus import docbins
from scripts.corpus.docbins import READER_ATTRS, DocStore, complete_cats, write_docbin
from scripts.corpus.repeats import RepeatedTexts
from scripts.corpus.segment import MAX_DOC_TOKENS, MAX_SENTENCE_TOKENS, cut_points
from scripts.corpus.split import SplitError, assign_splits, split_sizes, stratum
from scripts.corpus.stats import summarize, textcat_mode
from tests.helpers import PROJECT_ROOT


def docs():
    vocab = Vocab()
    ner = Doc(
        vocab,
        words=["EU", "rejects", "it", "."],
        spaces=[True, True, False, False],
        sent_starts=[True, False, False, False],
        ents=["B-ORG", "O", "O", "O"],
    )
    textcat = Doc(vocab, words=["Great", "film"])
    textcat.cats = {"pos": 1.0}
    both = Doc(vocab, words=["Paris", "is", "fine"], ents=["B-LOC", "O", "O"])
    both.cats = {"neg": 1.0}
    return [ner, textcat, both]


def test_cut_points_prefer_sentence_ends_and_never_split_entities():
    words = ["w"] * 10 + ["."] + ["w"] * 9
    assert cut_points(words, ["O"] * 20, max_tokens=15) == [11]
    tags = ["O"] * 6 + ["B-X"] + ["I-X"] * 8 + ["O"] * 5
    assert cut_points(["w"] * 20, tags, max_tokens=10) == [6, 16]
    assert cut_points(["w"] * 5, ["O"] * 5, max_tokens=10) == []


def test_complete_cats_and_the_one_label_rule():
    assert complete_cats({"b": 1.0}, ["a", "b", "c"]) == {"a": 0.0, "b": 1.0, "c": 0.0}
    assert complete_cats({"pos": 0.0}, ["pos"]) == {"pos": 0.0, "NOT_pos": 1.0}
    assert complete_cats({}, ["a", "b"]) == {}


def test_textcat_mode():
    assert textcat_mode(["a", "b"], Counter({1: 5})) == "exclusive"
    assert textcat_mode(["a", "b"], Counter({1: 5, 2: 1})) == "multilabel"
    assert textcat_mode(["a"], Counter({1: 2, 0: 3})) == "exclusive"
    assert textcat_mode([], Counter()) == "none"


def test_split_sizes():
    assert split_sizes(100, (0.8, 0.1, 0.1)) == (80, 10, 10)
    assert split_sizes(5, (0.8, 0.1, 0.1)) == (3, 1, 1)
    assert split_sizes(10, (1.0, 0.0, 0.0)) == (10, 0, 0)
    with pytest.raises(SplitError):
        split_sizes(2, (0.8, 0.1, 0.1))


def test_split_is_deterministic_and_stratified():
    keys = ["a"] * 80 + ["b"] * 20
    first = assign_splits(keys, sizes=(80, 10, 10), seed=0)
    assert first == assign_splits(keys, sizes=(80, 10, 10), seed=0)
    assert first != assign_splits(keys, sizes=(80, 10, 10), seed=1)
    assert Counter(first) == {0: 80, 1: 10, 2: 10}
    dev_keys = Counter(k for k, s in zip(keys, first) if s == 1)
    assert dev_keys == {"a": 8, "b": 2}


def test_stratum_is_the_rarest_positive_label():
    frequency = Counter({"neutral": 100, "grief": 2})
    assert stratum({"neutral": 1.0, "grief": 1.0, "joy": 0.0}, frequency) == "grief"
    assert stratum({}, frequency) == ""


def test_writer_matches_docbin_and_keeps_missing_annotation(tmp_path):
    out = tmp_path / "out.spacy"
    assert write_docbin(docs(), out, labels=["neg", "pos"])
    expected = [d for d in docs()]
    for doc in expected:
        if doc.cats:
            doc.cats = complete_cats(doc.cats, ["neg", "pos"])
    assert out.read_bytes() == DocBin(attrs=READER_ATTRS, docs=expected).to_bytes()
    ner, textcat, both = DocBin().from_disk(out).get_docs(Vocab())
    assert ner.has_annotation("ENT_IOB") and ner.cats == {}
    assert not textcat.has_annotation("ENT_IOB") and textcat.cats == {"neg": 0.0, "pos": 1.0}
    assert [e.text for e in both.ents] == ["Paris"] and both.cats == {"neg": 1.0, "pos": 0.0}
    assert [s.text for s in ner.sents] == ["EU rejects it."]


def test_completing_categories_keeps_every_other_annotation(tmp_path):
    vocab = Vocab()
    parsed = Doc(
        vocab,
        words=["Alice", "saw", "Bob", "."],
        spaces=[True, True, False, False],
        tags=["NNP", "VBD", "NNP", "."],
        pos=["PROPN", "VERB", "PROPN", "PUNCT"],
        morphs=["Number=Sing", "Tense=Past", "Number=Sing", ""],
        lemmas=["Alice", "see", "Bob", "."],
        heads=[1, 1, 1, 1],
        deps=["nsubj", "ROOT", "dobj", "punct"],
        ents=["B-PER", "O", "B-PER", "O"],
    )
    parsed.spans["sc"] = [parsed[0:1], parsed[0:3]]
    parsed.cats = {"b": 1}  # an int, and only one of the labels
    out = tmp_path / "out.spacy"
    write_docbin([parsed], out, labels=["a", "b"])
    parsed.cats = {"a": 0.0, "b": 1.0}
    assert out.read_bytes() == DocBin(docs=[parsed]).to_bytes()


def test_docs_without_categories_between_docs_with_them_keep_their_order(tmp_path):
    vocab = Vocab()
    texts = ["one", "two", "three", "four", "five"]
    batch = [Doc(vocab, words=[text], spaces=[False]) for text in texts]
    batch[1].cats = {"x": 1.0}
    batch[3].cats = {"y": 1.0}
    store = DocStore()
    for doc in batch:
        store.add(doc)
    assert len(store) == 5 and store.labels == {"x", "y"}
    read = list(DocBin().from_bytes(store.pop_bytes()).get_docs(Vocab()))
    assert len(store) == 0
    assert [d.text for d in read] == texts
    assert [d.cats for d in read] == [{}, {"x": 1.0, "y": 0.0}, {}, {"x": 0.0, "y": 1.0}, {}]


def test_span_groups_survive_the_store_and_category_completion():
    vocab = Vocab()
    doc = Doc(
        vocab, words=["Bank", "of", "England", "staff"], ents=["B-ORG", "I-ORG", "I-ORG", "O"]
    )
    doc.spans["sc"] = [Span(doc, 0, 3, "ORG"), Span(doc, 2, 3, "GPE")]
    doc.cats = {"b": 1.0}
    store = DocStore(vocab)
    store.add(doc)
    store.add(Doc(vocab, words=["plain"]))
    (read, plain) = DocBin().from_bytes(store.pop_bytes(labels=["a", "b"])).get_docs(Vocab())
    assert [(s.text, s.label_) for s in read.spans["sc"]] == [
        ("Bank of England", "ORG"),
        ("England", "GPE"),
    ]
    assert read.cats == {"a": 0.0, "b": 1.0} and "sc" not in plain.spans
    store.add(doc)
    (again,) = store.pop_docs()
    assert [s.text for s in again.spans["sc"]] == ["Bank of England", "England"]


def test_a_parsed_doc_makes_the_file_keep_every_attribute(tmp_path):
    vocab = Vocab()
    parsed = Doc(vocab, words=["Bob", "left"], tags=["NNP", "VBD"], lemmas=["Bob", "leave"])
    out = tmp_path / "out.spacy"
    write_docbin([*docs(), parsed], out, labels=["neg", "pos"])
    expected = [*docs(), parsed]
    for doc in expected:
        doc.cats = complete_cats(doc.cats, ["neg", "pos"])
    assert out.read_bytes() == DocBin(docs=expected).to_bytes()
    assert [t.lemma_ for t in list(DocBin().from_disk(out).get_docs(Vocab()))[-1]] == [
        "Bob",
        "leave",
    ]


def test_bytes_do_not_depend_on_how_the_store_cuts_its_docbins(monkeypatch):
    def store() -> DocStore:
        docs_in = DocStore()
        for doc in docs() * 3:
            docs_in.add(doc)
        return docs_in

    whole = store().pop_bytes()
    monkeypatch.setattr(docbins, "RUN_TOKENS", 2)
    assert store().pop_bytes() == whole
    cut = store()
    assert [(d.text, d.cats) for d in cut.pop_docs()] == [(d.text, d.cats) for d in docs() * 3]
    assert len(cut) == 0


def test_same_bytes_leave_the_target_untouched(tmp_path):
    out = tmp_path / "out.spacy"
    write_docbin(docs(), out)
    os.utime(out, (1, 1))
    assert not write_docbin(docs(), out)
    assert out.stat().st_mtime == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.spacy"]


def test_failure_mid_write_leaves_nothing(tmp_path, monkeypatch):
    out = tmp_path / "out.spacy"

    def broken(source, target):
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        write_docbin(docs(), out)
    assert list(tmp_path.iterdir()) == []


def test_failure_while_reading_docs_leaves_nothing(tmp_path):
    def failing():
        yield from docs()
        raise ValueError("reader broke")

    with pytest.raises(ValueError):
        write_docbin(failing(), tmp_path / "out.spacy")
    assert list(tmp_path.iterdir()) == []


CHILD = """
import sys
from pathlib import Path
from spacy.tokens import Doc
from spacy.vocab import Vocab
from scripts.corpus.docbins import write_docbin
vocab = Vocab()
docs = [
    Doc(vocab, words=[f"w{i}{j}" for j in range(30)], ents=[f"B-L{i % 7}"] + ["O"] * 29)
    for i in range(50)
]
for i, doc in enumerate(docs):
    doc.cats = {f"c{i % 5}": 1.0}
write_docbin(docs, Path(sys.argv[1]))
"""


@pytest.mark.slow
def test_bytes_identical_across_hash_seeds(tmp_path):
    outputs = []
    for seed in ("1", "2"):
        out = tmp_path / f"{seed}.spacy"
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run(
            [sys.executable, "-c", CHILD, str(out)],
            cwd=PROJECT_ROOT,
            env=env,
            check=True,
        )
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]


def test_constants_keep_batches_bounded():
    assert MAX_SENTENCE_TOKENS < MAX_DOC_TOKENS <= 2000


def test_repeats_conflict_only_where_both_sides_have_that_kind_of_label():
    vocab = Vocab()
    words = ["Peter", "met", "Anna"]

    def doc(ents=None, cats=None):
        made = Doc(vocab, words=words, ents=ents)
        made.cats = cats or {}
        return made

    repeats = RepeatedTexts()
    for number, made in enumerate(
        [
            doc(["B-PER", "O", "O"], {"A": 1.0, "B": 0.0}),
            doc(cats={"A": 1.0}),  # the same positive category; no NER annotation to disagree
            doc(["B-PER", "O", "B-PER"]),  # one entity more: a conflict
            doc(["B-PER", "O", "O"], {"B": 1.0}),  # another category: a conflict
            doc(),
        ],
        1,
    ):
        repeats.place(made, summarize(made), where=("f.jsonl", number), output="all")
    report = repeats.report()
    assert (report["texts"], report["in_several_outputs"], report["conflicts"]) == (4, 0, 2)
    assert [
        (example["conflict"], [(side["doc"], side["labels"]) for side in example["occurrences"]])
        for example in report["examples"]
    ] == [
        (
            True,
            [
                (1, "some of the other's entities; categories A"),
                (3, "entities the other lacks 'Anna' PER"),
            ],
        ),
        (
            True,
            [(1, "entities 'Peter' PER; categories A"), (4, "entities 'Peter' PER; categories B")],
        ),
        (False, [(1, "entities 'Peter' PER; categories A"), (2, "categories A")]),
        (False, [(1, "entities 'Peter' PER; categories A"), (5, "no labels")]),
    ]


def test_repeats_keep_pairs_split_between_outputs_before_pairs_within_one():
    vocab = Vocab()
    repeats = RepeatedTexts()
    placed = [(f"text {i}", "pos", "train") for i in range(4)]
    placed += [(f"text {i}", "neg", "train") for i in range(4)]  # four conflicts within train
    placed += [("text 0", "neu", "test")]  # and one across train and test
    for number, (text, label, output) in enumerate(placed, 1):
        doc = Doc(vocab, words=text.split())
        doc.cats = {label: 1.0}
        repeats.place(doc, summarize(doc), where=("f.csv", number), output=output)
    report = repeats.report()
    assert (report["texts"], report["in_several_outputs"], report["conflicts"]) == (5, 1, 5)
    assert [
        [(side["doc"], side["output"]) for side in example["occurrences"]]
        for example in report["examples"]
    ] == [[(1, "train"), (9, "test")], [(2, "train"), (6, "train")], [(3, "train"), (7, "train")]]
