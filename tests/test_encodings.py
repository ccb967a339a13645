"""Files as Excel, Windows editors and annotation tools save them: byte-order marks, UTF-16, CP-1252
and Latin-1, binary files. Every file here is written by the test."""

import codecs
import json
from pathlib import Path

import pytest

from scripts.corpus import textfiles
from scripts.corpus.readers import DataError, Log
from scripts.corpus.textfiles import Encoding, file_encoding, numbered_lines
from tests.helpers import LINE_ENDS, load_docs, run_convert, with_line_ends

ENCODINGS = {
    "utf-8": b"",
    "utf-8-bom": codecs.BOM_UTF8,
    "utf-16-le": codecs.BOM_UTF16_LE,
    "utf-16-be": codecs.BOM_UTF16_BE,
    "utf-32-le": codecs.BOM_UTF32_LE,
}
# One small file per reader, in the shape its tool writes, with a character beyond ASCII.
SAMPLES = {
    "conll": "-DOCSTART- -X- O O\r\nJosé\tB-PER\r\nrejects\tO\r\n\r\nZürich\tB-LOC\r\n",
    "iob": "José|B-PER rejects|O Zürich|B-LOC\n",
    "jsonl": '{"text": "José rejects", "entities": [[0, 4, "PER"]]}\n',
    "json": '[\n {"text": "José rejects", "label": [[0, 4, "PER"]]}\n]\n',
    "labelstudio": json.dumps(
        [
            {
                "data": {"text": "José rejects"},
                "annotations": [{"result": [{"value": {"start": 0, "end": 4, "labels": ["PER"]}}]}],
            }
        ],
        ensure_ascii=False,
    ),
    "spacy-json": json.dumps(
        [
            {
                "id": 0,
                "paragraphs": [{"sentences": [{"tokens": [{"orth": "José", "ner": "U-PER"}]}]}],
            }
        ],
        ensure_ascii=False,
    ),
    "train-data": '[["José rejects", {"entities": [[0, 4, "PER"]]}]]',
    "csv": 'text,label\r\n"Café, great",pos\r\nBad,neg\r\n',
    "tsv": "text\tlabel\r\nCafé great\tpos\r\nBad\tneg\r\n",
    "text-label": "café great;pos\nbad;neg\n",
    "fasttext": "__label__pos café great\n__label__neg bad\n",
}


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    codec = "utf-8" if encoding == "utf-8-bom" else encoding
    path.write_bytes(ENCODINGS[encoding] + text.encode(codec))
    return path


@pytest.mark.parametrize("fmt", sorted(SAMPLES))
@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_every_format_reads_the_same_in_every_encoding_with_a_mark(tmp_path, fmt, encoding):
    plain = write(tmp_path / "plain.txt", SAMPLES[fmt])
    marked = write(tmp_path / "marked.txt", SAMPLES[fmt], encoding)
    first = run_convert(plain, "-o", tmp_path / "plain.spacy")
    result = run_convert(marked, "-o", tmp_path / "marked.spacy")
    assert first.exit_code == 0 and result.exit_code == 0, result.stderr
    assert f"marked.txt: {fmt} (" in result.stdout
    assert (tmp_path / "marked.spacy").read_bytes() == (tmp_path / "plain.spacy").read_bytes()


def test_excel_unicode_text_is_read_with_crlf_and_tabs(tmp_path):
    # Excel's "Unicode Text" and Notepad's "Unicode": UTF-16 LE with a mark, CRLF, tabs.
    source = write(
        tmp_path / "export.txt", "text\tlabel\r\nGreat film\tpos\r\nBad film\tneg\r\n", "utf-16-le"
    )
    result = run_convert(source, "-o", tmp_path / "o.spacy")
    assert result.exit_code == 0, result.stderr
    assert "export.txt: tsv (a tab-separated table with 2 columns), 2 docs" in result.stdout
    assert "read as utf-16-le, from its byte-order mark" in result.stdout
    assert [(d.text, d.cats) for d in load_docs(tmp_path / "o.spacy")] == [
        ("Great film", {"neg": 0.0, "pos": 1.0}),
        ("Bad film", {"neg": 1.0, "pos": 0.0}),
    ]


