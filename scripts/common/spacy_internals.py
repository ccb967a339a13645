"""Every use of the non-public API of spaCy, thinc and spacy-transformers in this project, in one
place, each with the reason; tests/test_spacy_internals.py fails the day a library changes one.

    from scripts.common.spacy_internals import parse_config_overrides
    parse_config_overrides(["--training.max_epochs", "3"])   # {"training.max_epochs": 3}

Besides spaCy's override parser it holds what a packaged pipeline may need, each needing this file
inside the wheel (`spacy package --code`, which imports it on its own, outside any package): the
entity recognizer's action and beam probabilities behind the "entity_confidence" component
(scripts/scoring/entity_confidence.py, which names them in its config), the "fast_ner" factory
(scripts.package --fast-ner), the converted transformer architecture of the int8 build
(scripts.package --fast-cpu) and the layer transformer architecture of the ONNX build
(scripts.package --onnx). So it imports nothing from this repository, and reaches int8 and ONNX
code only through the name of a registered function in the config.
"""

# No `from __future__ import annotations`: spaCy checks factory arguments against their types.
import warnings
from typing import Any, Callable, Optional

import numpy
from spacy.attrs import ENT_ID, ENT_IOB, ENT_KB_ID, ENT_TYPE

# spaCy's `--section.key value` parser is private; using it keeps our override syntax spaCy's.
from spacy.cli._util import parse_config_overrides
from spacy.language import Language
from spacy.pipeline import EntityRecognizer
from spacy.tokens import Doc
from spacy.util import registry
from spacy_transformers.layers import TransformerModel
from thinc.api import Model, set_dropout_rate
from transformers import AutoModel

__all__ = [
    "CONVERTED_TRANSFORMER",
    "ENTITY_ACTION_PROBABILITIES",
    "ENTITY_BEAM_PROBABILITIES",
    "ENTITY_BOUNDARY_PROBABILITIES",
    "FAST_NER",
    "LAYER_TRANSFORMER",
    "SPACY_NER",
    "FastEntityRecognizer",
    "entity_action_probabilities",
    "entity_beam_probabilities",
    "hf_shim",
    "parse_probabilities",
    "parse_config_overrides",
    "swap_in_converted_transformer",
    "swap_in_transformer_layer",
]

FAST_NER = "fast_ner"
SPACY_NER = "ner"
CONVERTED_TRANSFORMER = "ner_textcat.ConvertedTransformerModel.v1"
LAYER_TRANSFORMER = "ner_textcat.LayerTransformerModel.v1"
ENTITY_ACTION_PROBABILITIES = "ner_textcat.entity_action_probabilities.v1"
ENTITY_BOUNDARY_PROBABILITIES = "ner_textcat.entity_action_probabilities.v2"
ENTITY_BEAM_PROBABILITIES = "ner_textcat.entity_beam_probabilities.v2"
ENT_ATTRS = [ENT_IOB, ENT_TYPE, ENT_KB_ID, ENT_ID]
# The kinds of the entity recognizer's actions (spaCy's BiluoPushDown): one action per token.
BEGIN, IN, LAST, UNIT, OUT = "B", "I", "L", "U", "O"


def entity_action_probabilities(
    ner: EntityRecognizer, docs: list[Doc], *, left_boundary: bool = False
) -> list[dict[tuple[int, int, str], float]]:
    """For each doc, {(start token, end token, label): probability} of each of its entities (the
    greedy parse's, doc.ents): the product of the probabilities the recognizer gave the actions
    that made it, one per token (B, I..., L or U), each a softmax over the actions valid at that
    step; with left_boundary, also the action (O) at the token before it, which kept the entity
    from starting earlier. The docs keep their entities.

        entity_action_probabilities(nlp.get_pipe("ner"), docs)   # [{(0, 1, "SKILL"): 0.98}, ...]
    """
    ents = [list(doc.ents) for doc in docs]
    owner = [
        {i: e for e, ent in enumerate(doc_ents) for i in range(ent.start, ent.end)}
        for doc_ents in ents
    ]
    if left_boundary:  # the token before an entity, where it is outside every entity
        for doc_owner, doc_ents in zip(owner, ents):
            for e, ent in enumerate(doc_ents):
                if ent.start > 0 and ent.start - 1 not in doc_owner:
                    doc_owner[ent.start - 1] = e
    log_found = replay_log_probabilities(ner, docs, owner, [len(doc_ents) for doc_ents in ents])
    return [
        {(ent.start, ent.end, ent.label_): float(numpy.exp(v)) for ent, v in zip(doc_ents, logs)}
        for doc_ents, logs in zip(ents, log_found)
    ]


