"""int8 CPU inference: a transformer's linear layers dynamically quantized, after SmoothQuant.

    quantize_module(hf_model, input_max=input_maxima(hf_model, int8_linear_names(hf_model), run))

torch.ao.quantization.quantize_dynamic turns every nn.Linear layer of the Hugging Face model
(attention projections, feed-forward input and output) into an int8 matmul (Int8Linear) with
weights quantized per output channel and activations quantized on the fly, one scale per matrix;
embeddings, layer norms, attention, the NER and the text classifier stay float32.

The activations take all 8 bits (torch's own dynamic Linear keeps 7) and the weights 7, as
onnxruntime does: an x86 CPU without VNNI multiplies uint8 by int8 in pairs summed into int16
(AVX2's vpmaddubsw), which 8-bit weights could overflow and 7-bit ones cannot. The feed-forward
output projections, whose input is the GELU's output with its outliers, needed the 8-bit
activations (with 7, entities agreed with float32's at F 0.88 instead of 0.94 on a pipeline
trained on job descriptions); v1 pipelines, built before, keep those layers float32.

One scale per activation matrix is what costs accuracy: a few input channels of a transformer's
linear layers are much larger than the rest, and one scale leaves the others few levels. So each
quantized layer first divides its input channel-wise by s and has its weight columns multiplied by
s (SmoothQuant, Xiao et al. 2022), which leaves the float32 result unchanged and moves part of the
activation range into the per-channel weight scales:
s = max|x|^ALPHA / max|W|^(1 - ALPHA), with max|x| per channel measured on calibration texts.

A saved int8 pipeline names spacy_internals' converted transformer architecture with QUANTIZE as its
`convert`, which rebuilds this module's structure for the saved int8 weights to load into: so
`scripts.package --fast-cpu` ships this file and spacy_internals.py inside the wheel (spacy package
--code), whose __init__ imports both before spaCy reads the config. spacy-transformers cannot
serialize a quantized model itself (it rebuilds a float model from its config before loading the
weights), so a few lines of code have to travel with the pipeline. This module depends on torch and
spaCy's registry only: nothing from this repository (scripts.packaging.int8_pipeline turns a loaded
pipeline into its int8 version).
"""

from __future__ import annotations

import functools
import re
import warnings
from typing import Any, Callable, Optional

import torch
from spacy.util import registry

QUANTIZE = "ner_textcat.quantize_int8.v2"  # every linear layer, 8-bit activations
# Pipelines built before v2: feed-forward outputs float32, torch's 7-bit activations.
QUANTIZE_V1 = "ner_textcat.quantize_int8.v1"

# The feed-forward output projections, float32 in v1
# (BERT, RoBERTa, XLM-R, DeBERTa: encoder.layer.N.output.dense; DistilBERT: transformer...ffn.lin2).
FEED_FORWARD_OUTPUTS = re.compile(r"(^|\.)layer\.\d+\.output\.dense$|(^|\.)ffn\.lin2$")

# 0.8 kept int8 entities closer to float32's than 0.5 or no smoothing on the pipelines tried.
ALPHA = 0.8


def int8_linear_names(model: torch.nn.Module, *, version: int = 2) -> list[str]:
    """The linear layers that become int8: all of them (v2), or all but the feed-forward output
    projections (v1)."""
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
        and (version >= 2 or not FEED_FORWARD_OUTPUTS.search(name))
    ]


class Int8Linear(torch.ao.nn.quantized.dynamic.Linear):
    """torch's dynamic int8 Linear with its activations quantized in 8 bits, not 7 (its weights
    come in 7: int8_qconfig)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # torch's Linear passes reduce_range=True to this op with no public switch, so this forward
        # is torch's own with False, reading the packed weights the same private way (pinned torch;
        # tests/test_quantize.py fails if the attribute or the 8-bit activations' effect goes).
        packed = self._packed_params._packed_params
        return torch.ops.quantized.linear_dynamic(x, packed, reduce_range=False).to(x.dtype)


def int8_qconfig() -> Any:
    """Per-channel symmetric weights in 7 bits ([-64, 63]) for Int8Linear."""
    from torch.ao.quantization import PerChannelMinMaxObserver, QConfig
    from torch.ao.quantization.qconfig import default_dynamic_quant_observer

    weight = PerChannelMinMaxObserver.with_args(
        dtype=torch.qint8, qscheme=torch.per_channel_symmetric, quant_min=-64, quant_max=63
    )
    return QConfig(activation=default_dynamic_quant_observer, weight=weight)


class SmoothedLinear(torch.nn.Module):
    """linear(x * inv_scale): a linear layer whose input is rescaled channel-wise (1: unchanged)."""

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
    """s per input channel: max|x|^alpha / max|W|^(1 - alpha). A channel quiet on the calibration
    texts is floored at 1% of the median maximum, so that it cannot blow up when it does fire."""
    input_max = input_max.clamp(min=max(0.01 * float(input_max.median()), 1e-5))
    weight_max = weight.detach().abs().amax(0).float().clamp(min=1e-5)
    return input_max.pow(alpha) / weight_max.pow(1 - alpha)


def smooth_module(
    model: torch.nn.Module,
    *,
    input_max: Optional[dict[str, torch.Tensor]] = None,
    version: int = 2,
) -> list[str]:
    """Put each linear layer to be quantized behind a SmoothedLinear, in place; where input_max
    (from input_maxima) has its name, move the scale s into its weight columns and 1/s into
    inv_scale (the float32 output stays the same), else leave it unscaled (the shape a saved int8
    state dict loads into). Returns the names of the linear layers, now '<name>.linear'."""
    modules = dict(model.named_modules())
    names = int8_linear_names(model, version=version)
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
    model: torch.nn.Module,
    *,
    input_max: Optional[dict[str, torch.Tensor]] = None,
    version: int = 2,
) -> torch.nn.Module:
    """The model, smoothed (smooth_module), with int8 linear layers (per-channel weights, dynamic
    activations), in eval mode: Int8Linear (v2) or torch's own dynamic Linear (v1)."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    qconfig, mapping = (
        (int8_qconfig(), {torch.nn.Linear: Int8Linear})
        if version >= 2
        else (per_channel_dynamic_qconfig, None)
    )
    spec = {name: qconfig for name in smooth_module(model, input_max=input_max, version=version)}
    with warnings.catch_warnings():
        # torch announces a move of this API to torchao; it works in the pinned torch.
        warnings.simplefilter("ignore")
        quantized = quantize_dynamic(model.eval(), spec, dtype=torch.qint8, mapping=mapping)
    return quantized


@registry.misc(QUANTIZE)
def make_quantize_int8() -> Callable[[torch.nn.Module], torch.nn.Module]:
    """quantize_module without calibration: the structure a saved int8 state dict loads into."""
    return quantize_module


@registry.misc(QUANTIZE_V1)
def make_quantize_int8_v1() -> Callable[[torch.nn.Module], torch.nn.Module]:
    """The structure of int8 pipelines built before v2: feed-forward outputs float32."""
    return functools.partial(quantize_module, version=1)
