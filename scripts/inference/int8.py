"""int8 CPU inference: the pipeline's transformer with its linear layers dynamically quantized.

    nlp = spacy.load("training/model-best")
    quantize_pipeline(nlp, calibration=texts).to_disk("training/model-int8")   # then package it with this file as code

torch.ao.quantization.quantize_dynamic turns the nn.Linear layers of the Hugging Face model (attention
projections, feed-forward input; not the feed-forward output, see FLOAT32_LINEARS) into int8 matmuls with
weights quantized per output channel and activations quantized on the fly, one scale per matrix;
embeddings, layer norms, attention, the NER and the text classifier stay float32.

One scale per activation matrix is what costs accuracy: a few input channels of a transformer's linear
layers are much larger than the rest, and the 7-bit activations torch uses leave the others few levels.
So each quantized layer first divides its input channel-wise by s and has its weight columns multiplied by
s (SmoothQuant, Xiao et al. 2022), which leaves the float32 result unchanged and moves part of the
activation range into the per-channel weight scales: s = max|x|^ALPHA / max|W|^(1 - ALPHA), with max|x|
per channel measured on calibration texts (quantize_pipeline's `calibration`).

A saved int8 pipeline names the architecture below instead of spacy-transformers.TransformerModel.v3, so
loading it needs this module imported: `scripts.package --fast-cpu` ships it inside the wheel (spacy
package --code), whose __init__ imports it before spaCy reads the config. spacy-transformers cannot
serialize a quantized model itself (it rebuilds a float model from its config before loading the
weights), and neither spaCy nor spacy-transformers has a registered function that quantizes, so a few
lines of code have to travel with the pipeline. This module depends on torch, transformers and
spacy-transformers only: nothing from this repository.
"""

from __future__ import annotations

import re
import warnings
from typing import Any, Callable, Iterable, Optional

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


# Measured on two trained job-posting pipelines (entities of the int8 build that match the float32 build's,
# as F, on 492 texts): 0.944 and 0.871 without smoothing, 0.971 and 0.934 at 0.5, 0.982 and 0.956 at 0.8.
ALPHA = 0.8


def int8_linear_names(model: torch.nn.Module) -> list[str]:
    """The linear layers that become int8: all but the feed-forward output projections."""
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and not FLOAT32_LINEARS.search(name)
    ]


class SmoothedLinear(torch.nn.Module):
    """linear(x * inv_scale): a linear layer whose input is rescaled channel-wise before it (1 = unchanged)."""

    def __init__(self, linear: torch.nn.Module, in_features: int) -> None:
        super().__init__()
        self.linear = linear
        self.register_buffer("inv_scale", torch.ones(in_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x * self.inv_scale)


def input_maxima(
    model: torch.nn.Module, names: list[str], run: Callable[[], Any]
) -> dict[str, torch.Tensor]:
    """max |input| per input channel of each named linear layer while run() drives the model."""
    modules = dict(model.named_modules())
    maxima = {name: torch.zeros(modules[name].in_features) for name in names}

    def record(name: str) -> Callable:
        def hook(module: torch.nn.Module, args: tuple) -> None:
            if not args:  # called with keywords only: nothing to measure, the layer stays unscaled
                return
            x = args[0].detach().float()
            maxima[name] = torch.maximum(
                maxima[name], x.abs().reshape(-1, x.shape[-1]).amax(0).cpu()
            )

        return hook

    hooks = [modules[name].register_forward_pre_hook(record(name)) for name in names]
    try:
        with torch.no_grad():
            run()
    finally:
        for handle in hooks:
            handle.remove()
    return maxima


def smoothing_scale(
    input_max: torch.Tensor, weight: torch.Tensor, *, alpha: float = ALPHA
) -> torch.Tensor:
    """s per input channel: max|x|^alpha / max|W|^(1 - alpha). A channel quiet on the calibration texts is
    floored at 1% of the median maximum, so that it cannot be blown up when it does fire."""
    input_max = input_max.clamp(min=max(0.01 * float(input_max.median()), 1e-5))
    weight_max = weight.detach().abs().amax(0).float().clamp(min=1e-5)
    return input_max.pow(alpha) / weight_max.pow(1 - alpha)


def smooth_module(
    model: torch.nn.Module, *, input_max: Optional[dict[str, torch.Tensor]] = None
) -> list[str]:
    """Put each linear layer to be quantized behind a SmoothedLinear, in place; where input_max (from
    input_maxima) has its name, move the scale s into its weight columns and 1/s into inv_scale (the
    float32 output stays the same), else leave it unscaled (the shape a saved int8 state dict loads
    into). Returns the names of the linear layers, now '<name>.linear'."""
    modules = dict(model.named_modules())
    names = int8_linear_names(model)
    for name in names:
        linear = modules[name]
        smoothed = SmoothedLinear(linear, linear.in_features)
        if input_max is not None and name in input_max:
            scale = smoothing_scale(input_max[name], linear.weight)
            with torch.no_grad():
                linear.weight.mul_(scale.to(linear.weight))
                smoothed.inv_scale.copy_(1.0 / scale)
        parent, _, child = name.rpartition(".")
        setattr(modules[parent] if parent else model, child, smoothed)
    return [f"{name}.linear" for name in names]


def quantize_module(
    model: torch.nn.Module, *, input_max: Optional[dict[str, torch.Tensor]] = None
) -> torch.nn.Module:
    """The model, smoothed (smooth_module), with int8 linear layers (per-channel weights, dynamic
    activations), in eval mode."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    spec = {name: per_channel_dynamic_qconfig for name in smooth_module(model, input_max=input_max)}
    with (
        warnings.catch_warnings()
    ):  # torch announces a move of this API to torchao; it works in the pinned torch
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
        name,
        get_spans,
        dict(tokenizer_config or {}),
        dict(transformer_config or {}),
        mixed_precision,
        dict(grad_scaler_config or {}),
    )
    model.layers[0].shims[0].model_cls = Int8AutoModel
    set_transformer = model.attrs["set_transformer"]

    def set_quantized_transformer(model_: TransformerModel, hf_model: Any) -> None:
        hf_model.transformer = quantize_module(hf_model.transformer)
        set_transformer(model_, hf_model)

    model.attrs["set_transformer"] = (
        set_quantized_transformer  # initializing from a hub name quantizes too
    )
    return model


def quantize_pipeline(
    nlp: Language, *, calibration: Iterable[str] = (), component: str = "transformer"
) -> Language:
    """Quantize the transformer of a loaded pipeline in place, smoothed with the input maxima its float
    model shows on the calibration texts (none: unsmoothed), and make its config name the int8 architecture."""
    pipe = nlp.get_pipe(component)
    shim = pipe.model.layers[0].shims[0]
    if getattr(shim, "model_cls", None) is Int8AutoModel:
        return nlp
    model = pipe.model.transformer
    texts = list(calibration)
    input_max = None
    if texts:
        with nlp.select_pipes(enable=[component]):
            input_max = input_maxima(model, int8_linear_names(model), lambda: list(nlp.pipe(texts)))
    quantized = quantize_module(model, input_max=input_max)
    shim._model = quantized
    shim._hfmodel.transformer = quantized
    shim.model_cls = Int8AutoModel
    nlp._pipe_configs[component]["model"]["@architectures"] = (
        ARCHITECTURE  # what nlp.config and to_disk write
    )
    return nlp
