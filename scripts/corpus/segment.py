"""Segmenting token runs: where a reader cuts a long run of tagged tokens into documents.

cut_points(words, tags, max_tokens=200)   # -> [187, 391]: cut after these tokens
"""

from __future__ import annotations

MAX_SENTENCE_TOKENS = 200  # longer runs without a sentence break are cut into pieces this long
# Bounded documents keep batches bounded (batch_by_padded discards oversize docs).
MAX_DOC_TOKENS = 1000
SENTENCES_PER_DOC = 10  # without -DOCSTART- markers, like `spacy convert -n 10`
SENTENCE_END = frozenset({".", "!", "?", "。", "！", "？", "…", ";", "；"})


def cut_points(words: list[str], tags: list[str], *, max_tokens: int) -> list[int]:
    """Where to cut a run of tokens into pieces of at most max_tokens: after sentence-final
    punctuation if there is one in the second half of the window, else before any token that is
    not inside an entity (tags are IOB2). An entity longer than the window is kept whole."""
    cuts: list[int] = []
    start, n = 0, len(words)
    while n - start > max_tokens:
        window = range(start + max_tokens, start + max_tokens // 2, -1)
        allowed = [i for i in window if not tags[i].startswith("I-")]
        best = next((i for i in allowed if words[i - 1] in SENTENCE_END), None)
        if best is None:
            best = (
                allowed[0]
                if allowed
                else next(
                    (i for i in range(start + max_tokens + 1, n) if not tags[i].startswith("I-")), n
                )
            )
        if best >= n:
            break
        cuts.append(best)
        start = best
    return cuts
