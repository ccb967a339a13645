"""A confidence in [0, 1] for every entity the entity recognizer predicts: the "entity_confidence"
pipeline component, after "ner". The train step adds it, calibrated on the dev set, and saves it
disabled (spaCy's `[nlp] disabled`), so that plain `nlp.pipe` pays nothing for it; turn it on with

    nlp = spacy.load("en_job_postings")
    nlp.enable_pipe("entity_confidence")
    doc = nlp("Python and SQL are required.")
    group = doc.spans["ents_scored"]                   # the entities of doc.ents, in order
    list(zip(group, group.attrs["scores"]))            # [(Python, 0.98), (SQL, 0.91)]
    entity_scores(doc)                                 # [0.98, 0.91]: one per entity of doc.ents

The entities stay the recognizer's own (greedy) ones: the component only adds their scores. The
score of an entity starts from the probability the recognizer gave the actions that made it (the
softmax of its scores for the action taken at each of the entity's tokens and at the token before
it, which kept the entity from starting earlier, multiplied; the config's `probabilities`), and is
then calibrated: score = sigmoid(scale * logit(probability) + shift), with scale and shift fitted
on the dev set so that entities scored 0.8 are right about 80% of the time
(scripts/scoring/calibration.py). Scores live in a SpanGroup, as spaCy's span categorizer keeps its
own (`attrs["scores"]`), so they travel with Doc.to_bytes and DocBin.

This file ships inside the packaged pipeline (`spacy package --code`, which imports it on its own):
it imports spaCy's public API only, and reaches the recognizer's internals through the registered
function its config names (ENTITY_PROBABILITIES, scripts/common/spacy_internals.py, which ships
beside it).
"""

# No `from __future__ import annotations`: spaCy checks factory arguments against their types.
import math
from typing import Any, Callable, Iterable, Iterator, Optional

from spacy.language import Language
from spacy.tokens import Doc, SpanGroup
from spacy.util import minibatch

ENTITY_CONFIDENCE = "entity_confidence"
SPANS_KEY = "ents_scored"
# Defined in scripts/common/spacy_internals.py (registry.misc), named here by its string only:
# the greedy parse's action probabilities with the left boundary (v1, without it, is what
# pipelines saved before it name).
ENTITY_PROBABILITIES = "ner_textcat.entity_action_probabilities.v2"
# Keeps logit() finite: a probability of exactly 0 or 1 still ranks below or above the rest.
EPSILON = 1e-7
DEFAULT_CONFIG = {
    "ner": "ner",
    "spans_key": SPANS_KEY,
    "probabilities": {"@misc": ENTITY_PROBABILITIES},
    "scale": 1.0,
    "shift": 0.0,
}


class EntityConfidence:
    """Scores the entities of doc.ents into doc.spans[spans_key] (attrs["scores"], aligned); the
    component's factory, its keyword arguments the config's."""

    def __init__(
        self,
        nlp: Language,
        name: str,
        *,
        ner: str,
        spans_key: str,
        probabilities: Callable[..., list],
        scale: float,
        shift: float,
    ) -> None:
        self.nlp = nlp
        self.name = name
        self.ner = ner
        self.spans_key = spans_key
        self.probabilities = probabilities
        self.scale = scale
        self.shift = shift

    def __call__(self, doc: Doc) -> Doc:
        return self.set_scores([doc])[0]

    def pipe(self, stream: Iterable[Doc], *, batch_size: int = 128) -> Iterator[Doc]:
        for batch in minibatch(stream, size=batch_size):
            yield from self.set_scores(list(batch))

    def set_scores(self, docs: list[Doc]) -> list[Doc]:
        """Write the scored entities of each doc into doc.spans[spans_key]; return the docs."""
        if self.ner not in self.nlp.pipe_names:
            raise ValueError(
                f"[{self.name}] scores the entities of the component '{self.ner}', which the "
                f"pipeline does not run ({', '.join(self.nlp.pipe_names)}); set "
                f"components.{self.name}.ner to the entity recognizer's name"
            )
        with_ents = [doc for doc in docs if doc.ents]  # a doc without entities has nothing to score
        found = self.probabilities(self.nlp.get_pipe(self.ner), with_ents) if with_ents else []
        by_doc = {id(doc): probabilities for doc, probabilities in zip(with_ents, found)}
        for doc in docs:
            probabilities = by_doc.get(id(doc), {})
            ents = list(doc.ents)
            scores = [
                calibrated(
                    probabilities.get((e.start, e.end, e.label_), 0.0),
                    scale=self.scale,
                    shift=self.shift,
                )
                for e in ents
            ]
            doc.spans[self.spans_key] = SpanGroup(
                doc, name=self.spans_key, spans=ents, attrs={"scores": scores}
            )
        return docs