def parse_probabilities(ner: EntityRecognizer, docs: list[Doc]) -> list[float]:
    """For each doc, the probability of its greedy parse as a whole (the entities of doc.ents,
    and no entity elsewhere): the product over all its tokens of the probability the recognizer
    gave the action taken. For a doc without entities, how sure the recognizer is that it has
    none, e.g. parse_probabilities(nlp.get_pipe("ner"), [nlp("no names here")]) -> [0.97]."""
    every_token = [dict.fromkeys(range(len(doc)), 0) for doc in docs]
    log_found = replay_log_probabilities(ner, docs, every_token, [1] * len(docs))
    return [float(numpy.exp(logs[0])) for logs in log_found]


def replay_log_probabilities(
    ner: EntityRecognizer, docs: list[Doc], slots: list[dict[int, int]], n_slots: list[int]
) -> list[numpy.ndarray]:
    """Replay the greedy parse that made each doc's doc.ents with the same model, each step taking
    the action that made them, and sum the log probability of the action taken (a softmax over
    the actions valid at that step) at each token of slots[d] into the slot it names; a doc's
    replay stops after its last such token. Per doc, the n_slots[d] sums. The docs keep their
    entities."""
    if not docs:
        return []
    moves = ActionTable(ner)
    # The greedy parse's action for each token: the BILUO tag of doc.ents.
    actions = [moves.actions(len(doc), list(doc.ents)) for doc in docs]
    ends = [max(doc_slots, default=-1) + 1 for doc_slots in slots]
    log_found = [numpy.zeros(n) for n in n_slots]
    saved = [doc.to_array(ENT_ATTRS) for doc in docs]
    try:
        # Preset entities would be forced on the parse (every action certain): start it free.
        for doc in docs:
            doc.set_ents([], default="missing")
        # The parser model's predict returns its step model (ParserStepModel), undocumented.
        step_model = ner.model.predict(docs)
        # A batch's parse states: only the transition system makes them (no public constructor).
        pairs = [(state, d) for d, state in enumerate(ner.moves.init_batch(docs)) if ends[d]]
        while pairs := [(state, d) for state, d in pairs if not state.is_final()]:
            # StateClass.B(0): the token the next action is for; undocumented.
            tokens = [state.B(0) for state, _ in pairs]
            wanted = [k for k, ((_, d), t) in enumerate(zip(pairs, tokens)) if t in slots[d]]
            if wanted:
                states = [pairs[k][0] for k in wanted]
                taken = numpy.array([actions[pairs[k][1]][tokens[k]] for k in wanted])
                scores = step_model.predict(states)
                if not isinstance(scores, numpy.ndarray):  # cupy, with an upper layer on the GPU
                    scores = scores.get()
                log_p = log_softmax_at(scores, moves.valid(states, taken), taken)
                for k, value in zip(wanted, log_p):
                    d = pairs[k][1]
                    log_found[d][slots[d][tokens[k]]] += value
            # Forced: a score of 1 for the action taken, 0 for the rest; the best valid one wins.
            forced = numpy.zeros((len(pairs), moves.n), dtype="float32")
            forced[
                numpy.arange(len(pairs)), [actions[d][t] for (_, d), t in zip(pairs, tokens)]
            ] = 1
            # Applies the best valid action to each state (what beam search uses); not documented.
            ner.transition_states([state for state, _ in pairs], forced)
            pairs = [(state, d) for (state, d), t in zip(pairs, tokens) if t + 1 < ends[d]]
        step_model.clear_memory()
    finally:
        for doc, array in zip(docs, saved):
            doc.from_array(ENT_ATTRS, array)
    return log_found


