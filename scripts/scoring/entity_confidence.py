"""A confidence in [0, 1] for every entity the entity recognizer predicts: the "entity_confidence"
pipeline component, added after "ner" (the train step adds it; scripts.add_confidence adds it to a
pipeline trained before).

    nlp.add_pipe("entity_confidence", after="ner")
    doc = nlp("Python and SQL are required.")
    group = doc.spans["ents_scored"]                   # the entities of doc.ents, in order
    list(zip(group, group.attrs["scores"]))            # [(Python, 0.98), (SQL, 0.91)]
    entity_scores(doc)                                 # [0.98, 0.91]: one per entity of doc.ents

The entities stay the recognizer's own (greedy) ones: the component only adds their scores. The
score of an entity is its marginal probability under a beam search of the same trained recognizer
(spaCy's beam_ner machinery, run at inference only): the summed probability of the beam's parses
that hold this span with this label; 0 where none does. Scores live in a SpanGroup, as spaCy's span
categorizer keeps its own (`attrs["scores"]`), so they travel with Doc.to_bytes and DocBin.

This file ships inside the packaged pipeline (`spacy package --code`, which imports it on its own):
it imports spaCy's public API only, and reaches the beam search, which is not public API, through
the registered function its config names (ENTITY_PROBABILITIES, scripts/common/spacy_internals.py,
which ships beside it).
"""

# No `from __future__ import annotations`: spaCy checks factory arguments against their types.
from typing import Any, Callable, Iterable, Iterator, Optional

from spacy.language import Language
from spacy.tokens import Doc, SpanGroup
from spacy.util import minibatch

ENTITY_CONFIDENCE = "entity_confidence"
SPANS_KEY = "ents_scored"
# Defined in scripts/common/spacy_internals.py (registry.misc), named here by its string only.
ENTITY_PROBABILITIES = "ner_textcat.entity_beam_probabilities.v1"
DEFAULT_CONFIG = {
    "ner": "ner",
    "spans_key": SPANS_KEY,
    "beam_width": 16,
    "beam_density": 0.0001,
    "probabilities": {"@misc": ENTITY_PROBABILITIES},
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
        beam_width: int,
        beam_density: float,
        probabilities: Callable[..., list],
    ) -> None:
        self.nlp = nlp
        self.name = name
        self.ner = ner
        self.spans_key = spans_key
        self.beam_width = beam_width
        self.beam_density = beam_density
        self.probabilities = probabilities

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
                f"pipeline does not have ({', '.join(self.nlp.pipe_names)}); set "
                f"components.{self.name}.ner to the entity recognizer's name"
            )
        with_ents = [doc for doc in docs if doc.ents]  # a doc without entities has nothing to score
        found = (
            self.probabilities(
                self.nlp.get_pipe(self.ner),
                with_ents,
                beam_width=self.beam_width,
                beam_density=self.beam_density,
            )
            if with_ents
            else []
        )
        by_doc = {id(doc): probabilities for doc, probabilities in zip(with_ents, found)}
        for doc in docs:
            probabilities = by_doc.get(id(doc), {})
            ents = list(doc.ents)
            scores = [
                min(1.0, max(0.0, float(probabilities.get((e.start, e.end, e.label_), 0.0))))
                for e in ents
            ]
            doc.spans[self.spans_key] = SpanGroup(
                doc, name=self.spans_key, spans=ents, attrs={"scores": scores}
            )
        return docs


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


def has_entity_confidence(nlp: Language) -> bool:
    """Whether a loaded pipeline scores its entities (has an entity_confidence component)."""
    return any(nlp.get_pipe_meta(name).factory == ENTITY_CONFIDENCE for name in nlp.pipe_names)


def add_entity_confidence(nlp: Language, *, ner: str = "ner", **config: Any) -> bool:
    """Add the component right after `ner` to a loaded pipeline that has that recognizer and no
    entity_confidence yet; say whether it was added, e.g. add_entity_confidence(nlp)."""
    if ner not in nlp.pipe_names or has_entity_confidence(nlp):
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
