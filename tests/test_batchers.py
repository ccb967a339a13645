import random

import pytest
from spacy.util import registry

from scripts.training.batchers import batch_by_docs, docs_per_batch


def lengths_of(batches):
    return [[len(item) for item in batch] for batch in batches]


def test_documents_per_batch_give_size_words_on_average():
    assert docs_per_batch([5, 15], 40) == 4
    assert docs_per_batch([500] * 4, 1000) == 2
    assert docs_per_batch([2000], 1000) == 1  # never zero
    assert docs_per_batch([0, 0], 1000) == 2000  # empty documents: the words bound is all there is


def test_every_document_once_short_ones_in_equal_counts_long_ones_bounded_by_padding():
    # Short titles and long threads: padded batching would put 100 titles in one batch and the
    # threads two by two; here titles go n to a batch, n for 1,000 words on average, and the
    # threads stay two by two because three would pad past 1,000 words.
    items = [range(5)] * 60 + [range(400)] * 20
    random.Random(1).shuffle(items)
    random.seed(0)
    batches = list(batch_by_docs(items, size=1000, buffer=80))
    n = docs_per_batch([len(item) for item in items], 1000)
    assert n == round(1000 * 80 / (60 * 5 + 20 * 400)) == 10
    assert sorted(lengths_of(batches)) == sorted([[5] * 10] * 6 + [[400] * 2] * 10)
    assert sorted(map(id, (item for batch in batches for item in batch))) == sorted(map(id, items))
    assert lengths_of(batches) != sorted(lengths_of(batches))  # shuffled


def test_each_buffer_is_cut_on_its_own_and_the_order_follows_the_seed():
    items = [range(10)] * 40 + [range(100)] * 40  # the second buffer holds the long ones
    random.seed(3)
    first = lengths_of(batch_by_docs(items, size=200, buffer=40))
    random.seed(3)
    again = lengths_of(batch_by_docs(items, size=200, buffer=40))
    assert first == again
    assert sorted(first) == [[10] * 20] * 2 + [[100] * 2] * 20
    # Batches of one document each (n = 1): only the shuffle orders them, and it is not sorted.
    random.seed(4)
    order = [
        batch[0] for batch in batch_by_docs([range(n) for n in range(1, 41)], size=20, buffer=40)
    ]
    assert len(order) == 40 and [len(item) for item in order] != list(range(1, 41))


def test_discard_oversize_leaves_out_documents_longer_than_size():
    items = [range(5), range(50), range(5), range(51)]
    kept = [
        len(item)
        for batch in batch_by_docs(items, size=50, buffer=10, discard_oversize=True)
        for item in batch
    ]
    assert sorted(kept) == [5, 5, 50]
    everything = [len(item) for batch in batch_by_docs(items, size=50, buffer=10) for item in batch]
    assert sorted(everything) == [5, 5, 50, 51]


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="size"):
        list(batch_by_docs([range(3)], size=0))


def test_registered_batcher_takes_spacy_padded_settings():
    make = registry.resolve(
        {
            "b": {
                "@batchers": "ner_textcat.batch_by_docs.v1",
                "size": 20,
                "buffer": 8,
                "discard_oversize": False,
                "get_length": None,
            }
        }
    )["b"]
    batches = list(make([range(5)] * 8))
    assert [len(batch) for batch in batches] == [4, 4]