def calibrated(probability: float, *, scale: float, shift: float) -> float:
    """sigmoid(scale * logit(probability) + shift); scale 1 and shift 0 keep the probability,
    e.g. calibrated(0.9, scale=0.5, shift=0.0) -> 0.75."""
    if scale == 1.0 and shift == 0.0:  # as is, to the bit (logit would clip 0 and 1)
        return float(probability)
    return sigmoid(scale * logit(probability) + shift)


def logit(probability: float) -> float:
    p = min(1.0 - EPSILON, max(EPSILON, float(probability)))
    return math.log(p / (1.0 - p))


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def entity_scores(doc: Doc, *, spans_key: str = SPANS_KEY) -> Optional[list[Optional[float]]]:
    """The score of each entity of doc.ents (None for one the component did not score), or None
    where the doc has no scores at all, e.g. entity_scores(nlp("Python")) -> [0.98]."""
    if spans_key not in doc.spans:
        return None
    group = doc.spans[spans_key]
    scores = group.attrs.get("scores")
    if scores is None or len(scores) != len(group):
        return None
    by_span = {(span.start, span.end, span.label_): float(s) for span, s in zip(group, scores)}
    return [by_span.get((ent.start, ent.end, ent.label_)) for ent in doc.ents]


def entity_confidence_names(nlp: Language) -> list[str]:
    """The pipeline's entity_confidence components, enabled or not."""
    return [
        name for name in nlp.component_names if nlp.get_pipe_meta(name).factory == ENTITY_CONFIDENCE
    ]


def has_entity_confidence(nlp: Language) -> bool:
    """Whether a loaded pipeline scores its entities (runs an entity_confidence component)."""
    return any(name in nlp.pipe_names for name in entity_confidence_names(nlp))


def enable_entity_confidence(nlp: Language) -> bool:
    """Turn on the pipeline's disabled entity_confidence components, as
    nlp.enable_pipe("entity_confidence") does; say whether it now scores its entities."""
    for name in entity_confidence_names(nlp):
        if name in nlp.disabled:
            nlp.enable_pipe(name)
    return has_entity_confidence(nlp)


def add_entity_confidence(nlp: Language, *, ner: str = "ner", **config: Any) -> bool:
    """Add the component right after `ner` to a loaded pipeline that has that recognizer and no
    entity_confidence yet (enabled or not); say whether it was added, e.g.
    add_entity_confidence(nlp, scale=0.6, shift=-0.2)."""
    if ner not in nlp.pipe_names or entity_confidence_names(nlp):
        return False
    nlp.add_pipe(ENTITY_CONFIDENCE, after=ner, config={"ner": ner, **config})
    return True


if not Language.has_factory(ENTITY_CONFIDENCE):
    Language.factory(
        ENTITY_CONFIDENCE,
        assigns=["doc.spans"],
        requires=["doc.ents"],
        default_config=DEFAULT_CONFIG,
    )(EntityConfidence)  # built from its config (DEFAULT_CONFIG) by its constructor
