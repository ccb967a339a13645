"""The training corpus reader: spaCy's Corpus with long documents split instead of dropped.

A single very long document (a whole issue thread in a classification corpus, a whole
contract in an NER corpus) becomes one training batch, and its transformer activations can
exhaust the memory of any machine. spaCy's own `max_length` splits such documents into
sentences only when they have sentence boundaries, drops them silently otherwise, and loses
their categories. This reader, registered as "ner_textcat.training_corpus.v1", cuts every
training document longer than `max_length` tokens into pieces of at most that length:

- at sentence boundaries where the document has them, else between tokens, never inside an entity;
- the categories stay with the first piece (the others carry none, so they give the text
  classifier no loss); pieces after the first are kept only if they carry entity annotation.

So a categories-only document is truncated to its first `max_length` tokens, and an entity
document keeps all of its annotation. Only training reads this way; evaluation sees whole documents.
Like every [corpora] setting, it is resolved when training, never when a pipeline is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

from spacy.tokens import Doc
from spacy.training import Corpus
from spacy.util import registry


def piece_ends(doc: Doc, max_length: int) -> list[int]:
    """Token offsets where each training piece of doc ends, the last one len(doc).

    piece_ends(doc, 600) -> [600, 1150, 1400]  # a 1400-token doc
    """
    n = len(doc)
    sentences = doc.has_annotation("SENT_START")
    inside_entity = [token.ent_iob_ == "I" for token in doc]
    ends: list[int] = []
    start = 0
    while n - start > max_length:
        window = range(start + max_length, start, -1)  # a piece ends before token i
        free = [i for i in window if not inside_entity[i]]
        at_sentence = [i for i in free if sentences and doc[i].is_sent_start]
        if at_sentence:
            end = at_sentence[0]
        elif free:
            end = free[0]
        else:  # one entity longer than max_length: end the piece where the entity ends
            end = next((i for i in range(start + max_length, n) if not inside_entity[i]), n)
        ends.append(end)
        start = end
    ends.append(n)
    return ends


def split_long_doc(doc: Doc, max_length: int) -> Iterator[Doc]:
    """The doc itself when it is short enough (or max_length is 0), else its pieces, as above."""
    if max_length <= 0 or len(doc) <= max_length:
        yield doc
        return
    has_entities = doc.has_annotation("ENT_IOB")
    start = 0
    for i, end in enumerate(piece_ends(doc, max_length)):
        if i > 0 and not has_entities:
            return
        piece = doc[start:end].as_doc()
        piece.cats = dict(doc.cats) if i == 0 else {}
        yield piece
        start = end


class SplittingCorpus(Corpus):
    """spaCy's Corpus, reading each document through split_long_doc first."""

    def __init__(self, path: Path, *, split_length: int, **kwargs) -> None:
        super().__init__(path, max_length=0, **kwargs)
        self.split_length = split_length

    def read_docbin(self, vocab, locs) -> Iterator[Doc]:
        for doc in super().read_docbin(vocab, locs):
            yield from split_long_doc(doc, self.split_length)


@registry.readers("ner_textcat.training_corpus.v1")
def create_training_corpus(
    path: Optional[Path],
    gold_preproc: bool = False,
    max_length: int = 0,
    limit: int = 0,
    augmenter: Optional[Callable] = None,
) -> Callable[..., Iterable]:
    if path is None:
        raise ValueError("[corpora.train] path is not set; pass --paths.train corpus/train.spacy")
    return SplittingCorpus(
        path, split_length=max_length, gold_preproc=gold_preproc, limit=limit, augmenter=augmenter
    )
