"""Training batches for text classification alone: the same number of documents in each batch.

    [training.batcher]
    @batchers = "ner_textcat.batch_by_docs.v1"
    size = 1000

spaCy's `batch_by_padded` fills each batch up to `size` padded words, so its batches hold 200
titles of 5 words or 2 issues of 500. Each training step then moves the weights about as far
(the optimizer clips every step's gradients to one norm, optimizers.py), and a document in a
batch of two counts a hundred times as much as one in a batch of two hundred. For the entity
recognizer words are the examples and that is right; for a classifier documents are: on a corpus
of mostly short texts with some long ones, the short ones get a small share of the updates
(BENCHMARKS.md). A Hugging Face `Trainer` gives every batch the same number of documents.

"ner_textcat.batch_by_docs.v1" takes spaCy's settings (`size` words, `buffer`, `discard_oversize`,
`get_length`) and keeps their meaning on average: it gathers `buffer` documents, sorts them by
length (so batches pad little) and cuts them into batches of n documents, with n chosen so
that a batch holds `size` words on average (n = size * documents / words in the buffer), and
closes a batch early where its padded words would pass `size`, as spaCy's does, so that memory
stays bounded when a buffer holds a few very long documents. The batches of a buffer come out in
random order (spaCy seeds `random`). With `discard_oversize`, documents longer than `size` are
left out. The config step (config.py) uses it for pipelines without `ner`.
"""

from __future__ import annotations

import random
from typing import Any, Callable, Iterable, Iterator, Optional, TypeVar

from spacy.util import registry

ItemT = TypeVar("ItemT")


def docs_per_batch(lengths: list[int], size: int) -> int:
    """Documents per batch for batches of `size` words on average.

    docs_per_batch([5, 15], 40) == 4
    """
    return max(1, round(size * len(lengths) / max(1, sum(lengths))))


def batch_by_docs(
    items: Iterable[ItemT],
    *,
    size: int,
    buffer: int = 256,
    discard_oversize: bool = False,
    get_length: Callable[[ItemT], int] = len,
) -> Iterator[list[ItemT]]:
    """Batches of an equal number of items per buffer, sorted by length, in random order."""
    if size < 1 or buffer < 1:
        raise ValueError(f"batch_by_docs: size ({size}) and buffer ({buffer}) must be 1 or more")
    pool: list[tuple[int, ItemT]] = []
    for item in items:
        length = get_length(item)
        if discard_oversize and length > size:
            continue
        pool.append((length, item))
        if len(pool) == buffer:
            yield from _cut(pool, size)
            pool = []
    if pool:
        yield from _cut(pool, size)


def _cut(pool: list[tuple[int, Any]], size: int) -> Iterator[list[Any]]:
    """n documents per batch, fewer where n of them would pad to more than `size` words."""
    n = docs_per_batch([length for length, _ in pool], size)
    batches: list[list[Any]] = []
    batch: list[Any] = []
    for length, item in sorted(pool, key=lambda pair: pair[0]):
        if batch and (len(batch) >= n or (len(batch) + 1) * length > size):
            batches.append(batch)
            batch = []
        batch.append(item)
    if batch:
        batches.append(batch)
    random.shuffle(batches)
    yield from batches


@registry.batchers("ner_textcat.batch_by_docs.v1")
def configure_batch_by_docs(
    size: int,
    buffer: int = 256,
    discard_oversize: bool = False,
    get_length: Optional[Callable[[Any], int]] = None,
) -> Callable[[Iterable[Any]], Iterator[list[Any]]]:
    length = get_length or len

    def batch(items: Iterable[Any]) -> Iterator[list[Any]]:
        return batch_by_docs(
            items, size=size, buffer=buffer, discard_oversize=discard_oversize, get_length=length
        )

    return batch
