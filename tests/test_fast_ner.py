"""fast_ner (scripts/common/spacy_internals.py, opt-in with package --fast-ner): spaCy's entity
recognizer with the greedy loop run holding the GIL finds exactly the entities spaCy's own finds,
from the same saved weights."""

from __future__ import annotations

from pathlib import Path

import numpy
import pytest
import spacy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spacy.training import Example

from scripts.common.spacy_internals import FAST_NER, FastEntityRecognizer

LABELS = ["SKILL", "DIPLOMA", "EXPERIENCE", "ORG"]
NEVER_TRAINED = "LOCATION"  # a label without examples: its actions stay unseen by the model
WORDS = [
    "Python",
    "SQL",
    "a",
    "BSc",
    "in",
    "nursing",
    "5",
    "years",
    "of",
    "experience",
    ".",
    ",",
    "We",
    "need",
    "Acme",
    "Corp",
    "\n",
    "ICU",
    "and",
    "-",
    "MSc",
    "the",
]

# A small CNN NER with random weights, without an upper layer (as configs/base.cfg) or with one
# (spaCy's default): its scores vary from token to token, so the decoding takes every kind of
# action, valid and not, seen and unseen.
CONFIG = """
[nlp]
lang = "en"
pipeline = ["tok2vec","ner"]

[components]

[components.tok2vec]
factory = "tok2vec"

[components.tok2vec.model]
@architectures = "spacy.HashEmbedCNN.v2"
pretrained_vectors = null
width = 32
depth = 1
embed_size = 500
window_size = 1
maxout_pieces = 2
subword_features = true

[components.ner]
factory = "ner"

[components.ner.model]
@architectures = "spacy.TransitionBasedParser.v2"
state_type = "ner"
extra_state_tokens = false
hidden_width = 64
maxout_pieces = 2
use_upper = {use_upper}
nO = null

[components.ner.model.tok2vec]
@architectures = "spacy.Tok2VecListener.v1"
width = 32
upstream = "tok2vec"
"""


@pytest.fixture(scope="module", params=["false", "true"], ids=["no upper layer", "upper layer"])
def saved_ner(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    spacy.util.fix_random_seed(1)
    config = spacy.util.load_config_from_str(CONFIG.replace("{use_upper}", request.param))
    nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
    doc = nlp.make_doc("We need Python and a BSc in nursing at Acme Corp")
    entities = [(8, 14, "SKILL"), (21, 24, "DIPLOMA"), (28, 35, "EXPERIENCE"), (39, 48, "ORG")]
    examples = [Example.from_dict(doc, {"entities": entities})]
    nlp.initialize(lambda: examples)
    nlp.get_pipe("ner").add_label(NEVER_TRAINED)
    upper = nlp.get_pipe("ner").model.get_ref("upper")
    if upper.has_param("W"):  # spaCy starts it at zero: every action would score the same
        rng = numpy.random.default_rng(1)
        for name in ("W", "b"):
            upper.set_param(name, rng.normal(size=upper.get_param(name).shape).astype("f"))
    path = tmp_path_factory.mktemp("ner") / "pipeline"
    nlp.to_disk(path)
    return path


@pytest.fixture(scope="module")
def pair(saved_ner: Path):
    """spaCy's ner and fast_ner, loaded from the same folder."""
    return spacy.load(saved_ner), spacy.load(
        saved_ner, config={"components": {"ner": {"factory": FAST_NER}}}
    )


def annotation(doc) -> list[tuple[str, str]]:
    return [(token.ent_iob_, token.ent_type_) for token in doc]


def test_the_swap_keeps_the_name_labels_and_weights(pair):
    spacy_nlp, fast_nlp = pair
    assert type(fast_nlp.get_pipe("ner")) is FastEntityRecognizer
    assert fast_nlp.get_pipe_meta("ner").factory == FAST_NER
    assert fast_nlp.get_pipe("ner").labels == spacy_nlp.get_pipe("ner").labels
    assert NEVER_TRAINED in fast_nlp.get_pipe("ner").labels
    assert fast_nlp.get_pipe("ner").to_bytes(exclude=["vocab"]) == spacy_nlp.get_pipe(
        "ner"
    ).to_bytes(exclude=["vocab"])


def test_random_weights_give_many_entities_and_the_same_ones(pair):
    spacy_nlp, fast_nlp = pair
    texts = [
        " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(i % 40)) for i in range(200)
    ]
    expected = list(spacy_nlp.pipe(texts, batch_size=16))
    assert sum(len(doc.ents) for doc in expected) > 100, (
        "the test needs a model that predicts entities"
    )
    # Without an upper layer the model finds all four trained labels; with one, three (the
    # untrained one among them).
    assert len({ent.label_ for doc in expected for ent in doc.ents}) >= 3
    for batch_size in (1, 16, 1000):
        assert [annotation(doc) for doc in fast_nlp.pipe(texts, batch_size=batch_size)] == [
            annotation(doc) for doc in expected
        ]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.lists(st.sampled_from(WORDS + [" ", "  ", "Ω", "x" * 30]), max_size=60).map("".join),
        min_size=1,
        max_size=8,
    )
)
def test_any_batch_of_texts_gets_the_entities_spacy_gives(pair, texts):
    spacy_nlp, fast_nlp = pair
    assert [annotation(doc) for doc in fast_nlp.pipe(texts)] == [
        annotation(doc) for doc in spacy_nlp.pipe(texts)
    ]


def test_preset_entities_are_kept_as_spacy_keeps_them(pair):
    spacy_nlp, fast_nlp = pair
    results = []
    for nlp in pair:
        doc = nlp.make_doc("We need Python and a BSc in nursing at Acme Corp")
        doc.set_ents([doc.char_span(39, 48, label="ORG")])
        results.append(annotation(nlp.get_pipe("ner")(nlp.get_pipe("tok2vec")(doc))))
    assert results[0] == results[1]
    assert results[0][-2:] == [("B", "ORG"), ("I", "ORG")]