class ActionTable:
    """The entity recognizer's actions (spaCy's BiluoPushDown: "B-LABEL", "I-LABEL", "L-LABEL",
    "U-LABEL", "O", and "U-" for a blocked token) by class index, and which are valid."""

    def __init__(self, ner: EntityRecognizer) -> None:
        self.moves = ner.moves
        self.names = [ner.moves.get_class_name(i) for i in range(ner.moves.n_moves)]
        self.n = len(self.names)
        self.index = {name: i for i, name in enumerate(self.names)}
        labelled = [name for name in self.names if "-" in name and name.split("-", 1)[1]]
        self.begins = [self.index[n] for n in labelled if n.startswith(f"{BEGIN}-")]
        self.units = [self.index[n] for n in labelled if n.startswith(f"{UNIT}-")]
        # An action inside an entity (I or L): the entity's own I and L, the only ones that can be.
        self.inside = {
            self.index[n]: (self.index[f"{IN}-{n[2:]}"], self.index[f"{LAST}-{n[2:]}"])
            for n in labelled
            if n.startswith((f"{IN}-", f"{LAST}-"))
        }

    def actions(self, length: int, ents: list) -> numpy.ndarray:
        """The class index of the action the recognizer takes at each token to make ents."""
        taken = numpy.full(length, self.index[OUT], dtype="int64")
        for ent in ents:
            if len(ent) == 1:
                taken[ent.start] = self.index[f"{UNIT}-{ent.label_}"]
            else:
                taken[ent.start] = self.index[f"{BEGIN}-{ent.label_}"]
                taken[ent.start + 1 : ent.end - 1] = self.index[f"{IN}-{ent.label_}"]
                taken[ent.end - 1] = self.index[f"{LAST}-{ent.label_}"]
        return taken

    def valid(self, states: list, taken: numpy.ndarray) -> numpy.ndarray:
        """(states x actions) booleans: the actions spaCy's greedy loop chose among at each state,
        by TransitionSystem.is_valid (undocumented). Inside an entity only its own I and L can
        be; outside it O, every B and every U, whose validity does not depend on the label where
        no entity is preset: one of each is asked (tests/test_spacy_internals.py checks this)."""
        is_valid, names = self.moves.is_valid, self.names
        valid = numpy.zeros((len(states), self.n), dtype="bool")
        outside = []
        for row, (state, action) in enumerate(zip(states, taken)):
            columns = self.inside.get(int(action))
            if columns is None:
                outside.append(row)
            else:
                for column in columns:
                    valid[row, column] = is_valid(state, names[column])
        for column, group in ((self.index[OUT], [self.index[OUT]]), *self.representatives()):
            found = numpy.array([is_valid(states[row], names[column]) for row in outside], bool)
            valid[numpy.ix_(outside, group)] = found[:, None]
        return valid

    def representatives(self) -> list[tuple[int, list[int]]]:
        """(one action, all actions of its kind) for the B and the U actions."""
        return [(group[0], group) for group in (self.begins, self.units) if group]


def log_softmax_at(
    scores: numpy.ndarray, valid: numpy.ndarray, taken: numpy.ndarray
) -> numpy.ndarray:
    """Per row, log softmax(scores) over the valid columns, at the column `taken`."""
    masked = numpy.where(valid, numpy.asarray(scores, dtype="float64"), -numpy.inf)
    top = masked.max(axis=1, keepdims=True)
    log_total = numpy.log(numpy.exp(masked - top).sum(axis=1)) + top[:, 0]
    return masked[numpy.arange(len(taken)), taken] - log_total


@registry.misc(ENTITY_ACTION_PROBABILITIES)
def make_entity_action_probabilities() -> Callable[[EntityRecognizer, list[Doc]], list]:
    """entity_action_probabilities, for a pipeline config to name (entity_confidence's, in
    pipelines saved before the left boundary counted)."""
    return entity_action_probabilities