def test_latin1_token_file_names_file_line_bytes_and_fix(tmp_path):
    source = tmp_path / "names.tsv"
    source.write_bytes(b"Jos\xe9 B-PER\nrejects O\n")
    result = run_convert(source, "-o", tmp_path / "o.spacy")
    assert result.exit_code == 1
    assert result.stderr == (
        f"{source}:1: bytes that are not UTF-8 (b'\\xe9' at byte 4; as CP-1252/Latin-1: 'é' in "
        "'José B-PER'); save the file as UTF-8, or read it with --encoding cp1252\n"
    )


def test_cp1252_csv_stops_at_its_line_and_reads_with_encoding(tmp_path):
    rows = [f"review {i},pos" for i in range(40)]
    rows[30] = "It\u2019s great \u2013 really,pos"
    source = tmp_path / "reviews.csv"
    source.write_bytes(("text,label\r\n" + "\r\n".join(rows) + "\r\n").encode("cp1252"))
    result = run_convert(source, "-o", tmp_path / "o.spacy")
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"{source}:32: bytes that are not UTF-8 (b'\\x92' at byte 3; as CP-1252: '\u2019' in "
    )
    assert result.stderr.endswith("; save the file as UTF-8, or read it with --encoding cp1252\n")
    result = run_convert(source, "-o", tmp_path / "o.spacy", "--encoding", "cp1252")
    assert result.exit_code == 0, result.stderr
    assert "read as cp1252, from --encoding" in result.stdout
    assert load_docs(tmp_path / "o.spacy")[30].text == "It\u2019s great \u2013 really"


def test_bytes_that_are_no_cp1252_character_get_the_general_fix(tmp_path):
    source = tmp_path / "odd.tsv"
    source.write_bytes(b"a\tO\nb\x81\tO\n")
    result = run_convert(source, "-o", tmp_path / "o.spacy")
    assert result.stderr == (
        f"{source}:2: bytes that are not UTF-8 (b'\\x81' at byte 2); "
        "save the file as UTF-8, or name its encoding with --encoding\n"
    )


def test_unknown_format_in_another_encoding_names_the_bytes_first(tmp_path):
    source = tmp_path / "notes.txt"
    source.write_bytes(b"Quelques mots\nUne id\xe9e simple\n")
    result = run_convert(source, "-o", tmp_path / "o.spacy")
    assert result.stderr.startswith(f"{source}:2: bytes that are not UTF-8 (b'\\xe9' at byte 7; ")


def test_lenient_counts_undecodable_lines_under_one_reason(tmp_path):
    source = tmp_path / "names.tsv"
    source.write_bytes(b"Jos\xe9\tB-PER\nMar\xeda\tB-PER\nok\tO\n")
    result = run_convert(source, "-o", tmp_path / "o.spacy", "--lenient")
    assert result.exit_code == 0, result.stderr
    assert "Skipped: 2 x bytes that are not UTF-8\n" in result.stdout
    assert [d.text for d in load_docs(tmp_path / "o.spacy")] == ["ok"]


def test_encoding_name_is_checked(tmp_path):
    source = write(tmp_path / "a.tsv", "a\tO\n")
    for name in ("klingon", "rot13"):
        result = run_convert(source, "-o", tmp_path / "o.spacy", "--encoding", name)
        assert result.exit_code == 1
        assert result.stderr == (
            f"--encoding {name!r}: Python knows no such text encoding; "
            "use a name such as cp1252, latin-1, utf-16, shift_jis\n"
        )


def test_a_byte_order_mark_wins_over_encoding(tmp_path):
    source = write(tmp_path / "a.tsv", "Zürich\tB-LOC\n", "utf-8-bom")
    result = run_convert(source, "-o", tmp_path / "o.spacy", "--encoding", "cp1252")
    assert result.exit_code == 0, result.stderr
    assert load_docs(tmp_path / "o.spacy")[0].text == "Zürich"


