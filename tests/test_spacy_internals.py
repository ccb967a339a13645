"""scripts/common/spacy_internals.py: every non-public spaCy, thinc and spacy-transformers API it
relies on still exists with the shape it expects and does what it expects, so that these tests fail
the day a library changes one; and the module imports on its own, as a wheel's code."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path
from typing import Callable

import numpy
import pytest
import spacy
import torch
from spacy.language import Language
from spacy.pipeline import EntityRecognizer
from spacy.pipeline.transition_parser import Parser
from spacy.tokens import Doc
from spacy.training import Example
from spacy.util import registry
from spacy_transformers.layers import TransformerModel
from spacy_transformers.layers.hf_shim import HFShim
from thinc.api import Model
from thinc.shims import Shim
from transformers import AutoModel, AutoTokenizer
from transformers.modeling_outputs import BaseModelOutput

from scripts.common import spacy_internals
from scripts.common.spacy_internals import (
    CONVERTED_TRANSFORMER,
    ENTITY_ACTION_PROBABILITIES,
    ENTITY_BEAM_PROBABILITIES,
    ENTITY_BOUNDARY_PROBABILITIES,
    FAST_NER,
    LAYER_TRANSFORMER,
    SPACY_NER,
    FastEntityRecognizer,
    entity_action_probabilities,
    entity_beam_probabilities,
    hf_shim,
    parse_config_overrides,
    parse_probabilities,
    swap_in_converted_transformer,
    swap_in_transformer_layer,
)
from tests.helpers import PROJECT_ROOT

TEXT = "We need Python and a BSc in nursing at Acme Corp"
ENTITIES = [(8, 14, "SKILL"), (21, 24, "DIPLOMA"), (39, 48, "ORG")]


# spaCy: the override parser


def test_spacys_override_parser_reads_values_as_json_else_strings_and_bare_flags_as_true():
    assert parse_config_overrides(
        ["--training.max_epochs", "3", "--paths.train", "a.spacy", "--x.flag"]
    ) == {"training.max_epochs": 3, "paths.train": "a.spacy", "x.flag": True}


# spaCy: the parser internals fast_ner steps through


def parameters(function: Callable) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_the_parser_methods_fast_ner_relies_on_keep_their_signatures():
    assert parameters(Parser.greedy_parse) == ["self", "docs", "drop"]
    assert inspect.signature(Parser.greedy_parse).parameters["drop"].default == 0.0
    assert parameters(Parser._ensure_labels_are_added) == ["self", "docs"]
    assert parameters(Parser.transition_states) == ["self", "states", "scores"]
    assert parameters(FastEntityRecognizer.greedy_parse) == ["self", "docs", "drop"]


@pytest.fixture(scope="module")
def ner_nlp() -> Language:
    """A small CNN entity recognizer trained for a step, with spaCy's "ner"."""
    spacy.util.fix_random_seed(1)
    nlp = spacy.blank("en")
    nlp.add_pipe(SPACY_NER)
    doc = nlp.make_doc(TEXT)
    examples = [Example.from_dict(doc, {"entities": ENTITIES})]
    optimizer = nlp.initialize(lambda: examples)
    nlp.update(examples, sgd=optimizer)
    return nlp


def test_predict_routes_greedy_decoding_through_greedy_parse(ner_nlp):
    ner = FastEntityRecognizer(ner_nlp.vocab, ner_nlp.get_pipe(SPACY_NER).model)
    ner.from_bytes(ner_nlp.get_pipe(SPACY_NER).to_bytes())
    calls = []
    parse = ner.greedy_parse

    def counting(docs: list, drop: float = 0.0) -> list:
        calls.append(len(docs))
        return parse(docs, drop)

    ner.greedy_parse = counting  # an instance attribute: what Parser.predict's lookup finds first
    ner.predict([ner_nlp.make_doc(TEXT), ner_nlp.make_doc("Python")])
    assert calls == [2]


