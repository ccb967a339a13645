"""Long training documents are split (entities) or cut (categories only), never dropped, and the
reader is what configs/base.cfg trains with."""

import spacy
from hypothesis import given, settings
from hypothesis import strategies as st
from spacy.tokens import Doc, DocBin, Span
from spacy.util import load_config, registry

from scripts.training.corpus_reader import piece_ends, split_long_doc
from tests.helpers import PROJECT_ROOT

NLP = spacy.blank("en")


def make_doc(n, *, ents=(), sent_starts=None, cats=None):
    doc = Doc(NLP.vocab, words=[f"w{i}" for i in range(n)], sent_starts=sent_starts)
    if ents is not None:
        doc.set_ents([Span(doc, s, e, label="SKILL") for s, e in ents], default="outside")
    doc.cats = cats or {}
    return doc


def test_short_documents_pass_through_untouched():
    doc = make_doc(10, cats={"a": 1.0})
    assert list(split_long_doc(doc, 10)) == [doc]
    assert list(split_long_doc(make_doc(5000), 0))[0].__len__() == 5000


def test_entity_documents_split_at_sentences_never_inside_an_entity():
    starts = [i % 4 == 0 for i in range(20)]  # sentences of 4 tokens
    doc = make_doc(20, ents=[(6, 11)], sent_starts=starts, cats={"a": 1.0})
    pieces = list(split_long_doc(doc, 7))
    # Sentences start at 0, 4, 8, 12, 16; the one at 8 is inside the entity 6-11, so the second
    # piece ends after the entity, between tokens.
    assert [len(p) for p in pieces] == [4, 7, 5, 4]
    assert [(e.text, e.label_) for p in pieces for e in p.ents] == [("w6 w7 w8 w9 w10", "SKILL")]
    assert [p.cats for p in pieces] == [{"a": 1.0}, {}, {}, {}]
    assert all(p.has_annotation("ENT_IOB") for p in pieces)


def test_an_entity_longer_than_max_length_stays_whole():
    assert piece_ends(make_doc(12, ents=[(2, 9)]), 4) == [2, 9, 12]


def test_categories_only_documents_keep_their_first_tokens():
    doc = make_doc(50, ents=None, cats={"bug": 1.0, "docs": 0.0})
    [piece] = list(split_long_doc(doc, 20))
    assert piece.text == doc[:20].text_with_ws
    assert piece.cats == {"bug": 1.0, "docs": 0.0}


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 200),
    max_length=st.integers(1, 50),
    ent_starts=st.sets(st.integers(0, 199), max_size=20),
)
def test_entity_pieces_cover_the_document_and_keep_every_entity(n, max_length, ent_starts):
    spans, last_end = [], 0
    for start in sorted(s for s in ent_starts if s < n):
        if start >= last_end:
            end = min(n, start + 1 + start % 7)
            spans.append((start, end))
            last_end = end
    doc = make_doc(n, ents=spans)
    pieces = list(split_long_doc(doc, max_length))
    assert [t.text for p in pieces for t in p] == [t.text for t in doc]
    assert sum(len(p.ents) for p in pieces) == len(spans)
    assert all(len(p) <= max_length or len(p.ents) for p in pieces)


def test_base_config_trains_through_the_splitting_reader(tmp_path):
    import scripts.training.corpus_reader  # noqa: F401  registers the reader

    long_doc = make_doc(1200, ents=None, cats={"bug": 1.0, "docs": 0.0})
    DocBin(docs=[long_doc, make_doc(30, ents=[(1, 3)])], store_user_data=True).to_disk(
        tmp_path / "train.spacy"
    )
    config = load_config(
        PROJECT_ROOT / "configs" / "base.cfg",
        overrides={"paths.train": str(tmp_path / "train.spacy")},
        interpolate=True,
    )
    corpus = registry.resolve({"train": config["corpora"]["train"]})["train"]
    examples = list(corpus(NLP))
    assert [len(eg.reference) for eg in examples] == [config["corpora"]["train"]["max_length"], 30]
    assert examples[0].reference.cats == {"bug": 1.0, "docs": 0.0}