def test_labels_file_saved_as_unicode_text(tmp_path):
    source = write(tmp_path / "a.tsv", "good\t1\nbad\t0\n")
    labels = write(tmp_path / "labels.txt", "négatif\r\npositif\r\n", "utf-16-le")
    result = run_convert(source, "-o", tmp_path / "o.spacy", "--labels-file", labels)
    assert result.exit_code == 0, result.stderr
    assert [d.cats for d in load_docs(tmp_path / "o.spacy")] == [
        {"négatif": 0.0, "positif": 1.0},
        {"négatif": 1.0, "positif": 0.0},
    ]


@pytest.mark.parametrize(
    "content,message",
    [
        (
            "text\tlabel\nGreat\tpos\n".encode("utf-16-le"),
            "{f}:1: the file looks like utf-16-le without a byte-order mark (every other byte is "
            "0); read it with --encoding utf-16-le, or save it as UTF-8",
        ),
        (
            # the start of a .docx (a zip file)
            b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00\xdf\xa4\xd2lZ\x01\x00\x00 \x05"
            b"\x00\x00\x13\x00\x08\x02[Content_Types].xml \xa2\x04\x02(\xa0\x00\x02\x00\x00",
            "{f}:1: binary data, not text (a spreadsheet or a document?); "
            "export it as CSV, TSV or JSON",
        ),
        (
            b"\n  \r\n\t\n",
            "{f}:1: the file holds no text, only blank lines (or a byte-order mark); "
            "remove it from the sources or fill it in",
        ),
        (
            codecs.BOM_UTF16_LE,
            "{f}:1: the file holds no text, only blank lines (or a byte-order mark); "
            "remove it from the sources or fill it in",
        ),
        (
            codecs.BOM_UTF16_LE + "a\tO\nb\tO\n".encode("utf-16-le") + b"\x00\xd8\n\x00",
            "{f}:3: bytes that are not utf-16-le (b'\\x00\\xd8'); "
            "the file is damaged: save it again as UTF-8",
        ),
    ],
)
def test_files_that_are_not_readable_text_say_why(tmp_path, content, message):
    source = tmp_path / "in.txt"
    source.write_bytes(content)
    result = run_convert(source, "-o", tmp_path / "o.spacy")
    assert result.exit_code == 1
    assert result.stderr == message.format(f=source) + "\n"


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_numbered_lines_across_blocks(tmp_path, monkeypatch, encoding):
    text = "a\tO\r\nZürich\tB-LOC\n\n😀 x\r\nlast"
    path = write(tmp_path / "f.txt", text, encoding)
    expected = list(enumerate(["a\tO", "Zürich\tB-LOC", "", "😀 x", "last"], 1))
    assert list(numbered_lines(path, Log())) == expected
    monkeypatch.setattr(textfiles, "BLOCK_BYTES", 3)  # blocks that cut characters in two
    assert list(numbered_lines(path, Log())) == expected


@pytest.mark.parametrize("fmt", sorted(SAMPLES))
@pytest.mark.parametrize("ends", LINE_ENDS)
def test_every_format_reads_the_same_with_every_kind_of_line_end(tmp_path, fmt, ends):
    unix = SAMPLES[fmt].replace("\r\n", "\n")
    plain = write(tmp_path / "plain.txt", unix)
    other = write(tmp_path / "other.txt", with_line_ends(unix, ends))
    first = run_convert(plain, "-o", tmp_path / "plain.spacy")
    result = run_convert(other, "-o", tmp_path / "other.spacy")
    assert first.exit_code == 0 and result.exit_code == 0, result.stderr
    assert f"other.txt: {fmt} (" in result.stdout
    assert (tmp_path / "other.spacy").read_bytes() == (tmp_path / "plain.spacy").read_bytes()