@registry.misc(ENTITY_BOUNDARY_PROBABILITIES)
def make_entity_boundary_probabilities() -> Callable[[EntityRecognizer, list[Doc]], list]:
    """entity_action_probabilities with the left boundary: the action at the token before each
    entity counts too (entity_confidence's default)."""

    def probabilities(ner: EntityRecognizer, docs: list[Doc]) -> list:
        return entity_action_probabilities(ner, docs, left_boundary=True)

    return probabilities


def entity_beam_probabilities(
    ner: EntityRecognizer, docs: list[Doc], *, beam_width: int, beam_density: float
) -> list[dict[tuple[int, int, str], float]]:
    """For each doc, {(start token, end token, label): probability} of the entities a beam search
    of the trained recognizer finds, run as if the doc had no entities yet (the probability of an
    entity: the summed probability of the beam's parses holding it); the docs keep their entities.

        entity_beam_probabilities(nlp.get_pipe("ner"), docs, beam_width=16, beam_density=0.0001)
    """
    # The recognizer keeps the entities a doc already has; unset (missing) tokens leave it free.
    saved = [doc.to_array(ENT_ATTRS) for doc in docs]
    try:
        for doc in docs:
            doc.set_ents([], default="missing")
        # beam_parse and scored_ents (what spaCy's beam_ner scores with) are not documented.
        beams = ner.beam_parse(docs, beam_width=beam_width, beam_density=beam_density)
        probabilities = ner.scored_ents(beams)
    finally:
        for doc, array in zip(docs, saved):
            doc.from_array(ENT_ATTRS, array)
    return [dict(found) for found in probabilities]


@registry.misc(ENTITY_BEAM_PROBABILITIES)
def make_entity_beam_probabilities(
    beam_width: int = 16, beam_density: float = 0.0001
) -> Callable[[EntityRecognizer, list[Doc]], list]:
    """entity_beam_probabilities at this width and density, for a pipeline config to name
    (entity_confidence's, in place of the default action probabilities: slower)."""

    def probabilities(ner: EntityRecognizer, docs: list[Doc]) -> list:
        return entity_beam_probabilities(
            ner, docs, beam_width=beam_width, beam_density=beam_density
        )

    return probabilities


class FastEntityRecognizer(EntityRecognizer):
    """spaCy's entity recognizer, its greedy decoding stepped through from Python holding the GIL:
    the same model, the same decisions, the same entities.

        nlp.add_pipe("fast_ner", name="ner")   # instead of nlp.add_pipe("ner")

    spaCy 3.8 is built with Cython 3, under which the transition system's state checks take the GIL
    to look for a Python exception; spaCy's greedy_parse runs its loop with the GIL released, so
    every check of every action of every token takes and drops it. transition_states applies the
    same transitions while holding the GIL, where those checks cost nothing, and the step model
    scores the states from the same precomputed features, as spaCy's beam search steps through them.
    """

    # Parser.predict calls greedy_parse at beam_width 1; spaCy has no hook into the decoding loop.
    def greedy_parse(self, docs: list, drop: float = 0.0) -> list:
        # Preset entities' labels need actions before decoding; spaCy's own loop does this first.
        self._ensure_labels_are_added(docs)
        set_dropout_rate(self.model, drop)
        # A batch's parse states: only the transition system makes them (no public constructor).
        batch = self.moves.init_batch(docs)
        # The parser model's predict returns its step model (ParserStepModel), undocumented.
        step_model = self.model.predict(docs)
        states = [state for state in batch if not state.is_final()]
        while states:
            scores = step_model.predict(states)
            if not isinstance(scores, numpy.ndarray):  # cupy, with an upper layer on the GPU
                scores = scores.get()
            # Applies the best valid action to each state (what beam search uses); not documented.
            states = self.transition_states(
                states, numpy.ascontiguousarray(scores, dtype="float32")
            )
        step_model.clear_memory()
        return batch