def test_the_transition_system_steps_a_batch_as_fast_ner_steps_it(ner_nlp):
    ner = ner_nlp.get_pipe(SPACY_NER)
    docs = [ner_nlp.make_doc(TEXT), ner_nlp.make_doc("")]
    batch = ner.moves.init_batch(docs)
    assert len(batch) == 2
    assert [state.is_final() for state in batch] == [False, True]
    step_model = ner.model.predict(docs)
    states = [state for state in batch if not state.is_final()]
    steps = 0
    while states:
        scores = step_model.predict(states)
        assert scores.shape == (len(states), ner.moves.n_moves)
        after = ner.transition_states(states, numpy.ascontiguousarray(scores, dtype="float32"))
        assert all(state in states and not state.is_final() for state in after)
        states, steps = after, steps + 1
    step_model.clear_memory()
    assert steps >= len(docs[0])  # one action per token at least, as the NER transition system has
    assert all(state.is_final() for state in batch)


def test_labels_of_preset_entities_get_actions_before_decoding(ner_nlp):
    ner = FastEntityRecognizer(ner_nlp.vocab, ner_nlp.get_pipe(SPACY_NER).model.copy())
    ner.from_bytes(ner_nlp.get_pipe(SPACY_NER).to_bytes())
    doc = ner_nlp.make_doc(TEXT)
    doc.set_ents([doc.char_span(0, 2, label="NEW_LABEL")])
    assert "NEW_LABEL" not in ner.labels
    assert ner._ensure_labels_are_added([doc]) == 1
    assert "NEW_LABEL" in ner.labels
    assert ner._ensure_labels_are_added([doc]) == 0


# spaCy: the greedy parse and the beam search behind entity_confidence


def test_the_methods_entity_confidence_relies_on_keep_their_signatures():
    assert parameters(Parser.beam_parse) == ["self", "docs", "beam_width", "drop", "beam_density"]
    assert parameters(EntityRecognizer.scored_ents) == ["self", "beams"]
    assert parameters(Parser.transition_states) == ["self", "states", "scores"]
    assert registry.misc.get(ENTITY_ACTION_PROBABILITIES)() is entity_action_probabilities
    beam = registry.misc.get(ENTITY_BEAM_PROBABILITIES)(beam_width=8, beam_density=0.0)
    assert callable(beam) and parameters(beam) == ["ner", "docs"]


def greedy_action_probabilities(ner: EntityRecognizer, doc: Doc) -> list[float]:
    """The probability of each action of the greedy parse of a fresh doc, stepped as spaCy's
    greedy loop steps it (the best valid action by the model's scores), with the softmax over the
    valid actions at each step: one per token."""
    names = [ner.moves.get_class_name(i) for i in range(ner.moves.n_moves)]
    [state] = ner.moves.init_batch([doc])
    step_model = ner.model.predict([doc])
    found = []
    while not state.is_final():
        [scores] = step_model.predict([state])
        valid = numpy.array([ner.moves.is_valid(state, name) for name in names])
        shifted = numpy.exp(scores - scores[valid].max()) * valid
        found.append(float(shifted.max() / shifted.sum()))
        ner.transition_states([state], numpy.ascontiguousarray([scores], dtype="float32"))
    step_model.clear_memory()
    return found


@pytest.fixture(scope="module")
def trained_ner_nlp() -> Language:
    """The CNN entity recognizer trained until it finds entities, some of several tokens."""
    spacy.util.fix_random_seed(1)
    nlp = spacy.blank("en")
    nlp.add_pipe(SPACY_NER)
    examples = [Example.from_dict(nlp.make_doc(TEXT), {"entities": ENTITIES})]
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(20):
        nlp.update(examples, sgd=optimizer)
    return nlp


