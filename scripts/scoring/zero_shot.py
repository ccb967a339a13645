"""Categories before any annotation: each text scored by how close its sentence embedding is to
that of each category's name or description, with a sentence encoder (by default the embedded
all-MiniLM-L6-v2, offline). What the cold-start model (scripts/inference/cold_start.py) predicts
categories with until a first retraining trains a text classifier.

    import scripts.scoring.zero_shot  # registers the factory (scripts.scoring.pipeline does)
    nlp = spacy.blank("en")
    nlp.add_pipe("zero_shot_categories", config={
        "labels": ["BUG", "DOCS"],
        "descriptions": {"DOCS": "a problem with the documentation"}})
    nlp("The tutorial has a typo").cats        # DOCS above 0.5, BUG the rest

The encoder embeds a text as the mean of its last layer's word-piece vectors, normalized (the
sentence-transformers recipe), cut at max_length word pieces. One label per text: the scores are
a softmax over the cosine similarities times `scale`, 20 by default, the scale all-MiniLM-L6-v2
was trained with to pick the matching text among candidates, so the scores are its own odds.
"""

# No `from __future__ import annotations`: spaCy builds pydantic models from the factory's
# annotations, which must be real types.
from typing import Any, Iterable, Iterator, Optional, Sequence

from spacy.language import Language
from spacy.tokens import Doc

from scripts.common.base_model import resolve_base_model
from scripts.common.cats import POSITIVE

ZERO_SHOT = "zero_shot_categories"
ENCODER = "sentence-transformers/all-MiniLM-L6-v2"


class ZeroShotCategories:
    """Sets doc.cats from the similarity of each text to each category's description."""

    def __init__(
        self,
        nlp: Language,
        name: str,
        *,
        labels: Sequence[str],
        descriptions: dict[str, str],
        encoder: str,
        scale: float,
        max_length: int,
        batch_size: int,
    ) -> None:
        if not labels:
            raise ValueError(f"{name}: no labels; pass the categories, e.g. labels ['BUG', 'DOCS']")
        unknown = sorted(set(descriptions) - set(labels))
        if unknown:
            raise ValueError(f"{name}: descriptions of labels it does not have: {unknown}")
        self.name, self.lang = name, nlp.lang
        self.labels = tuple(labels)
        self.descriptions = {label: descriptions.get(label) or label for label in labels}
        self.encoder, self.scale = encoder, scale
        self.max_length, self.batch_size = max_length, batch_size
        # what evaluation and the server read to tell one label per text from several
        self.cfg = {"exclusive_classes": True, "threshold": POSITIVE, "labels": list(labels)}
        self._model: Any = None
        self._tokenizer: Any = None
        self._label_vectors: Any = None

    def __call__(self, doc: Doc) -> Doc:
        return next(self.pipe([doc]))

    def pipe(self, stream: Iterable[Doc], *, batch_size: Optional[int] = None) -> Iterator[Doc]:
        size = batch_size or self.batch_size
        batch: list[Doc] = []
        for doc in stream:
            batch.append(doc)
            if len(batch) >= size:
                yield from self._score(batch)
                batch = []
        if batch:
            yield from self._score(batch)

    def _score(self, docs: list[Doc]) -> list[Doc]:
        import torch

        similarities = self.embed([doc.text for doc in docs]) @ self.label_vectors().T
        scores = torch.softmax(similarities * self.scale, dim=-1).tolist()
        for doc, row in zip(docs, scores):
            doc.cats = {label: float(score) for label, score in zip(self.labels, row)}
        return docs

    def label_vectors(self) -> Any:
        if self._label_vectors is None:
            self._label_vectors = self.embed([self.descriptions[label] for label in self.labels])
        return self._label_vectors

    def embed(self, texts: list[str]) -> Any:
        """Normalized mean-pooled embeddings, one row per text."""
        import torch

        model, tokenizer = self.load()
        encoded = tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        with torch.no_grad():
            hidden = model(**encoded).last_hidden_state
        mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1)

    def load(self) -> tuple[Any, Any]:
        """The encoder and its tokenizer, loaded at the first text."""
        if self._model is None:
            from transformers import AutoModel, AutoTokenizer

            location = resolve_base_model(self.encoder, lang=self.lang, check_hub=False).location
            self._tokenizer = AutoTokenizer.from_pretrained(location)
            self._model = AutoModel.from_pretrained(location).eval()
        return self._model, self._tokenizer


@Language.factory(
    ZERO_SHOT,
    assigns=["doc.cats"],
    default_config={
        "labels": [],
        "descriptions": {},
        "encoder": ENCODER,
        "scale": 20.0,
        "max_length": 256,
        "batch_size": 32,
    },
)
def make_zero_shot_categories(
    nlp: Language,
    name: str,
    labels: list[str],
    descriptions: dict[str, str],
    encoder: str,
    scale: float,
    max_length: int,
    batch_size: int,
) -> ZeroShotCategories:
    return ZeroShotCategories(
        nlp,
        name,
        labels=labels,
        descriptions=descriptions,
        encoder=encoder,
        scale=scale,
        max_length=max_length,
        batch_size=batch_size,
    )
