"""Splitting a corpus into train/dev/test: sizes, and a stratified assignment that a seed fixes.

assign_splits(["bug", "bug", "question"], sizes=(1, 1, 1), seed=0)   # -> [2, 0, 1]
"""

from __future__ import annotations

import random
from collections import Counter

from scripts.common.cats import POSITIVE


class SplitError(ValueError):
    """Too few documents for the requested split."""


def split_sizes(n: int, fractions: tuple[float, float, float]) -> tuple[int, int, int]:
    """Document counts for train/dev/test: at least one for each non-zero fraction."""
    dev = max(1, round(n * fractions[1])) if fractions[1] > 0 else 0
    test = max(1, round(n * fractions[2])) if fractions[2] > 0 else 0
    if n - dev - test < 1:
        raise SplitError(
            f"{n} document(s) cannot give train, dev ({dev}) and test ({test}) at least one each"
        )
    return n - dev - test, dev, test


def assign_splits(keys: list[str], *, sizes: tuple[int, int, int], seed: int) -> list[int]:
    """Split index (0 train, 1 dev, 2 test) per document, stratified by key, the same for a seed.

    Each document gets a score (its shuffled rank in its key group + a random fraction) / group
    size, so any prefix of the score order holds every key in proportion; dev and test take the
    lowest scores."""
    rng = random.Random(seed)
    groups: dict[str, list[int]] = {}
    for index, key in enumerate(keys):
        groups.setdefault(key, []).append(index)
    scored: list[tuple[float, int]] = []
    for key in sorted(groups):
        members = groups[key]
        rng.shuffle(members)
        scored.extend(
            ((rank + rng.random()) / len(members), index) for rank, index in enumerate(members)
        )
    scored.sort()
    assignment = [0] * len(keys)
    _, dev, test = sizes
    for position, (_, index) in enumerate(scored):
        assignment[index] = 1 if position < dev else 2 if position < dev + test else 0
    return assignment


def stratum(cats: dict[str, float], frequency: Counter[str]) -> str:
    """The key a classification document is stratified by: its rarest positive label."""
    positive = [label for label, value in cats.items() if value >= POSITIVE]
    if not positive:
        return "" if not cats else "(none)"
    return min(positive, key=lambda label: (frequency[label], label))