def test_action_probabilities_are_those_of_the_greedy_parse_multiplied_over_each_entity(
    trained_ner_nlp,
):
    ner_nlp = trained_ner_nlp
    ner = ner_nlp.get_pipe(SPACY_NER)
    # Entities at the first and the last token (where no B is valid), beside a whitespace token.
    texts = [TEXT, "Python", "We need SQL and  Python and a BSc at Acme Corp", "nothing here"]
    docs = [ner(ner_nlp.make_doc(text)) for text in texts]
    assert sum(len(doc.ents) for doc in docs) >= 3, "the test needs a recognizer that finds some"
    before = [[(t.ent_iob_, t.ent_type_) for t in doc] for doc in docs]
    found = entity_action_probabilities(ner, docs)
    assert [[(t.ent_iob_, t.ent_type_) for t in doc] for doc in docs] == before
    for doc, probabilities in zip(docs, found):
        steps = greedy_action_probabilities(ner, ner_nlp.make_doc(doc.text))
        assert len(steps) == len(doc)  # one action per token
        expected = {
            (e.start, e.end, e.label_): float(numpy.prod(steps[e.start : e.end])) for e in doc.ents
        }
        assert probabilities == pytest.approx(expected)
        assert all(0.0 < p <= 1.0 for p in probabilities.values())
    assert any(len(ent) > 1 for doc in docs for ent in doc.ents)
    assert any(ent.end == len(doc) for doc in docs for ent in doc.ents)
    assert len({p for probabilities in found for p in probabilities.values()}) > 2


def test_the_parse_probability_is_every_greedy_step_multiplied_and_the_boundary_adds_one(
    trained_ner_nlp,
):
    ner = trained_ner_nlp.get_pipe(SPACY_NER)
    texts = [TEXT, "nothing here at all", "We need SQL and  Python and a BSc at Acme Corp"]
    docs = [ner(trained_ner_nlp.make_doc(text)) for text in texts]
    assert not docs[1].ents and docs[2].ents, "the test needs a doc with entities and one without"
    before = [[(t.ent_iob_, t.ent_type_) for t in doc] for doc in docs]
    steps = [greedy_action_probabilities(ner, trained_ner_nlp.make_doc(t)) for t in texts]
    assert parse_probabilities(ner, docs) == pytest.approx([float(numpy.prod(s)) for s in steps])
    with_boundary = entity_action_probabilities(ner, docs, left_boundary=True)
    assert [[(t.ent_iob_, t.ent_type_) for t in doc] for doc in docs] == before
    for doc, doc_steps, found in zip(docs, steps, with_boundary):
        inside = {i for e in doc.ents for i in range(e.start, e.end)}
        expected = {}
        for e in doc.ents:
            first = e.start - 1 if e.start > 0 and e.start - 1 not in inside else e.start
            expected[(e.start, e.end, e.label_)] = float(numpy.prod(doc_steps[first : e.end]))
        assert found == pytest.approx(expected)
    assert registry.misc.get(ENTITY_BOUNDARY_PROBABILITIES)()(ner, docs) == with_boundary


def test_the_recognizer_keeps_a_docs_entities_in_every_parse_of_its_beam(ner_nlp):
    # Why entity_beam_probabilities clears them first: scored with them, they would all be certain.
    ner = ner_nlp.get_pipe(SPACY_NER)
    doc = ner_nlp.make_doc(TEXT)
    doc.set_ents([doc.char_span(8, 14, label="SKILL")], default="outside")
    [found] = ner.scored_ents(ner.beam_parse([doc], beam_width=8))
    assert found[(2, 3, "SKILL")] == pytest.approx(1.0)
    [fresh] = ner.scored_ents(ner.beam_parse([ner_nlp.make_doc(TEXT)], beam_width=8))
    assert fresh.get((2, 3, "SKILL"), 0.0) < 0.5


def test_beam_probabilities_score_a_doc_as_without_entities_and_leave_it_its_own(ner_nlp):
    ner = ner_nlp.get_pipe(SPACY_NER)
    doc = ner_nlp.make_doc(TEXT)
    doc.set_ents([doc.char_span(8, 14, label="SKILL")], default="outside")
    before = [(t.ent_iob_, t.ent_type_) for t in doc]
    [found] = entity_beam_probabilities(ner, [doc], beam_width=8, beam_density=0.0)
    assert [(t.ent_iob_, t.ent_type_) for t in doc] == before
    [fresh] = ner.scored_ents(ner.beam_parse([ner_nlp.make_doc(TEXT)], beam_width=8))
    assert found == pytest.approx(dict(fresh))
    assert found and all(0.0 <= p <= 1.0 + 1e-9 for p in found.values())
    # A beam of one is the greedy parse, each of its entities certain.
    [greedy] = registry.misc.get(ENTITY_BEAM_PROBABILITIES)(beam_width=1, beam_density=0.0)(
        ner, [ner_nlp.make_doc(TEXT)]
    )
    ents = ner(ner_nlp.make_doc(TEXT)).ents
    assert greedy == {(e.start, e.end, e.label_): pytest.approx(1.0) for e in ents}


