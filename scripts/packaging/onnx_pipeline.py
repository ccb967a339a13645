"""The ONNX build of a pipeline: its transformer exported to ONNX, fused for onnxruntime, its
weights quantized to int8, and run by scripts/packaging/onnx_transformer.py in place of PyTorch
(scripts/common/spacy_internals.py puts the layer in); spaCy, the NER and the classifier unchanged.

    onnx_pipeline(spacy.load("training/model-best")).to_disk("model-onnx")

Export: torch.onnx.export's TorchScript exporter (dynamo=False: it needs no onnxscript and works
offline), batch and sequence axes dynamic. Fusion: onnxruntime.transformers' optimizer for BERT-like
encoders (attention, embedding and skip layer norms, bias GELU as single kernels). Quantization:
onnxruntime's quantize_dynamic, int8 weights per output channel (7-bit range), activations quantized
on the fly.
The saved pipeline needs onnxruntime and both modules imported (the --onnx wheel ships them).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterator, Optional

from spacy.language import Language

from scripts.common.errors import UserError, one_line
from scripts.common.spacy_internals import LAYER_TRANSFORMER, swap_in_transformer_layer
from scripts.packaging.meta import SCORES, score
from scripts.packaging.onnx_transformer import (
    INPUT_NAMES,
    ONNX_LAYER,
    OUTPUT_NAME,
    onnx_transformer_layer,
)

OPSET = 17  # supported by every onnxruntime the requirement allows
# Encoders whose graph onnxruntime.transformers' BERT fusion knows (others run unfused).
FUSABLE = {"bert", "roberta", "xlm-roberta", "distilbert", "camembert", "electra", "mpnet"}


def check_onnx_inputs(*, test_path: Optional[Path]) -> Path:
    """The test split; stop before any work where it or onnxruntime is missing."""
    if test_path is None or not test_path.is_file():
        raise UserError(
            f"{test_path}: no test split to score the ONNX build on; "
            "pass --test with the evaluate step's data (corpus/test.spacy)"
        )
    for module in ("onnxruntime", "onnx"):
        if importlib.util.find_spec(module) is None:
            raise UserError(
                f"{module} is not installed, and the ONNX build needs it; "
                "pip install -r requirements/onnx.txt"
            )
    return test_path


def is_onnx(nlp: Language, *, component: str = "transformer") -> bool:
    """Whether the component's config already names the ONNX transformer."""
    model = nlp.config["components"][component]["model"]
    return model.get("@architectures") == LAYER_TRANSFORMER and (
        model.get("layer", {}).get("@layers") == ONNX_LAYER
    )


