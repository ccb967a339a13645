"""Token-per-line and sentence-per-line readers: every quirk as a one-line fixture."""

import pytest
import spacy
from hypothesis import given, settings
from hypothesis import strategies as st

from scripts.corpus.readers import DataError
from scripts.corpus.segment import MAX_DOC_TOKENS, MAX_SENTENCE_TOKENS
from tests.helpers import LINE_ENDS, ents, read, with_line_ends


def test_iob2_tab_separated():
    (doc,), _ = read("EU\tB-ORG\nrejects\tO\nGerman\tB-MISC\ncall\tO", "conll")
    assert doc.text == "EU rejects German call"
    assert ents(doc) == [("EU", "ORG"), ("German", "MISC")]
    assert doc.has_annotation("ENT_IOB") and [t.ent_iob_ for t in doc] == ["B", "O", "B", "O"]


def test_conll2003_columns_and_iob1():
    text = (
        "-DOCSTART- -X- -X- O\n\nPeter NNP B-NP I-PER\nBlackburn NNP I-NP I-PER\nand CC O O\n"
        "New NNP I-NP I-LOC\nYork NNP I-NP B-LOC"
    )
    (doc,), log = read(text, "conll")
    assert ents(doc) == [("Peter Blackburn", "PER"), ("New", "LOC"), ("York", "LOC")]
    assert "IOB1" in log.notes[0]


@pytest.mark.parametrize(
    "tags,scheme",
    [
        ("B-X I-X E-X S-Y O", "BIOES"),
        ("B-X I-X L-X U-Y O", "BILUO"),
        ("B-X M-X E-X S-Y O", "BMES"),
    ],
)
def test_schemes_decode_to_the_same_entities(tags, scheme):
    text = "\n".join(f"w{i} {tag}" for i, tag in enumerate(tags.split()))
    (doc,), log = read(text, "conll")
    assert ents(doc) == [("w0 w1 w2", "X"), ("w3", "Y")]
    assert scheme in log.notes[0]


def test_i_after_other_label_starts_a_new_entity():
    (doc,), _ = read("a I-X\nb I-Y\nc O\nd I-Y", "conll")
    assert ents(doc) == [("a", "X"), ("b", "Y"), ("d", "Y")]


@pytest.mark.parametrize(
    "marker",
    [
        "-DOCSTART- -X- O O",
        "-DOCSTART- -X- -X- O",
        "-DOCSTART- -X- O",
        "-DOCSTART-",
        "-DOCSTART-\tO",
    ],
)
def test_docstart_variants(marker):
    docs, _ = read(f"{marker}\na\tO\n\n{marker}\n\nb\tB-X", "conll")
    assert [d.text for d in docs] == ["a", "b"]


def test_comments_crlf_and_whitespace_only_sentence_break():
    text = "# http://example.org [2009-10-17]\na\tO\r\n\t\nb\tB-X\r\n# sent_id = 2\n#\tO"
    (doc,), _ = read(text, "conll")
    assert [t.text for t in doc] == ["a", "b", "#"]
    assert [s.text for s in doc.sents] == ["a", "b #"]


def test_germeval_columns_are_selectable():
    text = "1\tAufgrund\tO\tO\n2\tBerlin\tB-LOC\tB-LOCderiv"
    (doc,), _ = read(text, "conll", token_column=2, tag_column=3)
    assert ents(doc) == [("Berlin", "LOC")]


def test_punctuation_and_quote_tokens():
    (doc,), _ = read('"\tO\n,\tO\n“\tO\nHi\tB-X', "conll")
    assert [t.text for t in doc] == ['"', ",", "“", "Hi"]


def test_without_docstart_ten_sentences_per_doc():
    docs, log = read("\n\n".join(f"w{i}\tO" for i in range(25)), "conll")
    assert [len(list(d.sents)) for d in docs] == [10, 10, 5]
    assert "10 sentences per document" in log.notes[0]


def test_long_runs_are_cut_outside_entities():
    n = 3 * MAX_DOC_TOKENS
    text = "-DOCSTART-\n" + "\n".join(
        f"w{i}\t{'B-X' if i % 7 == 0 else 'I-X' if i % 7 == 1 else 'O'}" for i in range(n)
    )
    docs, log = read(text, "conll")
    assert sum(len(d) for d in docs) == n
    assert all(len(d) <= MAX_DOC_TOKENS for d in docs)
    assert all(len(s) <= MAX_SENTENCE_TOKENS for d in docs for s in d.sents)
    assert sum(len(d.ents) for d in docs) == len(range(0, n, 7))
    assert any(e.kind == "segmented" for e in log.events.values())


