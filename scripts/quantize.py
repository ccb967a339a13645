"""int8 CPU inference: the pipeline's transformer with its linear layers dynamically quantized.

    nlp = spacy.load("training/model-best")
    quantize_pipeline(nlp).to_disk("training/model-int8")   # then package it with this file as code

torch.ao.quantization.quantize_dynamic turns the nn.Linear layers of the Hugging Face model (attention
projections, feed-forward input; not the feed-forward output, see FLOAT32_LINEARS) into int8 matmuls with
weights quantized per output channel and activations quantized on the fly; embeddings, layer norms,
attention, the NER and the text classifier stay float32. A saved int8 pipeline
names the architecture below instead of spacy-transformers.TransformerModel.v3, so loading it needs
this module imported: `scripts.package --fast-cpu` ships it inside the wheel (spacy package --code),
whose __init__ imports it before spaCy reads the config. spacy-transformers cannot serialize a
quantized model itself (it rebuilds a float model from its config before loading the weights), and
neither spaCy nor spacy-transformers has a registered function that quantizes, so a few lines of code
have to travel with the pipeline. This module depends on torch, transformers and spacy-transformers
only: nothing from this repository.
"""
from __future__ import annotations

import re
import warnings
from typing import Any, Callable, Optional

import torch
from spacy.language import Language
from spacy.util import registry
from spacy_transformers.layers.transformer_model import TransformerModel
from transformers import AutoModel

ARCHITECTURE = "ner_textcat.TransformerModelInt8.v1"

# torch.load of quantized tensors (inside spacy-transformers' loader) warns about an internal storage
# class; it is torch's own business and says nothing to the user of the pipeline.
warnings.filterwarnings("ignore", message="TypedStorage is deprecated", category=UserWarning)


# Feed-forward output projections stay float32: their input (after GELU) has outlier channels that one
# dynamic int8 scale per batch clips: quantizing them too made the sample pipeline 2.4x instead of 1.7x
# faster, but moved its NER F by -3 points on dev. BERT, RoBERTa, XLM-R and DeBERTa name them
# encoder.layer.N.output.dense, DistilBERT transformer.layer.N.ffn.lin2.
FLOAT32_LINEARS = re.compile(r"(^|\.)layer\.\d+\.output\.dense$|(^|\.)ffn\.lin2$")


def int8_linear_names(model: torch.nn.Module) -> list[str]:
    """The linear layers that become int8: all but the feed-forward output projections."""
    return [name for name, module in model.named_modules() if isinstance(module, torch.nn.Linear) and not FLOAT32_LINEARS.search(name)]


def quantize_module(model: torch.nn.Module) -> torch.nn.Module:
    """The model with int8 linear layers (per-channel weights, dynamic activations), in eval mode."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    spec = {name: per_channel_dynamic_qconfig for name in int8_linear_names(model)}
    with warnings.catch_warnings():  # torch announces a move of this API to torchao; it works in the pinned torch
        warnings.simplefilter("ignore")
        quantized = quantize_dynamic(model.eval(), spec, dtype=torch.qint8)
    return quantized


class Int8AutoModel:
    """AutoModel whose models come out quantized: spacy-transformers' loader calls from_config, then loads
    the saved int8 state dict into it, which only fits a model quantized the same way."""

    @staticmethod
    def from_config(config: Any, **kwargs: Any) -> torch.nn.Module:
        return quantize_module(AutoModel.from_config(config, **kwargs))

    @staticmethod
    def from_pretrained(*args: Any, **kwargs: Any) -> torch.nn.Module:
        return quantize_module(AutoModel.from_pretrained(*args, **kwargs))


@registry.architectures(ARCHITECTURE)
def create_int8_transformer_model(
    name: str,
    get_spans: Callable,
    tokenizer_config: Optional[dict] = None,
    transformer_config: Optional[dict] = None,
    mixed_precision: bool = False,
    grad_scaler_config: Optional[dict] = None,
) -> TransformerModel:
    """spacy-transformers.TransformerModel.v3 (same arguments) whose Hugging Face model is int8 (CPU inference only)."""
    model = TransformerModel(
        name, get_spans, dict(tokenizer_config or {}), dict(transformer_config or {}), mixed_precision, dict(grad_scaler_config or {}),
    )
    model.layers[0].shims[0].model_cls = Int8AutoModel
    set_transformer = model.attrs["set_transformer"]

    def set_quantized_transformer(model_: TransformerModel, hf_model: Any) -> None:
        hf_model.transformer = quantize_module(hf_model.transformer)
        set_transformer(model_, hf_model)

    model.attrs["set_transformer"] = set_quantized_transformer  # initializing from a hub name quantizes too
    return model


def quantize_pipeline(nlp: Language, *, component: str = "transformer") -> Language:
    """Quantize the transformer of a loaded pipeline in place and make its config name the int8 architecture."""
    pipe = nlp.get_pipe(component)
    shim = pipe.model.layers[0].shims[0]
    if getattr(shim, "model_cls", None) is Int8AutoModel:
        return nlp
    quantized = quantize_module(pipe.model.transformer)
    shim._model = quantized
    shim._hfmodel.transformer = quantized
    shim.model_cls = Int8AutoModel
    nlp._pipe_configs[component]["model"]["@architectures"] = ARCHITECTURE  # what nlp.config and to_disk write
    return nlp