def export_onnx(hf_model: Any, tokenizer: Any, path: Path) -> tuple[str, ...]:
    """Write the Hugging Face model's forward (last_hidden_state only) as ONNX; return its
    input names: those of INPUT_NAMES the tokenizer gives."""
    import torch

    names = tuple(name for name in INPUT_NAMES if name in tokenizer.model_input_names)
    if "input_ids" not in names or "attention_mask" not in names:
        raise UserError(
            f"the tokenizer gives {', '.join(tokenizer.model_input_names)}, not input_ids and "
            "attention_mask; only encoders taking those can be exported to ONNX"
        )

    class LastHiddenState(torch.nn.Module):
        """The model with the tensors spacy-transformers reads: no pooler output."""

        def __init__(self) -> None:
            super().__init__()
            self.model = hf_model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.model(**dict(zip(names, inputs))).last_hidden_state

    sample = tokenizer(["an example", "a longer example text"], padding=True, return_tensors="pt")
    axes = {name: {0: "batch", 1: "sequence"} for name in (*names, OUTPUT_NAME)}
    hf_model.eval()
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter warns of its deprecation (dynamo's needs onnxscript).
        warnings.simplefilter("ignore")
        torch.onnx.export(
            LastHiddenState().eval(),
            tuple(sample[name] for name in names),
            str(path),
            input_names=list(names),
            output_names=[OUTPUT_NAME],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )
    return names


def fuse_onnx(source: Path, target: Path, *, hf_config: Any) -> bool:
    """Fuse the exported graph's attention, layer norms and GELU into onnxruntime's kernels for
    BERT-like encoders; return whether it did (False: target is an unfused copy)."""
    from onnxruntime.transformers.optimizer import optimize_model

    if hf_config.model_type not in FUSABLE:
        target.write_bytes(source.read_bytes())
        return False
    optimized = optimize_model(
        str(source),
        model_type="bert",
        num_heads=hf_config.num_attention_heads,
        hidden_size=hf_config.hidden_size,
    )
    optimized.save_model_to_file(str(target))
    return True


def quantize_onnx(source: Path, target: Path) -> None:
    """int8 weights (per output channel, in 7 bits) and dynamically quantized activations for the
    graph's matrix multiplications and attention."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(source),
        str(target),
        weight_type=QuantType.QInt8,
        per_channel=True,
        # 7-bit weights kept the entities and categories closer to float32's at the same speed.
        reduce_range=True,
        # Fused contrib ops have no shape inference in onnx: their outputs are float32.
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence onnxruntime's tools, which print and log advice meant for other model kinds."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


def onnx_bytes(hf_model: Any, tokenizer: Any, *, quantize: bool = True) -> tuple[bytes, bool]:
    """The model exported, fused and (quantize) quantized, as ONNX bytes; and whether it fused."""
    with tempfile.TemporaryDirectory() as tmp, quiet():
        exported, fused, final = (Path(tmp) / f"{n}.onnx" for n in ("export", "fused", "int8"))
        export_onnx(hf_model, tokenizer, exported)
        did_fuse = fuse_onnx(exported, fused, hf_config=hf_model.config)
        if quantize:
            quantize_onnx(fused, final)
        else:
            final = fused
        return final.read_bytes(), did_fuse


def onnx_pipeline(
    nlp: Language, *, quantize: bool = True, component: str = "transformer"
) -> Language:
    """Put an ONNX Runtime transformer (int8 unless quantize=False) in place of the PyTorch one of
    a loaded pipeline, in place; a second call changes nothing."""
    if is_onnx(nlp, component=component):
        return nlp
    model = nlp.get_pipe(component).model
    hf_model, tokenizer = model.transformer, model.tokenizer
    if hf_model is None:
        raise UserError(
            f"the pipeline's {component} holds no PyTorch model to export; pass the trained "
            "float32 pipeline (training/model-best)"
        )
    data, _ = onnx_bytes(hf_model, tokenizer, quantize=quantize)
    layer = onnx_transformer_layer()
    layer.shims[0].load(data, hf_config=hf_model.config.to_dict(), tokenizer=tokenizer)
    swap_in_transformer_layer(
        nlp, component=component, layer=layer, layer_config={"@layers": ONNX_LAYER}
    )
    return nlp


def onnx_staged(staged: Path, *, quantize: bool = True) -> None:
    """Replace the staged pipeline by its ONNX version."""
    import spacy

    try:
        nlp = spacy.load(staged)
    except Exception as err:
        raise UserError(f"{staged}: cannot load the pipeline to export ({one_line(err)})") from None
    onnx_pipeline(nlp, quantize=quantize).to_disk(staged)


def onnx_description(*, float_metrics: dict[str, Any], quantize: bool = True) -> str:
    """The sentences that open an ONNX wheel's description: what changed, and the float32 scores
    its own are to be read against."""
    scored = [
        f"{label} {score(float_metrics[task][key])}"
        for task, key, label in SCORES
        if float_metrics.get(task)
    ]
    weights = (
        "its weights quantized to int8 (onnxruntime quantize_dynamic, per channel, 7-bit range)"
        if quantize
        else "in float32"
    )
    return (
        "ONNX build for CPU inference: the transformer runs on ONNX Runtime, exported with "
        f"torch.onnx and fused for onnxruntime, {weights}; spaCy's tokenizer, the NER and the "
        "text classifier are unchanged. The scores below are this ONNX pipeline's"
        + (
            f"; the float32 pipeline it was made from scored {', '.join(scored)}."
            if scored
            else "."
        )
    )
