"""scripts.peer_hf_trainer: chunking and IOB decoding, and one-epoch runs on a tiny local BERT."""

import json
from pathlib import Path

import numpy as np
import pytest
import spacy
from spacy.tokens import Doc, DocBin
from typer.testing import CliRunner

from scripts.bench.peer_hf_trainer import (
    IGNORED,
    chunk_words,
    decode_iob,
    encode_cats,
    encode_ner,
    peer_train,
)
from scripts.peer_hf_trainer import app
from tests.helpers import needs_extra

# The Hugging Face Trainer needs accelerate, which the runtime does not install.
needs_peer = needs_extra("peer", "accelerate")

NLP = spacy.blank("en")
RESULT_KEYS = {
    "peer",
    "components",
    "base_model",
    "epochs",
    "train_words",
    "train_seconds",
    "train_words_per_second",
    "wall_seconds",
}


def ner_doc(words: list[str], tags: list[str] | None) -> Doc:
    return Doc(NLP.vocab, words=words, ents=tags)


def cats_doc(text: str, cats: dict) -> Doc:
    doc = NLP.make_doc(text)
    doc.cats = cats
    return doc


def write_corpus(path: Path, splits: dict) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name, docs in splits.items():
        DocBin(docs=docs, store_user_data=True).to_disk(path / f"{name}.spacy")
    return path


def ner_corpus(path: Path) -> Path:
    alice = ner_doc(
        ["Alice", "works", "at", "Acme", "Corp", "."], ["B-PER", "O", "O", "B-ORG", "I-ORG", "O"]
    )
    bob = ner_doc(["Bob", "visited", "Rome", "today"], ["B-PER", "O", "B-LOC", "O"])
    plain = ner_doc(["no", "annotation", "here"], None)
    long_words = ["word"] * 150 + ["Carol"] + ["text"] * 150  # ~1500 pieces: several chunks
    long_doc = ner_doc(long_words, ["O"] * 150 + ["B-PER"] + ["O"] * 150)
    return write_corpus(
        path, {"train": [alice, bob, plain], "dev": [bob], "test": [alice, long_doc, plain]}
    )


def test_chunk_words_fit_the_limit_and_keep_every_word() -> None:
    counts = [3, 1, 4, 0, 1, 5, 9, 2, 6, 5, 3]
    chunks = chunk_words(counts, 10)
    assert all(sum(counts[start:end]) <= 10 for start, end in chunks)
    assert [i for start, end in chunks for i in range(start, end)] == list(range(len(counts)))
    assert chunks[0] == (0, 5)  # greedy: 3+1+4+0+1 = 9, adding 5 would pass 10
    assert chunk_words([12, 1], 10) == [(0, 1), (1, 2)]  # an oversized word stands alone
    assert chunk_words([], 10) == []


def test_decode_iob_starts_an_entity_at_an_orphan_i() -> None:
    assert decode_iob(["B-A", "I-A", "O", "I-B"]) == [(0, 2, "A"), (3, 4, "B")]
    assert decode_iob(["B-A", "B-A", "I-B", "I-B"]) == [(0, 1, "A"), (1, 2, "A"), (2, 4, "B")]
    assert decode_iob(["O", "O"]) == []


