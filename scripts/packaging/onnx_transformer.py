"""ONNX Runtime inference: the transformer's forward pass run by an onnxruntime session inside
spacy-transformers' own TransformerModel, so that spaCy, the NER and the classifier stay the same.

    layer = onnx_transformer_layer()            # or spacy.load a pipeline whose config names it
    layer.shims[0].load(onnx_bytes, hf_config=config.to_dict(), tokenizer=tokenizer)

The layer takes what spacy-transformers gives the Hugging Face model (the WordpieceBatch: input_ids,
attention_mask and, where the model has them, token_type_ids) and returns a BaseModelOutput whose
last_hidden_state is what the model would have returned. Inference only: it has no gradient, so
a pipeline holding it predicts but does not train.

Its shim serializes the ONNX model, the Hugging Face config and the tokenizer's files into the
component's `model` file (spacy-transformers' Transformer.to_disk), so that a saved pipeline and
its wheel hold everything they need. A saved ONNX pipeline names spacy_internals' layer
transformer architecture with ONNX_LAYER as its `layer`: `scripts.package --onnx` ships this file
and spacy_internals.py inside the wheel (spacy package --code). This module depends on numpy,
torch (spacy-transformers' output type), transformers' tokenizer, thinc, spaCy's registry and
onnxruntime (imported when a model is loaded): nothing from this repository.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Callable, Optional

import numpy
import srsly
import torch
from spacy.util import registry
from thinc.api import Model
from thinc.shims import Shim
from transformers import AutoTokenizer
from transformers.modeling_outputs import BaseModelOutput

ONNX_LAYER = "ner_textcat.onnx_transformer.v1"
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAME = "last_hidden_state"


class OnnxShim(Shim):
    """An onnxruntime session with the Hugging Face config and tokenizer of the model it runs.

    threads: onnxruntime's intra-op threads (0: its default, one per physical core)."""

    def __init__(self, *, threads: int = 0) -> None:
        super().__init__(None)
        self.threads = threads
        self.onnx_bytes = b""
        self.hf_config: dict[str, Any] = {}
        self.tokenizer: Any = None
        self.session: Any = None
        self.input_names: tuple[str, ...] = ()

    def load(self, onnx_bytes: bytes, *, hf_config: dict[str, Any], tokenizer: Any) -> OnnxShim:
        """Start a session on the ONNX model; keep the config and tokenizer it goes with."""
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = self.threads
        # spaCy's own work (NER, classifier) runs between the forward passes on the same cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(
            onnx_bytes, options, providers=["CPUExecutionProvider"]
        )
        self.input_names = tuple(i.name for i in self.session.get_inputs())
        self.onnx_bytes = onnx_bytes
        self.hf_config = dict(hf_config)
        self.tokenizer = tokenizer
        return self

    def run(self, wordpieces: Any) -> numpy.ndarray:
        """last_hidden_state for a spacy-transformers WordpieceBatch, as a float32 array."""
        if self.session is None:
            raise ValueError(
                "the ONNX transformer has no model loaded; load the pipeline with spacy.load"
            )
        arrays = {
            "input_ids": wordpieces.input_ids,
            "attention_mask": wordpieces.attention_mask,
            "token_type_ids": wordpieces.token_type_ids,
        }
        if arrays["token_type_ids"] is None:  # a tokenizer without them: all of segment 0
            arrays["token_type_ids"] = numpy.zeros_like(wordpieces.input_ids)
        feeds = {name: numpy.asarray(arrays[name], dtype="int64") for name in self.input_names}
        (hidden,) = self.session.run([OUTPUT_NAME], feeds)
        return hidden

    def __call__(self, inputs: Any, is_train: bool) -> tuple[Any, Callable]:
        if is_train:
            raise ValueError(
                "the ONNX transformer runs inference only; train the float32 pipeline instead"
            )
        return self.run(inputs), no_backprop

    def to_device(self, device_type: str, device_id: int) -> None:
        if device_type != "cpu":
            raise ValueError(
                "the ONNX transformer runs on the CPU only; use the float32 pipeline on a GPU"
            )

    def to_bytes(self) -> bytes:
        return srsly.msgpack_dumps(
            {
                "onnx": self.onnx_bytes,
                "config": self.hf_config,
                "tokenizer": tokenizer_files(self.tokenizer) if self.tokenizer else {},
            }
        )

    def from_bytes(self, bytes_data: bytes) -> OnnxShim:
        msg = srsly.msgpack_loads(bytes_data)
        if not msg["onnx"]:
            return self
        return self.load(
            msg["onnx"], hf_config=msg["config"], tokenizer=tokenizer_from_files(msg["tokenizer"])
        )

    # A session cannot be pickled or deep-copied (Model.copy, multiprocessing): its bytes can.
    def __getstate__(self) -> dict[str, Any]:
        return {"threads": self.threads, "bytes": self.to_bytes()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(threads=state["threads"])
        self.from_bytes(state["bytes"])


def no_backprop(d_output: Any) -> Any:
    raise ValueError("the ONNX transformer runs inference only; it has no gradient")


def tokenizer_files(tokenizer: Any) -> dict[str, Any]:
    """The files save_pretrained writes for the tokenizer, by name, and whether it is fast."""
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save_pretrained(tmp)
        files = {p.name: p.read_bytes() for p in Path(tmp).iterdir() if p.is_file()}
    return {"use_fast": bool(tokenizer.is_fast), "files": files}


def tokenizer_from_files(saved: dict[str, Any]) -> Any:
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in saved["files"].items():
            (Path(tmp) / name).write_bytes(data)
        return AutoTokenizer.from_pretrained(tmp, use_fast=saved["use_fast"])


def forward(model: Model, wordpieces: Any, is_train: bool) -> tuple[BaseModelOutput, Callable]:
    hidden, backprop = model.shims[0](wordpieces, is_train)
    # spacy-transformers splits the output per Doc from torch tensors; from_numpy copies nothing.
    return BaseModelOutput(last_hidden_state=torch.from_numpy(hidden)), backprop


@registry.layers(ONNX_LAYER)
def onnx_transformer_layer(threads: int = 0) -> Model:
    """The thinc layer that runs the transformer on onnxruntime (threads: intra-op threads, 0 for
    onnxruntime's default); its model arrives with the pipeline's weights (from_bytes)."""
    return Model("onnx-transformer", forward, shims=[OnnxShim(threads=threads)])


def onnx_shim(layer: Model) -> Optional[OnnxShim]:
    """The layer's OnnxShim, or None where the layer is not an ONNX one."""
    shims = [shim for shim in layer.shims if isinstance(shim, OnnxShim)]
    return shims[0] if shims else None