def test_fast_ner_is_registered_with_the_meta_of_spacys_ner():
    from spacy.pipeline.factories import register_factories  # what register_fast_ner calls

    register_factories()
    fast, stock = Language.get_factory_meta(FAST_NER), Language.get_factory_meta(SPACY_NER)
    assert fast.assigns == stock.assigns and fast.default_config == stock.default_config
    assert fast.default_score_weights == stock.default_score_weights
    nlp = spacy.blank("en")
    assert type(nlp.add_pipe(FAST_NER, name="ner")) is FastEntityRecognizer
    assert issubclass(FastEntityRecognizer, EntityRecognizer)


# spacy-transformers: the shim and the model's attrs the converted architecture changes


@registry.misc("test_spacy_internals.mark.v1")
def make_mark() -> Callable[[torch.nn.Module], torch.nn.Module]:
    """A conversion that only marks the model it is given, to see where it ran."""

    def mark(model: torch.nn.Module) -> torch.nn.Module:
        model.register_buffer("marked", torch.ones(1))
        return model

    return mark


MARK = {"@misc": "test_spacy_internals.mark.v1"}


def converted_model(name: str) -> TransformerModel:
    config = {
        "model": {
            "@architectures": CONVERTED_TRANSFORMER,
            "name": name,
            "get_spans": {
                "@span_getters": "spacy-transformers.strided_spans.v1",
                "window": 128,
                "stride": 96,
            },
            "convert": MARK,
        }
    }
    return registry.resolve(config)["model"]


def test_the_shim_holds_the_model_and_model_cls_as_expected():
    shim = hf_shim(TransformerModel("name", lambda docs: []))
    assert type(shim) is HFShim
    assert shim.model_cls is AutoModel
    assert shim._model is None and shim._hfmodel.transformer is None
    assert "model_cls" in inspect.signature(HFShim.__init__).parameters


def test_the_converted_architecture_converts_on_initialize_and_on_loading(tiny_transformer):
    model = converted_model(str(tiny_transformer))
    assert model.attrs["set_transformer"].__name__ == "set_converted_transformer"
    model.initialize()  # from a folder: through attrs["set_transformer"]
    shim = hf_shim(model)
    assert hasattr(model.transformer, "marked") and shim._model is model.transformer
    data = model.to_bytes()
    loaded = converted_model(str(tiny_transformer))
    seen = []
    quiet = hf_shim(loaded).from_bytes
    hf_shim(loaded).from_bytes = lambda data: seen.append(1) or quiet(data)
    loaded.from_bytes(data)  # through the shim's from_bytes and model_cls.from_config
    assert seen == [1]
    assert hasattr(loaded.transformer, "marked")
    assert hf_shim(loaded)._model is loaded.transformer


def test_a_component_config_lives_in_pipe_configs_and_nlp_config_reads_it():
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp._pipe_configs["sentencizer"]["punct_chars"] = ["!"]
    assert nlp.config["components"]["sentencizer"]["punct_chars"] == ["!"]


def test_a_swapped_in_model_saves_and_loads_in_its_converted_shape(tiny_pipeline, tmp_path):
    nlp = spacy.load(tiny_pipeline)
    model = nlp.get_pipe("transformer").model.transformer
    marked = registry.misc.get("test_spacy_internals.mark.v1")()(model)
    swap_in_converted_transformer(nlp, component="transformer", model=marked, convert=MARK)
    config = nlp.config["components"]["transformer"]["model"]
    assert config["@architectures"] == CONVERTED_TRANSFORMER and config["convert"] == MARK
    assert nlp.get_pipe("transformer").model.transformer is marked
    expected = [[(e.text, e.label_) for e in doc.ents] for doc in nlp.pipe([TEXT, "SQL"])]
    nlp.to_disk(tmp_path / "converted")
    loaded = spacy.load(tmp_path / "converted")
    assert hasattr(loaded.get_pipe("transformer").model.transformer, "marked")
    assert [[(e.text, e.label_) for e in doc.ents] for doc in loaded.pipe([TEXT, "SQL"])] == (
        expected
    )


