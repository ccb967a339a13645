"""How unsure a pipeline is about one text, in [0, 1] (0: sure): what the Label Studio loop orders
the unlabelled tasks by, the least sure first. Label Studio sorts by a prediction's `score` and
its uncertainty sampling serves the lowest first, so a Label Studio prediction's score is the
certainty, 1 - uncertainty.

The rules (`--uncertainty`):

- "margin" (the default).
  - Categories, one label per text: 1 - (top score - second score). Two labels at 0.5 and 0.5
    give 1; 0.9 and 0.1 give 0.2.
  - Categories, several labels per text: for each label the distance of its score from the
    threshold, as a share of the way to 0 or 1 on its side; the uncertainty is 1 minus the
    smallest. At threshold 0.5, scores 0.9 and 0.45 give 1 - 0.1 = 0.9.
  - Entities: 1 - the lowest entity score of the text. A text without entities: 1 - the
    probability the recognizer gave its parse (no entity at any token).
- "entropy": the entropy of the category scores over log(number of labels) (one label per text)
  or the highest binary entropy of a label's score (several labels), and for entities the binary
  entropy of the lowest entity score (or of the no-entity parse's probability), in bits.
- "least-confident": 1 - the top category score (one label per text; several labels: as
  margin), and for entities as margin.

A pipeline with both entities and categories: the larger of the two uncertainties, the least sure
decision on the text. A pipeline with neither scores gives None (no order).

    uncertainty({"POS": 0.55, "NEG": 0.45}, exclusive=True)             # -> 0.9
    uncertainty({}, entity_scores=[0.98, 0.4])                          # -> 0.6
    uncertainty({"POS": 0.9, "NEG": 0.1}, entity_scores=[0.7])          # -> 0.3
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

from spacy.language import Language
from spacy.tokens import Doc

from scripts.common.spacy_internals import parse_probabilities
from scripts.scoring.entity_confidence import entity_confidence_names

MARGIN, ENTROPY, LEAST_CONFIDENT = "margin", "entropy", "least-confident"
RULES = (MARGIN, ENTROPY, LEAST_CONFIDENT)


def check_rule(rule: str) -> str:
    if rule not in RULES:
        raise ValueError(f"--uncertainty {rule!r} is not a rule; pass one of {', '.join(RULES)}")
    return rule


def uncertainty(
    cats: dict[str, float],
    *,
    exclusive: bool = True,
    threshold: float = 0.5,
    entity_scores: Optional[Sequence[float]] = None,
    parse_probability: Optional[float] = None,
    rule: str = MARGIN,
) -> Optional[float]:
    """The text's uncertainty by `rule` (module docstring): the larger of its categories' and its
    entities'; entity_scores None (or empty with no parse_probability): no entity uncertainty."""
    check_rule(rule)
    found = [
        value
        for value in (
            category_uncertainty(cats, exclusive=exclusive, threshold=threshold, rule=rule),
            entity_uncertainty(entity_scores, parse_probability=parse_probability, rule=rule),
        )
        if value is not None
    ]
    return max(found) if found else None


def category_uncertainty(
    cats: dict[str, float], *, exclusive: bool, threshold: float, rule: str
) -> Optional[float]:
    scores = [min(1.0, max(0.0, float(s))) for s in cats.values()]
    if not scores:
        return None
    if exclusive:
        ranked = sorted(scores, reverse=True)
        if rule == ENTROPY:
            if len(scores) < 2:
                return binary_entropy(ranked[0])
            total = sum(scores) or 1.0
            spread = -sum(s / total * math.log(s / total) for s in scores if s > 0)
            return clip(spread / math.log(len(scores)))
        if rule == LEAST_CONFIDENT:
            return clip(1.0 - ranked[0])
        second = ranked[1] if len(ranked) > 1 else 1.0 - ranked[0]
        return clip(1.0 - (ranked[0] - second))
    if rule == ENTROPY:
        return max(binary_entropy(s) for s in scores)
    return max(1.0 - threshold_distance(s, threshold) for s in scores)


def entity_uncertainty(
    entity_scores: Optional[Sequence[float]], *, parse_probability: Optional[float], rule: str
) -> Optional[float]:
    scores = list(entity_scores or ())
    sure = min(scores) if scores else parse_probability
    if sure is None:
        return None
    sure = min(1.0, max(0.0, float(sure)))
    return binary_entropy(sure) if rule == ENTROPY else clip(1.0 - sure)


def threshold_distance(score: float, threshold: float) -> float:
    """How far a score is from the threshold, as a share of the way to 1 (above it) or to 0 (below
    it), e.g. threshold_distance(0.75, 0.5) -> 0.5."""
    room = (1.0 - threshold) if score >= threshold else threshold
    return clip(abs(score - threshold) / room) if room > 0 else 1.0


def binary_entropy(p: float) -> float:
    """In bits: 1 at 0.5, 0 at 0 and 1."""
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return clip(-(p * math.log2(p) + (1 - p) * math.log2(1 - p)))


def clip(value: float) -> float:
    return min(1.0, max(0.0, value))


def no_entity_probabilities(nlp: Language, docs: Sequence[Doc]) -> list[Optional[float]]:
    """For each doc without entities, the probability the pipeline's entity recognizer gave its
    parse (no entity at any token); None for a doc with entities, and for every doc of a pipeline
    that does not score its entities (no entity_confidence component running)."""
    found: list[Optional[float]] = [None] * len(docs)
    running = [name for name in entity_confidence_names(nlp) if name in nlp.pipe_names]
    if not running:
        return found
    ner = nlp.get_pipe(nlp.get_pipe(running[0]).ner)
    empty = [i for i, doc in enumerate(docs) if not doc.ents and len(doc)]
    for i, probability in zip(empty, parse_probabilities(ner, [docs[i] for i in empty])):
        found[i] = probability
    return found