def test_long_docs_are_chunked_and_stitched_back(tiny_transformer: Path) -> None:
    from transformers import AutoTokenizer

    words = ["word"] * 150 + ["Carol", "Smith"] + ["text"] * 150 + ["Acme"]
    gold = ner_doc(words, ["O"] * 150 + ["B-PER", "I-PER"] + ["O"] * 150 + ["B-ORG"])
    tag_names = ["O", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    encoded = encode_ner(
        [gold],
        tokenizer=AutoTokenizer.from_pretrained(tiny_transformer),
        tag_names=tag_names,
        max_length=512,
    )
    assert len(encoded.features) > 1 and all(len(f["input_ids"]) <= 512 for f in encoded.features)
    logits = np.zeros(
        (len(encoded.features), 512, len(tag_names))
    )  # a perfect model: the gold tag scores 1
    for chunk_logits, feature in zip(logits, encoded.features):
        for position, tag in enumerate(feature["labels"]):
            chunk_logits[position, tag if tag != IGNORED else 0] = 1.0
    [pred] = encoded.to_docs(logits)
    assert [t.text for t in pred] == words
    assert [(e.start, e.end, e.label_) for e in pred.ents] == [
        (e.start, e.end, e.label_) for e in gold.ents
    ]


def test_truncated_texts_count_only_the_words_the_model_sees(tiny_transformer: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(
        tiny_transformer
    )  # one piece per character, plus [CLS] and [SEP]
    short, long = (
        cats_doc("ab cd", {"A": 1.0, "B": 0.0}),
        cats_doc("ab cd ef gh ij", {"A": 0.0, "B": 1.0}),
    )
    encoded = encode_cats(
        [short, long], tokenizer=tokenizer, labels=("A", "B"), multilabel=False, max_length=8
    )
    assert all(len(f["input_ids"]) <= 8 for f in encoded.features)
    assert all("offset_mapping" not in f for f in encoded.features)
    assert encoded.words == 2 + 3  # "ab cd ef" fills the 6 pieces the long text keeps


@pytest.mark.slow
@needs_peer
def test_ner_one_epoch_prints_one_json_line(tmp_path: Path, tiny_transformer: Path) -> None:
    corpus = ner_corpus(tmp_path / "corpus")
    result = CliRunner().invoke(
        app,
        [
            str(corpus),
            "--task",
            "ner",
            "--epochs",
            "1",
            "--transformer",
            str(tiny_transformer),
            "--batch-size",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    line = json.loads(lines[0])
    assert set(line) == RESULT_KEYS | {"ents"}
    assert (line["peer"], line["components"], line["epochs"]) == ("hf_trainer", "ner", 1)
    assert line["train_words"] == 6 + 4  # the unannotated train doc is left out
    assert line["ents"]["n_docs"] == 2
    assert all(0.0 <= line["ents"][key] <= 1.0 for key in ("p", "r", "f"))


@pytest.mark.slow
@needs_peer
@pytest.mark.parametrize("task", ["textcat", "textcat_multilabel"])
def test_textcat_one_epoch(tmp_path: Path, tiny_transformer: Path, task: str) -> None:
    if task == "textcat":
        docs = [
            cats_doc("i love it", {"POS": 1.0, "NEG": 0.0}),
            cats_doc("i hate it", {"POS": 0.0, "NEG": 1.0}),
            cats_doc("great stuff indeed", {"POS": 1.0, "NEG": 0.0}),
        ]
    else:
        docs = [
            cats_doc("python and sql", {"SKILL": 1.0, "PERK": 0.0}),
            cats_doc("free lunch and python", {"SKILL": 1.0, "PERK": 1.0}),
            cats_doc("gym membership", {"SKILL": 0.0, "PERK": 1.0}),
        ]
    plain = NLP.make_doc("no categories at all")
    corpus = write_corpus(
        tmp_path / "corpus", {"train": docs + [plain], "dev": docs[:2], "test": docs + [plain]}
    )
    result = peer_train(
        corpus_dir=corpus,
        task=task,
        epochs=1,
        transformer=str(tiny_transformer),
        batch_size=2,
        output_dir=tmp_path / "checkpoints",
    )
    assert set(result) == RESULT_KEYS | {"textcat"}
    assert (result["components"], result["epochs"]) == (task, 1)
    assert result["train_words"] == sum(len(doc) for doc in docs)
    textcat = result["textcat"]
    assert textcat["mode"] == ("exclusive" if task == "textcat" else "multilabel")
    assert textcat["n_docs"] == 3
    assert all(
        0.0 <= textcat[key] <= 1.0
        for key in ("accuracy", "macro_f", "micro_f")
        if textcat[key] is not None
    )
    assert list(
        (tmp_path / "checkpoints").glob("checkpoint-*")
    )  # --output keeps the best checkpoint


def test_bad_input_is_one_line(tmp_path: Path, tiny_transformer: Path) -> None:
    corpus = ner_corpus(tmp_path / "corpus")
    runner = CliRunner()
    missing = runner.invoke(app, [str(tmp_path / "nope"), "--task", "ner", "--epochs", "1"])
    assert missing.exit_code == 1 and "train.spacy not found" in missing.stderr
    wrong = runner.invoke(app, [str(corpus), "--task", "spancat", "--epochs", "1"])
    assert wrong.exit_code == 1 and "unknown --task spancat" in wrong.stderr
    no_cats = runner.invoke(
        app,
        [str(corpus), "--task", "textcat", "--epochs", "1", "--transformer", str(tiny_transformer)],
    )
    assert no_cats.exit_code == 1 and "has categories" in no_cats.stderr
    assert all(len(r.stderr.strip().splitlines()) == 1 for r in (missing, wrong, no_cats))