# spacy-transformers: the layer a TransformerModel's forward runs, and where it reads the tokenizer


class TokenizerShim(Shim):
    def __init__(self, tokenizer: object) -> None:
        super().__init__(None)
        self.tokenizer = tokenizer


def zeros_forward(model: Model, wordpieces, is_train: bool):
    model.attrs["seen"].append(wordpieces.input_ids.tolist())
    batch, length = wordpieces.input_ids.shape
    width = model.attrs["width"]
    return BaseModelOutput(last_hidden_state=torch.zeros(batch, length, width)), lambda d: d


@registry.layers("test_spacy_internals.zeros.v1")
def make_zeros_layer(width: int = 4) -> Model:
    """Zeros for every wordpiece, recording the input_ids it was given."""
    attrs = {"seen": [], "width": width}
    return Model("zeros", zeros_forward, shims=[TokenizerShim(None)], attrs=attrs)


def test_the_layer_architecture_runs_its_layer_on_the_wordpieces_with_the_shims_tokenizer(
    tiny_transformer,
):
    config = {
        "model": {
            "@architectures": LAYER_TRANSFORMER,
            "name": "unused",
            "get_spans": {"@span_getters": "spacy-transformers.doc_spans.v1"},
            "layer": {"@layers": "test_spacy_internals.zeros.v1"},
        }
    }
    model = registry.resolve(config)["model"]
    layer = model.layers[0]
    assert layer.name == "zeros" and model.transformer is None
    tokenizer = AutoTokenizer.from_pretrained(tiny_transformer)
    layer.shims[0].tokenizer = tokenizer
    assert model.tokenizer is tokenizer
    docs = [spacy.blank("en")(text) for text in ("sql", "python and sql")]
    output = model.predict(docs)
    assert layer.attrs["seen"] == [tokenizer(["sql", "python and sql"], padding=True)["input_ids"]]
    assert output.model_output.last_hidden_state.shape[-1] == 4
    assert [data.model_output.last_hidden_state.shape[-1] for data in output.doc_data] == [4, 4]


def test_a_swapped_in_layer_is_what_the_component_runs_and_its_config_names(tiny_pipeline):
    nlp = spacy.load(tiny_pipeline)
    tokenizer = nlp.get_pipe("transformer").model.tokenizer
    layer = make_zeros_layer(width=nlp.get_pipe("transformer").model.get_dim("nO"))
    layer.shims[0].tokenizer = tokenizer
    zeros = {"@layers": "test_spacy_internals.zeros.v1", "width": layer.attrs["width"]}
    swap_in_transformer_layer(nlp, component="transformer", layer=layer, layer_config=zeros)
    config = nlp.config["components"]["transformer"]["model"]
    assert config["@architectures"] == LAYER_TRANSFORMER and config["layer"] == zeros
    doc = nlp(TEXT)
    assert layer.attrs["seen"] and not doc._.trf_data.model_output.last_hidden_state.any()


# The module as a wheel's code

IMPORT_ALONE = (
    "import sys\n"
    "from spacy.language import Language\n"
    "from spacy.util import import_file, registry\n"
    "import_file('spacy_internals', sys.argv[1])\n"
    "assert Language.has_factory('fast_ner')\n"
    "assert registry.architectures.get(sys.argv[2])\n"
    "print(sorted(m for m in sys.modules if m.split('.')[0] in ('scripts', 'int8')))\n"
)


@pytest.mark.slow
def test_the_module_imports_on_its_own_as_spacy_package_imports_it(tmp_path):
    path = Path(spacy_internals.__file__)
    assert path == PROJECT_ROOT / "scripts/common/spacy_internals.py"
    done = subprocess.run(
        [sys.executable, "-I", "-c", IMPORT_ALONE, str(path), CONVERTED_TRANSFORMER],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["[]"]
