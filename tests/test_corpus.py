"""Corpus: cutting long runs, completing categories, splitting, writing DocBins atomically and
deterministically."""

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from spacy.tokens import Doc, DocBin
from spacy.vocab import Vocab

from scripts import corpus
from scripts.corpus.docbins import DocBinWriter, complete_cats, write_docbin
from scripts.corpus.segment import cut_points
from scripts.corpus.split import SplitError, assign_splits, split_sizes, stratum
from scripts.corpus.stats import textcat_mode

ROOT = Path(__file__).resolve().parents[1]


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
    assert out.read_bytes() == DocBin(docs=expected).to_bytes()
    ner, textcat, both = DocBin().from_disk(out).get_docs(Vocab())
    assert ner.has_annotation("ENT_IOB") and ner.cats == {}
    assert not textcat.has_annotation("ENT_IOB") and textcat.cats == {"neg": 0.0, "pos": 1.0}
    assert [e.text for e in both.ents] == ["Paris"] and both.cats == {"neg": 1.0, "pos": 0.0}
    assert [s.text for s in ner.sents] == ["EU rejects it."]


def test_same_bytes_leave_the_target_untouched(tmp_path):
    out = tmp_path / "out.spacy"
    write_docbin(docs(), out)
    os.utime(out, (1, 1))
    assert not write_docbin(docs(), out)
    assert out.stat().st_mtime == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.spacy"]


def test_failure_mid_write_leaves_nothing(tmp_path, monkeypatch):
    out = tmp_path / "out.spacy"

    def broken(self, labels):
        yield b"\x89"
        raise OSError("disk full")

    monkeypatch.setattr(DocBinWriter, "_msgpack_chunks", broken)
    with pytest.raises(OSError):
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
import sys; sys.modules["torch"] = None
from pathlib import Path
from spacy.tokens import Doc
from spacy.vocab import Vocab
from scripts.corpus.docbins import write_docbin
vocab = Vocab()
docs = [Doc(vocab, words=[f"w{i}{j}" for j in range(30)], ents=["B-L%d" % (i %% 7)] + ["O"] * 29) for i in range(50)]
for i, doc in enumerate(docs):
    doc.cats = {f"c{i %% 5}": 1.0}
write_docbin(docs, Path(sys.argv[1]))
"""


def test_bytes_identical_across_hash_seeds(tmp_path):
    outputs = []
    for seed in ("1", "2"):
        out = tmp_path / f"{seed}.spacy"
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run(
            [sys.executable, "-c", CHILD.replace("%%", "%"), str(out)],
            cwd=ROOT,
            env=env,
            check=True,
        )
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]


def test_constants_keep_batches_bounded():
    assert corpus.MAX_SENTENCE_TOKENS < corpus.MAX_DOC_TOKENS <= 2000
