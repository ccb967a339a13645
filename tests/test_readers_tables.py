"""Classification tables: CSV/TSV (header or not), text;label, fastText, numeric classes."""

import pytest

from scripts.corpus.readers import DataError
from tests.helpers import LINE_ENDS, read, reasons, with_line_ends


def cats(docs):
    return [(d.text, sorted(k for k, v in d.cats.items() if v)) for d in docs]


def test_csv_with_header_quotes_doubled_quotes_and_newlines():
    text = 'text,label\n"Great, really ""great""",pos\n"two\nlines",neg\nplain,pos'
    docs, log = read(text, "csv")
    assert cats(docs) == [
        ('Great, really "great"', ["pos"]),
        ("two\nlines", ["neg"]),
        ("plain", ["pos"]),
    ]
    assert not docs[0].has_annotation("ENT_IOB")
    assert "header: text from 'text', labels from 'label'" in log.notes[0]


def test_label_first_without_header():
    docs, _ = read("pos,Great movie\nneg,Bad movie\npos,Fine movie", "csv")
    assert cats(docs) == [("Great movie", ["pos"]), ("Bad movie", ["neg"]), ("Fine movie", ["pos"])]


def test_goemotions_like_tsv_ids_into_labels_file_and_id_column_ignored():
    text = 'My food\t27\teebbqej\n"Three words, ""Dude."" "\t3,27\teetq9g0\nNow\t0\ted00q6i'
    docs, log = read(
        text,
        "tsv",
        labels=("admiration", "x1", "x2", "annoyance", *[f"e{i}" for i in range(4, 27)], "neutral"),
    )
    assert cats(docs) == [
        ("My food", ["neutral"]),
        ('Three words, "Dude."', ["annoyance", "neutral"]),
        ("Now", ["admiration"]),
    ]
    assert "ignored column 3" in log.notes[0] and "counted from 0" in log.notes[0]


def test_ag_news_like_one_based_classes_and_two_text_columns():
    text = (
        '"3","Wall St. Bears","Reuters - Short sellers"\n'
        '"4","New chip","A faster chip"\n'
        '"1","Vote","Polls close"'
    )
    docs, log = read(text, "csv", labels=("World", "Sports", "Business", "Sci/Tech"))
    assert cats(docs) == [
        ("Wall St. Bears\nReuters - Short sellers", ["Business"]),
        ("New chip\nA faster chip", ["Sci/Tech"]),
        ("Vote\nPolls close", ["World"]),
    ]
    assert "counted from 1" in log.notes[0]


def test_multi_label_cells():
    docs, _ = read("text,labels\nA,a#b\nB,\"['c', 'd']\"\nC,e", "csv")
    assert cats(docs) == [("A", ["a", "b"]), ("B", ["c", "d"]), ("C", ["e"])]


def test_class_outside_labels_file():
    with pytest.raises(DataError, match=r"^2: class 5 is outside the 2 names"):
        read("a\t0\nb\t5", "tsv", labels=("x", "y"))


def test_row_with_missing_field_and_empty_label():
    with pytest.raises(DataError, match=r"^3: row has 1 fields, expected 2"):
        read("text,label\na,x\nb", "csv")
    docs, log = read("text,label\na,x\nb,", "csv")
    assert len(docs) == 1 and reasons(log) == {"dropped: row without a label": 1}


def test_header_label_column_by_name_or_the_only_other_column():
    with pytest.raises(DataError, match=r"^1: no label column"):
        read("text,author,date\na,b,c", "csv")
    docs, log = read("text,y\na,b", "csv")
    assert cats(docs) == [("a", ["b"])] and "labels from 'y'" in log.notes[0]


def test_text_semicolon_label():
    docs, _ = read("i didnt feel humiliated;sadness\nfine; really;joy", "text-label")
    assert cats(docs) == [("i didnt feel humiliated", ["sadness"]), ("fine; really", ["joy"])]
    with pytest.raises(DataError, match=r"^1: no label after a ';'"):
        read("no separator", "text-label")


