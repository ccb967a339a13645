"""A folder as a source: what it reads, and what it lists as skipped (hidden entries, sub-folders
without --recursive, files of no known format, this run's own outputs)."""

import json
from pathlib import Path

from tests.helpers import load_docs, run_convert

IOB = "-DOCSTART- -X- O O\nEU\tB-ORG\nrejects\tO\n"


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf8"))
    return path


def user_folder(root: Path) -> Path:
    """A folder as users keep one: data, an editor's hidden file, notes, a sub-folder."""
    folder = root / "data"
    write(folder / "a.tsv", IOB)
    write(folder / ".a.tsv.swp", IOB)
    write(folder / ".git" / "HEAD", "ref: refs/heads/main\n")
    write(folder / "notes.docx", b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00\xdf\xa4")
    write(folder / "README.md", "# About\nSome words here.\n")
    write(folder / "more" / "b.csv", "text,label\nGreat,pos\nBad,neg\n")
    write(folder / "more" / ".DS_Store", b"\x00\x00\x00\x01Bud1")
    return folder


def test_folder_lists_what_it_skips(tmp_path):
    folder = user_folder(tmp_path)
    result = run_convert(folder, "-o", tmp_path / "o.spacy")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert (
        f"  {folder / '.a.tsv.swp'}: skipped (a hidden file; name it as a source to read it)"
        in (lines)
    )
    assert (
        f"  {folder / '.git'}: skipped (a hidden folder; name it as a source to read it)" in lines
    )
    assert (
        f"  {folder / 'more'}: skipped (a sub-folder; add --recursive to read sub-folders)" in lines
    )
    assert (
        f"  {folder / 'notes.docx'}: skipped "
        "(binary data, not text (a spreadsheet or a document?))" in lines
    )
    assert any(
        line.startswith(f"  {folder / 'README.md'}: skipped (no known format") for line in lines
    )
    assert [d.text for d in load_docs(tmp_path / "o.spacy")] == ["EU rejects"]


def test_recursive_reads_sub_folders_and_still_skips_hidden_entries(tmp_path):
    folder = user_folder(tmp_path)
    (folder / "empty").mkdir()
    result = run_convert(folder, "-o", tmp_path / "o.spacy", "--recursive")
    assert result.exit_code == 0, result.stderr
    assert f"  {folder / 'empty'}: skipped (an empty folder)" in result.stdout
    assert f"{folder / 'more' / 'b.csv'}: csv (" in result.stdout
    assert f"  {folder / 'more' / '.DS_Store'}: skipped (a hidden file" in result.stdout
    assert [d.text for d in load_docs(tmp_path / "o.spacy")] == ["EU rejects", "Great", "Bad"]


def test_report_json_lists_skipped_entries(tmp_path):
    folder = user_folder(tmp_path)
    write(folder / "c.tsv", "\n\n".join(f"-DOCSTART- -X- O O\nw{i}\tB-X" for i in range(9)))
    result = run_convert(
        "--train", folder, "--dev", "", "--test", "", "--output-dir", tmp_path / "c"
    )
    assert result.exit_code == 0, result.stderr
    report = json.loads((tmp_path / "c" / "report.json").read_text())
    skipped = {
        Path(s["file"]).name: s["reason"] for s in report["sources"] if s["format"] == "skipped"
    }
    assert set(skipped) == {".a.tsv.swp", ".git", "more", "notes.docx", "README.md"}


def test_outputs_inside_the_folder_are_listed_not_read(tmp_path):
    folder = tmp_path / "data"
    write(folder / "a.tsv", IOB)
    assert run_convert(folder, "-o", folder / "all.spacy").exit_code == 0
    result = run_convert(folder, "-o", folder / "all.spacy")
    assert result.exit_code == 0, result.stderr
    assert f"  {folder / 'all.spacy'}: skipped (an output of this run)" in result.stdout
    assert len(load_docs(folder / "all.spacy")) == 1


def test_folder_without_a_file_to_read_says_what_it_holds(tmp_path):
    folder = tmp_path / "data"
    write(folder / ".hidden.tsv", IOB)
    write(folder / "sub" / "a.tsv", IOB)
    result = run_convert(folder, "-o", tmp_path / "o.spacy")
    assert result.exit_code == 1
    assert result.stderr == (
        f"{folder}: nothing to read in the folder, only .hidden.tsv (a hidden file), "
        "sub (a sub-folder); add --recursive to read sub-folders\n"
    )
    assert run_convert(folder, "-o", tmp_path / "o.spacy", "-r").exit_code == 0
    (tmp_path / "empty").mkdir()
    result = run_convert(tmp_path / "empty", "-o", tmp_path / "o.spacy")
    assert result.stderr == (
        f"{tmp_path / 'empty'}: the folder holds no files; put the annotation files in it\n"
    )


def test_empty_and_blank_files_in_a_folder_are_listed(tmp_path):
    folder = tmp_path / "data"
    write(folder / "a.tsv", IOB)
    write(folder / "b.tsv", "")
    write(folder / "c.tsv", "\n\n")
    result = run_convert(folder, "-o", tmp_path / "o.spacy")
    assert result.exit_code == 0, result.stderr
    assert f"  {folder / 'b.tsv'}: skipped (the file is empty)" in result.stdout
    assert (
        f"  {folder / 'c.tsv'}: skipped (no text: the file is empty or holds only blank lines)"
        in result.stdout
    )
