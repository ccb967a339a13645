"""The converter benchmark's own parts: the synthetic CoNLL file, the comparison and its table."""

from pathlib import Path

from spacy.tokens import Doc, DocBin
from spacy.vocab import Vocab

from scripts.bench import convert_speed
from scripts.bench.convert_speed import (
    Comparison,
    Measurement,
    Run,
    best_of,
    same_annotation,
    write_conll,
)
from scripts.corpus.conversion import numbered_lines
from scripts.corpus.readers import READERS, Log, ReadOptions


def test_synthetic_file_is_conll_2003_that_our_reader_reads_whole(tmp_path):
    path = tmp_path / "bench.conll"
    written = write_conll(path, tokens=500, seed=3)
    assert written >= 500
    lines = path.read_text(encoding="utf8").splitlines()
    assert lines[0] == convert_speed.DOCSTART
    assert all(len(line.split(" ")) == 4 for line in lines if line and line[0] != "-")
    log = Log()
    docs = list(READERS["conll"].read(numbered_lines(path, log), options=ReadOptions(), log=log))
    assert sum(len(doc) for doc in docs) == written
    assert len(docs) == lines.count(convert_speed.DOCSTART)
    assert any("IOB1" in note for note in log.notes), log.notes


def test_same_annotation_ignores_where_documents_end(tmp_path):
    vocab = Vocab()
    whole = Doc(vocab, words=["EU", "rejects", "Peter"], ents=["B-ORG", "O", "B-PER"])
    first = Doc(vocab, words=["EU", "rejects"], ents=["B-ORG", "O"])
    second = Doc(vocab, words=["Peter"], ents=["B-PER"])
    other = Doc(vocab, words=["Peter"], ents=["B-LOC"])
    DocBin(docs=[whole]).to_disk(tmp_path / "a.spacy")
    DocBin(docs=[first, second]).to_disk(tmp_path / "b.spacy")
    DocBin(docs=[first, other]).to_disk(tmp_path / "c.spacy")
    assert same_annotation(tmp_path / "a.spacy", tmp_path / "b.spacy")
    assert not same_annotation(tmp_path / "a.spacy", tmp_path / "c.spacy")


def test_best_of_takes_the_fastest_run_and_the_highest_peak(monkeypatch):
    runs = iter([Measurement(3.0, 2.5, 100.0), Measurement(2.0, 2.8, 120.0)])
    monkeypatch.setattr(convert_speed, "measure", lambda command: next(runs))
    assert best_of(["true"], repeat=2) == Measurement(2.0, 2.5, 120.0)


def test_table_gives_both_ratios_against_the_goals():
    comparison = Comparison(
        ours=Run("ours", 1000, Measurement(2.0, 1.5, 300.0)),
        spacy=Run("spacy convert -c ner", 1000, Measurement(8.0, 6.0, 600.0)),
        ours_twice=Run("ours, 2x tokens", 2000, Measurement(3.0, 2.5, 320.0)),
        same_annotation=True,
    )
    table = comparison.table()
    assert "throughput ours/spaCy: 4.0x (goal >= 3x; by CPU time 4.0x)" in table
    assert "peak memory ours/spaCy: 0.50 (goal <= 0.5)" in table
    assert "our peak at 2x tokens: 320.0 MB vs 300.0 MB" in table
    assert table.splitlines()[1].split() == ["ours", "1000", "2.00", "500", "1.50", "300.0"]


def test_commands_run_both_converters_on_the_same_file(tmp_path):
    source = Path("bench.conll")
    ours = convert_speed.ours(source, tmp_path / "ours.spacy")
    spacys = convert_speed.spacys(source, tmp_path)
    assert ours[1:4] == ["-m", "scripts.convert", "bench.conll"] and "conll" in ours
    assert spacys[1:5] == ["-m", "spacy", "convert", "bench.conll"] and "ner" in spacys