def make_fast_ner(
    nlp: Language,
    name: str,
    model: Any,
    moves: Any,
    update_with_oracle_cut_size: int,
    incorrect_spans_key: Any,
    scorer: Any,
) -> FastEntityRecognizer:
    """Built from the same settings as spaCy's "ner"."""
    return FastEntityRecognizer(
        nlp.vocab,
        model,
        name=name,
        moves=moves,
        scorer=scorer,
        update_with_oracle_cut_size=update_with_oracle_cut_size,
        incorrect_spans_key=incorrect_spans_key,
    )


def register_fast_ner() -> None:
    """Register FAST_NER with the default config, attributes and score weights of spaCy's "ner"."""
    if Language.has_factory(FAST_NER):
        return
    if not Language.has_factory(SPACY_NER):
        # spaCy 3.8.7+ registers factories in the first Language(), slow (entry points): ner's now.
        from spacy.pipeline.factories import register_factories

        register_factories()
    spacy_ner = Language.get_factory_meta(SPACY_NER)
    Language.factory(
        FAST_NER,
        assigns=spacy_ner.assigns,
        requires=spacy_ner.requires,
        retokenizes=spacy_ner.retokenizes,
        default_config=spacy_ner.default_config,
        default_score_weights=spacy_ner.default_score_weights,
    )(make_fast_ner)


def hf_shim(model: TransformerModel) -> Any:
    """The shim of a spacy-transformers TransformerModel that holds the Hugging Face model."""
    # TransformerModel's one layer is an HFWrapper with one HFShim; no public accessor returns it.
    return model.layers[0].shims[0]


def converted_auto_model(convert: Callable[[Any], Any]) -> type:
    """An AutoModel whose models come out converted, for the shim to rebuild a saved model from its
    config in the shape its saved weights have (e.g. int8)."""

    class ConvertedAutoModel:
        @staticmethod
        def from_config(config: Any, **kwargs: Any) -> Any:
            return convert(AutoModel.from_config(config, **kwargs))

    return ConvertedAutoModel


def stock_transformer_model(
    name: str,
    get_spans: Callable,
    *,
    tokenizer_config: Optional[dict],
    transformer_config: Optional[dict],
    mixed_precision: bool,
    grad_scaler_config: Optional[dict],
) -> TransformerModel:
    """spacy-transformers.TransformerModel.v3 as its registered function builds it, for the
    architectures below to change one part of."""
    return TransformerModel(
        name,
        get_spans,
        dict(tokenizer_config or {}),
        dict(transformer_config or {}),
        mixed_precision,
        dict(grad_scaler_config or {}),
    )


@registry.architectures(CONVERTED_TRANSFORMER)
def create_converted_transformer_model(
    name: str,
    get_spans: Callable,
    convert: Callable[[Any], Any],
    tokenizer_config: Optional[dict] = None,
    transformer_config: Optional[dict] = None,
    mixed_precision: bool = False,
    grad_scaler_config: Optional[dict] = None,
) -> TransformerModel:
    """spacy-transformers.TransformerModel.v3 (same arguments) whose Hugging Face model passes
    through convert (a registered function, e.g. ner_textcat.quantize_int8.v1) when it is built."""
    model = stock_transformer_model(
        name,
        get_spans,
        tokenizer_config=tokenizer_config,
        transformer_config=transformer_config,
        mixed_precision=mixed_precision,
        grad_scaler_config=grad_scaler_config,
    )
    shim = hf_shim(model)
    # HFShim.from_bytes rebuilds the model from its config with model_cls, which no setting names.
    shim.model_cls = converted_auto_model(convert)
    # Initializing from a hub name or a folder goes through attrs["set_transformer"], not model_cls.
    set_transformer = model.attrs["set_transformer"]

    def set_converted_transformer(model_: TransformerModel, hf_model: Any) -> None:
        hf_model.transformer = convert(hf_model.transformer)
        set_transformer(model_, hf_model)

    model.attrs["set_transformer"] = set_converted_transformer
    load = shim.from_bytes

    # HFShim.from_bytes's torch.load warns about torch's own storage class; no hook wraps that call.
    def from_bytes_quietly(bytes_data: bytes) -> Any:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message="TypedStorage is deprecated", category=UserWarning
            )
            return load(bytes_data)

    shim.from_bytes = from_bytes_quietly
    return model


