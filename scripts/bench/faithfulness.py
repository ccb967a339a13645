"""Are the explanations faithful? A deletion check on held-out texts.

    result = deletion_check(nlp, texts, ks=(1, 3), max_evals=200, seed=0)
    result["per_k"][0]["share_top_beats_random"]  # share of texts where it held for k = 1

For each text, the label the pipeline scores highest is explained (scripts.evaluation.explain);
then the k words with the largest weights for it are deleted, and, separately, k words drawn at
random (`draws` times, the drops averaged). The explanation passes on a text when deleting its top
k words lowers that label's score more than deleting random ones. Texts of k words or fewer are
skipped (deleting them all leaves nothing to compare).
"""

from __future__ import annotations

import random
import time
from typing import Sequence, TypedDict

from spacy.language import Language

from scripts.evaluation.explain import (
    delete_words,
    explain_texts,
    pipeline_scores,
    word_spans,
)


class KResult(TypedDict):
    k: int
    texts: int  # texts with more than k words
    share_top_beats_random: float
    mean_drop_top: float  # the explained label's score on the whole text minus after deletion
    mean_drop_random: float


class FaithfulnessResult(TypedDict):
    """The JSON line scripts.bench_explain prints."""

    texts: int
    max_evals: int
    draws: int
    seed: int
    model_calls: int  # texts the pipeline scored: explanations and deletions
    explain_calls_per_text: float
    seconds: float
    per_k: list[KResult]


def deletion_check(
    nlp: Language,
    texts: Sequence[str],
    *,
    ks: Sequence[int] = (1, 3),
    max_evals: int = 200,
    seed: int = 0,
    draws: int = 3,
) -> FaithfulnessResult:
    """Top-k against random-k deletion for each k over the texts (see the module docstring)."""
    rng = random.Random(seed)
    score = pipeline_scores(nlp)
    started = time.perf_counter()
    drops: dict[int, list[tuple[float, float]]] = {k: [] for k in ks}
    explain_calls = deletion_calls = explained = 0
    for text in texts:
        spans = word_spans(nlp, text)
        if len(spans) <= min(ks):
            continue
        (explanation,) = explain_texts(nlp, [text], max_evals=max_evals, score=score)
        explained += 1
        explain_calls += explanation["evals"]
        cats = explanation["cats"]
        label = max(cats, key=lambda name: cats[name])
        weights = [w["weight"] for w in explanation["labels"][label]]
        variants: list[tuple[int, str, str]] = []  # (k, "top" or "random", text)
        for k in ks:
            if len(spans) <= k:
                continue
            top = sorted(range(len(spans)), key=lambda i: -weights[i])[:k]
            variants.append((k, "top", delete_words(text, spans, top)))
            for _ in range(draws):
                variants.append(
                    (k, "random", delete_words(text, spans, rng.sample(range(len(spans)), k)))
                )
        scored = score([v for _, _, v in variants])
        deletion_calls += len(variants)
        for k in ks:
            top_drops = [
                cats[label] - s[label]
                for (kk, kind, _), s in zip(variants, scored)
                if kk == k and kind == "top"
            ]
            random_drops = [
                cats[label] - s[label]
                for (kk, kind, _), s in zip(variants, scored)
                if kk == k and kind == "random"
            ]
            if top_drops:
                drops[k].append((top_drops[0], sum(random_drops) / len(random_drops)))
    per_k = [
        KResult(
            k=k,
            texts=len(pairs),
            share_top_beats_random=round(sum(t > r for t, r in pairs) / len(pairs), 4)
            if pairs
            else 0.0,
            mean_drop_top=round(sum(t for t, _ in pairs) / len(pairs), 4) if pairs else 0.0,
            mean_drop_random=round(sum(r for _, r in pairs) / len(pairs), 4) if pairs else 0.0,
        )
        for k, pairs in drops.items()
    ]
    return FaithfulnessResult(
        texts=explained,
        max_evals=max_evals,
        draws=draws,
        seed=seed,
        model_calls=explain_calls + deletion_calls,
        explain_calls_per_text=round(explain_calls / explained, 1) if explained else 0.0,
        seconds=round(time.perf_counter() - started, 1),
        per_k=per_k,
    )