def test_chinese_characters_join_without_spaces_and_match_the_zh_tokenizer():
    text = "吴 B-NAME\n重 M-NAME\n阳 E-NAME\n， O\n中 B-CONT\n国 E-CONT\nM S-X"
    (doc,), _ = read(text, "conll", lang="zh")
    assert doc.text == "吴重阳，中国M"
    assert ents(doc) == [("吴重阳", "NAME"), ("中国", "CONT"), ("M", "X")]
    predicted = spacy.blank("zh")(doc.text)
    assert [t.text for t in predicted] == [t.text for t in doc]
    assert [(e.start_char, e.end_char) for e in doc.ents] == [
        (predicted[e.start : e.end].start_char, predicted[e.start : e.end].end_char)
        for e in doc.ents
    ]


@pytest.mark.parametrize(
    "text,message",
    [
        ("a\tO\nb\tBX", "2: tag 'BX' is not O or B-/I-/E-/S-/L-/U-/M- followed by a label"),
        ("a\tO\nb", "2: token line has 1 column(s) and no tag"),
        ("a\tO\nb\tB-", "2: tag 'B-' is not O"),
    ],
)
def test_malformed_lines_raise_with_line(text, message):
    with pytest.raises(DataError) as error:
        read(text, "conll")
    assert str(error.value).startswith(message)


def test_lenient_skips_and_counts():
    (doc,), log = read("a\tO\nb\tBX\nc\tO", "conll", lenient=True)
    assert doc.text == "a c"
    assert log.total("skipped") == 1


def test_sentence_per_line_word_tag_and_word_pos_tag():
    docs, _ = read(
        "I|O like|O London|I-GPE\nI|PRP|O like|VBP|O New|NNP|B-GPE York|NNP|I-GPE", "iob"
    )
    (doc,) = docs
    assert [s.text for s in doc.sents] == ["I like London", "I like New York"]
    assert ents(doc) == [("London", "GPE"), ("New York", "GPE")]


def test_sentence_per_line_error():
    with pytest.raises(DataError, match="^1: item 'like' is not word|TAG"):
        read("I|O like", "iob")


@pytest.mark.parametrize("ends", LINE_ENDS)
def test_every_kind_of_line_end_reads_the_same(ends):
    conll = "-DOCSTART- -X- O O\n\nEU\tB-ORG\nrejects\tO\n\nPeter\tB-PER\nBlackburn\tI-PER\n"
    (doc,), _ = read(with_line_ends(conll, ends), "conll")
    assert [s.text for s in doc.sents] == ["EU rejects", "Peter Blackburn"]
    assert ents(doc) == [("EU", "ORG"), ("Peter Blackburn", "PER")]
    (doc,), _ = read(
        with_line_ends("EU|B-ORG rejects|O\nPeter|B-PER Blackburn|I-PER\n", ends), "iob"
    )
    assert [s.text for s in doc.sents] == ["EU rejects", "Peter Blackburn"]
    assert ents(doc) == [("EU", "ORG"), ("Peter Blackburn", "PER")]


def test_a_carriage_return_inside_a_token_line_ends_it_and_the_rest_is_refused():
    with pytest.raises(DataError) as error:
        read("EU\tB-ORG\nrej\rects\tO\n", "conll")
    assert str(error.value).startswith("2: token line has 1 column(s) and no tag")


words = st.text(alphabet="abcXYZ#.,'\"-", min_size=1, max_size=5).filter(
    lambda w: not w.startswith("-DOCSTART-")
)
labels = st.sampled_from(["PER", "ORG", "B", "X-Y"])


@st.composite
def iob2_sentences(draw):
    sentences = []
    for _ in range(draw(st.integers(1, 4))):
        tags, previous = [], "O"
        for _ in range(draw(st.integers(1, 8))):
            choice = draw(st.sampled_from(["O", "B", "I"]))
            if choice == "I" and previous != "O":
                tags.append("I-" + previous[2:])
            elif choice == "O":
                tags.append("O")
            else:
                tags.append("B-" + draw(labels))
            previous = tags[-1]
        sentences.append([(draw(words), tag) for tag in tags])
    return sentences


@settings(max_examples=100, deadline=None)
@given(iob2_sentences())
def test_iob2_round_trips_exactly(sentences):
    text = "\n\n".join("\n".join(f"{w}\t{t}" for w, t in s) for s in sentences)
    docs, _ = read(text, "conll")
    back = []
    for doc in docs:
        for sent in doc.sents:
            back.append(
                [
                    (t.text, t.ent_iob_ + "-" + t.ent_type_ if t.ent_iob_ != "O" else "O")
                    for t in sent
                ]
            )
    assert back == sentences


def test_cjk_characters_with_a_space_language_are_flagged():
    (doc,), log = read("吴 B-NAME\n重 E-NAME", "conll")
    assert doc.text == "吴 重"
    assert "use --lang zh or ja" in log.notes[-1]