def swap_in_converted_transformer(
    nlp: Language, *, component: str, model: Any, convert: dict[str, str]
) -> None:
    """Make `model` (converted from the component's own Hugging Face model) the component's, and
    its config name CONVERTED_TRANSFORMER with `convert`, so that to_disk and spacy.load rebuild it
    alike.

        swap_in_converted_transformer(nlp, component="transformer", model=int8_model,
                                      convert={"@misc": "ner_textcat.quantize_int8.v1"})
    """
    convert_function = registry.resolve({"convert": convert})["convert"]
    shim = hf_shim(nlp.get_pipe(component).model)
    # HFShim keeps the model twice (thinc's PyTorchShim._model and its HFObjects), with no setter.
    shim._model = model
    shim._hfmodel.transformer = model
    shim.model_cls = converted_auto_model(convert_function)
    # nlp.config is rebuilt from _pipe_configs; no public way changes a component's stored config.
    block = nlp._pipe_configs[component]["model"]
    block["@architectures"] = CONVERTED_TRANSFORMER
    block["convert"] = dict(convert)


class LayerHFObjects:
    """What a TransformerModel whose layer is not a Hugging Face wrapper reads as its HFObjects:
    the tokenizer of the layer's shim, and no PyTorch model (transformer is None)."""

    transformer = None

    def __init__(self, shim: Any) -> None:
        self.shim = shim

    @property
    def tokenizer(self) -> Any:
        return self.shim.tokenizer


def put_in_layer(model: TransformerModel, layer: Model) -> None:
    """Make `layer` (WordpieceBatch in, an output with last_hidden_state out; its first shim has
    a `tokenizer`) the one TransformerModel's forward runs in place of its HFWrapper."""
    # TransformerModel's forward runs layers[0] on the wordpieces; no setting names another layer.
    model.layers[0] = layer
    # Its tokenizer and transformer properties read layers[0].shims[0]._hfmodel (an HFObjects).
    layer.shims[0]._hfmodel = LayerHFObjects(layer.shims[0])


@registry.architectures(LAYER_TRANSFORMER)
def create_layer_transformer_model(
    name: str,
    get_spans: Callable,
    layer: Model,
    tokenizer_config: Optional[dict] = None,
    transformer_config: Optional[dict] = None,
    mixed_precision: bool = False,
    grad_scaler_config: Optional[dict] = None,
) -> TransformerModel:
    """spacy-transformers.TransformerModel.v3 (same arguments) whose forward pass runs `layer`
    (a registered layer, e.g. ner_textcat.onnx_transformer.v1) on the wordpieces instead of the
    Hugging Face model: its tokenization, alignment, span windows and listeners stay the same."""
    model = stock_transformer_model(
        name,
        get_spans,
        tokenizer_config=tokenizer_config,
        transformer_config=transformer_config,
        mixed_precision=mixed_precision,
        grad_scaler_config=grad_scaler_config,
    )
    put_in_layer(model, layer)
    return model


def swap_in_transformer_layer(
    nlp: Language, *, component: str, layer: Model, layer_config: dict[str, Any]
) -> None:
    """Make `layer` the forward pass of the component's TransformerModel, and its config name
    LAYER_TRANSFORMER with `layer_config`, so that to_disk and spacy.load rebuild it alike.

        swap_in_transformer_layer(nlp, component="transformer", layer=onnx_layer,
                                  layer_config={"@layers": "ner_textcat.onnx_transformer.v1"})
    """
    put_in_layer(nlp.get_pipe(component).model, layer)
    # nlp.config is rebuilt from _pipe_configs; no public way changes a component's stored config.
    block = nlp._pipe_configs[component]["model"]
    block["@architectures"] = LAYER_TRANSFORMER
    block.pop("convert", None)
    block["layer"] = dict(layer_config)


register_fast_ner()