@pytest.mark.parametrize("block", [1, 2, 3, 5, textfiles.BLOCK_BYTES])
@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_numbered_lines_end_at_crlf_cr_or_lf_across_blocks(tmp_path, monkeypatch, encoding, block):
    # LF then CR is two line ends; CR then LF is one, also when a block ends between them.
    text = "a\rZürich\r\n\r\r\n😀\n\rb\x0cc\u2028d\re\r"
    path = write(tmp_path / "f.txt", text, encoding)
    monkeypatch.setattr(textfiles, "BLOCK_BYTES", block)
    assert list(numbered_lines(path, Log())) == list(
        enumerate(["a", "Zürich", "", "", "😀", "", "b\x0cc\u2028d", "e"], 1)
    )


def test_excel_for_mac_csv_names_mac_roman_and_reads_with_it(tmp_path):
    # Excel for Mac's "CSV (Macintosh)": Mac Roman text, lines that end in CR alone.
    source = tmp_path / "mac.csv"
    source.write_bytes('text,label\rCafé crème,pos\r"Bad,\rreally",neg\r'.encode("mac_roman"))
    result = run_convert(source, "-o", tmp_path / "o.spacy")
    assert result.exit_code == 1
    assert result.stderr == (
        f"{source}:2: bytes that are not UTF-8 (b'\\x8e' at byte 4; as Mac Roman (lines end in CR, "
        "as on a Mac): 'é' in 'Café crème,pos'); save the file as UTF-8, or read it with "
        "--encoding mac_roman\n"
    )
    result = run_convert(source, "-o", tmp_path / "o.spacy", "--encoding", "mac_roman")
    assert result.exit_code == 0, result.stderr
    assert "mac.csv: csv (a comma-separated table with 2 columns), 2 docs" in result.stdout
    assert [(d.text, d.cats) for d in load_docs(tmp_path / "o.spacy")] == [
        ("Café crème", {"neg": 0.0, "pos": 1.0}),
        ("Bad,\nreally", {"neg": 1.0, "pos": 0.0}),
    ]


def test_lenient_skips_undecodable_lines_of_a_cr_file_by_their_number(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"a\tO\rb\xe9\tO\rc\tO\r")
    log = Log(file="f.txt", lenient=True)
    assert list(numbered_lines(path, log)) == [(1, "a\tO"), (3, "c\tO")]
    (event,) = log.events.values()
    assert (event.reason, event.count) == ("bytes that are not UTF-8", 1)
    assert event.examples[0].startswith(
        "f.txt:2: bytes that are not UTF-8 (b'\\xe9' at byte 2; as Mac"
    )


def test_damaged_utf16_with_cr_line_ends_names_its_line(tmp_path):
    path = tmp_path / "f.txt"
    damaged = "a\rb\r\nc\r".encode("utf-16-le") + b"\x00\xd8" + "\r".encode("utf-16-le")
    path.write_bytes(codecs.BOM_UTF16_LE + damaged)
    with pytest.raises(DataError, match=r"^4: bytes that are not utf-16-le \(b'\\x00\\xd8'\)"):
        list(numbered_lines(path, Log()))


@pytest.mark.parametrize(
    "content,named,expected",
    [
        (b"a\tO\n", None, Encoding("utf-8")),
        (codecs.BOM_UTF8 + b"a", None, Encoding("utf-8", 3, "utf-8, from its byte-order mark")),
        (
            codecs.BOM_UTF16_BE + "a".encode("utf-16-be"),
            "cp1252",
            Encoding("utf-16-be", 2, "utf-16-be, from its byte-order mark"),
        ),
        (b"caf\xe9", "cp1252", Encoding("cp1252", 0, "cp1252, from --encoding", named=True)),
    ],
)
def test_file_encoding(tmp_path, content, named, expected):
    path = tmp_path / "f"
    path.write_bytes(content)
    assert file_encoding(path, named=named) == expected


def test_damaged_utf16_stops_even_when_lenient(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(codecs.BOM_UTF16_LE + "a\n".encode("utf-16-le") + b"x")
    with pytest.raises(DataError, match=r"^2: bytes that are not utf-16-le"):
        list(numbered_lines(path, Log(lenient=True)))
