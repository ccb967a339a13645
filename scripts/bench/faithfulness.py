"""Are the explanations faithful? A deletion check on held-out texts.

    result = deletion_check(nlp, texts, ks=(1, 3), max_evals=200, seed=0, method="lime")
    result["per_k"][0]["share_top_beats_random"]  # share of texts where it held for k = 1

For each text, the label the pipeline scores highest is explained (scripts.evaluation.explain, by
`method`); then the k words with the largest weights for it are deleted, and, separately, k words
drawn at random (`draws` times, the drops averaged). The explanation passes on a text when
deleting its top k words lowers that label's score more than deleting random ones. Texts of k
words or fewer are skipped (deleting them all leaves nothing to compare). The random words are
drawn from all the words, the top ones included. With details=True the result also has one
TextDetail per text, including the drop from deleting each word alone (leave-one-out, one more
text scored per word), to see whether the explanation's top word is the one whose deletion moves
the score most.
"""

from __future__ import annotations

import random
import time
from typing import Sequence, TypedDict

from spacy.language import Language

from scripts.evaluation.explain import (
    DEFAULT_METHOD,
    cat_labels,
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


class TextDetail(TypedDict):
    index: int  # position in the texts given
    words: int
    label: str  # the label explained: the highest-scored one
    score: float
    evals: int  # texts scored for the explanation (below max_evals: every cluster resolved)
    top_word: str
    top_weight: float
    drop_top: dict[int, float]  # k -> drop from deleting the top k words
    drop_random: dict[int, list[float]]  # k -> the drop of each random draw
    random_hit_top: dict[int, int]  # k -> draws that deleted at least one of the top k words
    leave_one_out: list[float]  # drop from deleting each word alone, in text order
    top_word_rank: int  # 1 = the top word's deletion drops the score most of all words


class FaithfulnessResult(TypedDict, total=False):
    """The JSON line scripts.bench_explain prints."""

    texts: int
    method: str
    max_evals: int
    draws: int
    seed: int
    model_calls: int  # texts the pipeline scored: explanations and deletions
    explain_calls_per_text: float
    seconds: float
    per_k: list[KResult]
    details: list[TextDetail]  # only with details=True


def deletion_check(
    nlp: Language,
    texts: Sequence[str],
    *,
    ks: Sequence[int] = (1, 3),
    max_evals: int = 200,
    seed: int = 0,
    draws: int = 3,
    details: bool = False,
    method: str = DEFAULT_METHOD,
) -> FaithfulnessResult:
    """Top-k against random-k deletion for each k over the texts (see the module docstring)."""
    rng = random.Random(seed)
    score = pipeline_scores(nlp)
    started = time.perf_counter()
    drops: dict[int, list[tuple[float, float]]] = {k: [] for k in ks}
    explain_calls = deletion_calls = explained = 0
    text_details: list[TextDetail] = []
    for index, text in enumerate(texts):
        spans = word_spans(nlp, text)
        if len(spans) <= min(ks):
            continue
        (explanation,) = explain_texts(
            nlp, [text], labels=cat_labels(nlp), max_evals=max_evals, method=method, score=score
        )
        explained += 1
        explain_calls += explanation["evals"]
        cats = explanation["cats"]
        label = max(cats, key=lambda name: cats[name])
        weights = [w["weight"] for w in explanation["labels"][label]]
        # the top words: largest weight for the label (signed: those that pushed its score up)
        order = sorted(range(len(spans)), key=lambda i: -weights[i])
        variants: list[tuple[int, str, str]] = []  # (k, "top" or "random", text)
        hits: dict[int, int] = {}
        for k in ks:
            if len(spans) <= k:
                continue
            variants.append((k, "top", delete_words(text, spans, order[:k])))
            hits[k] = 0
            for _ in range(draws):
                drawn = rng.sample(range(len(spans)), k)
                hits[k] += bool(set(drawn) & set(order[:k]))
                variants.append((k, "random", delete_words(text, spans, drawn)))
        alone = [delete_words(text, spans, [i]) for i in range(len(spans))] if details else []
        scored = score([v for _, _, v in variants] + alone)
        deletion_calls += len(variants) + len(alone)
        for k in ks:
            top_drops = [
                cats[label] - s["cats"][label]
                for (kk, kind, _), s in zip(variants, scored)
                if kk == k and kind == "top"
            ]
            random_drops = [
                cats[label] - s["cats"][label]
                for (kk, kind, _), s in zip(variants, scored)
                if kk == k and kind == "random"
            ]
            if top_drops:
                drops[k].append((top_drops[0], sum(random_drops) / len(random_drops)))
        if details:
            loo = [cats[label] - s["cats"][label] for s in scored[len(variants) :]]
            text_details.append(
                TextDetail(
                    index=index,
                    words=len(spans),
                    label=label,
                    score=cats[label],
                    evals=explanation["evals"],
                    top_word=text[slice(*spans[order[0]])],
                    top_weight=weights[order[0]],
                    drop_top={
                        k: round(cats[label] - s["cats"][label], 6)
                        for (k, kind, _), s in zip(variants, scored)
                        if kind == "top"
                    },
                    drop_random={
                        k: [
                            round(cats[label] - s["cats"][label], 6)
                            for (kk, kind, _), s in zip(variants, scored)
                            if kk == k and kind == "random"
                        ]
                        for k in hits
                    },
                    random_hit_top=hits,
                    leave_one_out=[round(d, 6) for d in loo],
                    top_word_rank=1 + sum(d > loo[order[0]] for d in loo),
                )
            )
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
    result = FaithfulnessResult(
        texts=explained,
        method=method,
        max_evals=max_evals,
        draws=draws,
        seed=seed,
        model_calls=explain_calls + deletion_calls,
        explain_calls_per_text=round(explain_calls / explained, 1) if explained else 0.0,
        seconds=round(time.perf_counter() - started, 1),
        per_k=per_k,
    )
    if details:
        result["details"] = text_details
    return result