def test_fasttext():
    docs, _ = read("__label__pos __label__fun Great movie\n__label__neg Bad", "fasttext")
    assert cats(docs) == [("Great movie", ["fun", "pos"]), ("Bad", ["neg"])]
    with pytest.raises(DataError, match=r"^1: no __label__"):
        read("just text", "fasttext")


def test_repeated_header_row_is_left_out_with_a_warning():
    docs, log = read('text,label\na,x\n"\ufefftext", LABEL \nb,y', "csv")
    assert cats(docs) == [("a", ["x"]), ("b", ["y"])]
    assert reasons(log) == {
        "warning: row repeats the header, as when two exports are joined into one file "
        "(not read as a document)": 1
    }
    assert log.events[next(iter(log.events))].examples == ["f:3: text, LABEL"]


def test_repeated_header_is_an_error_when_strict():
    from scripts.corpus.readers import Log, ReadOptions
    from scripts.corpus.readers.tables import read_tsv

    lines = enumerate("text\tlabel\na\tx\ntext\tlabel".split("\n"), 1)
    with pytest.raises(DataError, match=r"^3: row repeats the header"):
        list(read_tsv(lines, options=ReadOptions(), log=Log(strict=True)))


def test_text_label_header_line_and_its_repeat():
    docs, log = read(
        "sentence;emotion\ni feel fine;joy\n\ufeffsentence;emotion\nmeh;sadness", "text-label"
    )
    assert cats(docs) == [("i feel fine", ["joy"]), ("meh", ["sadness"])]
    assert "f: line 1 (sentence;emotion) is a header: not read as a document" in log.notes
    assert log.total("warning") == 1


# One table per reader, lines ending in LF, and the documents it holds; the quoted line break in
# the csv and tsv tables becomes a CR, a CRLF or a mix of both below, like the line ends.
TABLES = {
    "csv": (
        'text,label\n"Great, really",pos\n"two\nlines",neg\nplain,pos\n',
        [("Great, really", ["pos"]), ("two\nlines", ["neg"]), ("plain", ["pos"])],
    ),
    "tsv": (
        'text\tlabel\nGreat film\tpos\n"two\nlines"\tneg\n',
        [("Great film", ["pos"]), ("two\nlines", ["neg"])],
    ),
    "text-label": ("great;pos\n\nbad;neg\n", [("great", ["pos"]), ("bad", ["neg"])]),
    "fasttext": ("__label__pos great\n__label__neg bad", [("great", ["pos"]), ("bad", ["neg"])]),
}


@pytest.mark.parametrize("ends", LINE_ENDS)
@pytest.mark.parametrize("fmt", sorted(TABLES))
def test_every_kind_of_line_end_reads_the_same(fmt, ends):
    text, expected = TABLES[fmt]
    docs, _ = read(with_line_ends(text, ends), fmt)
    assert cats(docs) == expected


@pytest.mark.parametrize("fmt", ["csv", "tsv"])
def test_a_line_break_of_any_kind_inside_quotes_is_one_newline_of_the_field(fmt):
    sep = "," if fmt == "csv" else "\t"
    text = f'text{sep}label\r\n"one\rtwo\r\nthree\n"{sep}pos\r\nfour{sep}neg\r\n'
    docs, _ = read(text, fmt)
    assert cats(docs) == [("one\ntwo\nthree", ["pos"]), ("four", ["neg"])]


@pytest.mark.parametrize("fmt", ["csv", "tsv"])
def test_a_carriage_return_outside_quotes_ends_the_row_and_the_short_row_is_refused(fmt):
    # As Python's csv module reads files opened with newline="": a bare CR ends a record.
    sep = "," if fmt == "csv" else "\t"
    with pytest.raises(DataError) as error:
        read(f"text{sep}label\nGreat\rfilm{sep}pos\n", fmt)
    assert str(error.value) == (
        "2: row has 1 fields, expected 2; quote fields that contain the delimiter or line breaks "
        '("...") and double the quotes inside'
    )
