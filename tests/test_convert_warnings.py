"""Suspicious data is flagged: a table row repeating the header (two exports joined into one file)
and labels seen once in a corpus of hundreds; --strict makes the repeated header an error."""

import json
from pathlib import Path

from tests.helpers import load_docs, run_convert

BOM = b"\xef\xbb\xbf"  # Excel's "CSV UTF-8" starts every export with one


def joined_exports(tmp_path: Path) -> Path:
    """Two exports joined byte for byte (`cat a.csv b.csv > all.csv`, `copy /b`)."""
    first = BOM + b"text,label\r\nGreat film,pos\r\nBad film,neg\r\n"
    second = BOM + b"text,label\r\nFine film,pos\r\n"
    path = tmp_path / "all.csv"
    path.write_bytes(first + second)
    return path


def test_repeated_header_is_a_warning_not_a_document(tmp_path):
    source = joined_exports(tmp_path)
    result = run_convert(source, "-o", tmp_path / "o.spacy")
    assert result.exit_code == 0, result.stderr
    assert (
        "Warning: 1 x row repeats the header, as when two exports are joined into one file "
        f"(not read as a document)\n    {source}:4: text,label" in result.stdout
    )
    docs = load_docs(tmp_path / "o.spacy")
    assert [d.text for d in docs] == ["Great film", "Bad film", "Fine film"]
    assert all(set(d.cats) == {"neg", "pos"} for d in docs)


def test_strict_makes_the_repeated_header_an_error_with_its_line(tmp_path):
    source = joined_exports(tmp_path)
    result = run_convert(source, "-o", tmp_path / "o.spacy", "--strict")
    assert result.exit_code == 1
    assert result.stderr == (
        f"{source}:4: row repeats the header, as when two exports are joined into one file; "
        "delete the repeated header row\n"
    )
    assert not (tmp_path / "o.spacy").exists()


def test_strict_and_lenient_together_are_refused(tmp_path):
    source = joined_exports(tmp_path)
    result = run_convert(source, "-o", tmp_path / "o.spacy", "--strict", "--lenient")
    assert result.exit_code == 1
    assert result.stderr == (
        "--lenient skips bad lines, --strict stops at suspicious ones; give one of them\n"
    )


def test_category_seen_once_in_hundreds_of_documents_is_a_warning(tmp_path):
    rows = [f"review number {i},{'pos' if i % 2 else 'neg'}" for i in range(150)]
    rows[57] = "review number 57,pso"
    source = tmp_path / "reviews.csv"
    source.write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf8")
    result = run_convert(source, "-o", tmp_path / "o.spacy")
    assert result.exit_code == 0, result.stderr
    assert (
        "Warning: 1 x category label 'pso' occurs once in 150 documents with categories "
        f"(a typo, or too rare to learn?)\n    {source}: doc 58: review number 57" in result.stdout
    )
    assert "'neg' occurs once" not in result.stdout


def test_entity_label_seen_once_is_a_warning_and_small_corpora_are_left_alone(tmp_path):
    records = [{"text": f"Paris {i}", "entities": [[0, 5, "LOC"]]} for i in range(120)]
    records[3]["entities"] = [[0, 5, "LCO"]]
    source = tmp_path / "ner.jsonl"
    source.write_text("\n".join(json.dumps(r) for r in records), encoding="utf8")
    result = run_convert(source, "-o", tmp_path / "o.spacy")
    assert result.exit_code == 0, result.stderr
    assert (
        "Warning: 1 x entity label 'LCO' occurs once in 120 documents with entities "
        f"(a typo, or too rare to learn?)\n    {source}: doc 4: 'Paris'" in result.stdout
    )
    small = tmp_path / "small.jsonl"
    small.write_text("\n".join(json.dumps(r) for r in records[:20]), encoding="utf8")
    result = run_convert(small, "-o", tmp_path / "o.spacy")
    assert result.exit_code == 0 and "Warning" not in result.stdout
