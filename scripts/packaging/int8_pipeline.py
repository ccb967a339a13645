"""The int8 build of a pipeline: its transformer quantized (scripts/packaging/int8.py) and put in
place of the float32 one (scripts/common/spacy_internals.py), calibrated on a split's texts and
scored on the test split.

    quantize_pipeline(spacy.load("training/model-best"), calibration=texts).to_disk("model-int8")

The saved pipeline names spacy_internals' converted transformer architecture with int8's QUANTIZE
as its `convert`; loading it needs both modules imported (the --fast-cpu wheel ships them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Optional

from spacy.language import Language

from scripts.common.errors import UserError, one_line
from scripts.common.spacy_internals import CONVERTED_TRANSFORMER, swap_in_converted_transformer
from scripts.packaging.int8 import QUANTIZE, input_maxima, int8_linear_names, quantize_module
from scripts.packaging.meta import SCORES, score

INT8_CONVERT = {"@misc": QUANTIZE}
CALIBRATION_TEXTS = 1000  # at most this many texts of the calibration split


def is_int8(nlp: Language, *, component: str = "transformer") -> bool:
    """Whether the component's config already names the int8 transformer."""
    model = nlp.config["components"][component]["model"]
    return model.get("@architectures") == CONVERTED_TRANSFORMER and (
        model.get("convert") == INT8_CONVERT
    )


def quantize_pipeline(
    nlp: Language, *, calibration: Iterable[str] = (), component: str = "transformer"
) -> Language:
    """Quantize the transformer of a loaded pipeline in place, smoothed with the input maxima its
    float model shows on the calibration texts (none: unsmoothed); a second call changes nothing."""
    if is_int8(nlp, component=component):
        return nlp
    model = nlp.get_pipe(component).model.transformer
    texts = list(calibration)
    input_max = None
    if texts:
        with nlp.select_pipes(enable=[component]):
            input_max = input_maxima(model, int8_linear_names(model), lambda: list(nlp.pipe(texts)))
    quantized = quantize_module(model, input_max=input_max)
    swap_in_converted_transformer(nlp, component=component, model=quantized, convert=INT8_CONVERT)
    return nlp


def check_int8_inputs(
    *, test_path: Optional[Path], calibration_path: Optional[Path]
) -> tuple[Path, Path]:
    """The test and calibration splits; stop before any work where one is missing."""
    if test_path is None or not test_path.is_file():
        raise UserError(
            f"{test_path}: no test split to score the int8 build on; "
            "pass --test with the evaluate step's data (corpus/test.spacy)"
        )
    if calibration_path is None or not calibration_path.is_file():
        raise UserError(
            f"{calibration_path}: no texts to calibrate the int8 build on; "
            "pass --calibration with a .spacy file (corpus/dev.spacy)"
        )
    return test_path, calibration_path


def quantize_staged(staged: Path, *, calibration_path: Path) -> int:
    """Replace the staged pipeline by its int8 version, calibrated on the texts of
    calibration_path; return how many texts that was."""
    import spacy
    from spacy.tokens import DocBin

    nlp = spacy.load(staged)
    try:
        docs = DocBin().from_disk(calibration_path).get_docs(nlp.vocab)
        texts = [doc.text for doc, _ in zip(docs, range(CALIBRATION_TEXTS)) if doc.text.strip()]
    except Exception as err:  # not a DocBin
        raise UserError(
            f"{calibration_path}: cannot read it as a .spacy DocBin ({one_line(err)}); "
            "pass --calibration corpus/dev.spacy"
        ) from None
    if not texts:
        raise UserError(
            f"{calibration_path}: no texts to calibrate the int8 build on; "
            "pass --calibration with a non-empty split"
        )
    quantize_pipeline(nlp, calibration=texts).to_disk(staged)
    return len(texts)


def int8_description(*, float_metrics: dict[str, Any], calibration: str) -> str:
    """The sentences that open an int8 wheel's description: what changed, on what it was
    calibrated, and the float32 scores its own are to be read against."""
    scored = [
        f"{label} {score(float_metrics[task][key])}"
        for task, key, label in SCORES
        if float_metrics.get(task)
    ]
    return (
        "int8 build for CPU inference: the transformer's linear layers are dynamically quantized "
        "(torch.ao.quantization.quantize_dynamic) after SmoothQuant rescaling calibrated on "
        f"{calibration}; the NER and text classifier are unchanged. The scores below are this "
        "int8 pipeline's"
        + (
            f"; the float32 pipeline it was made from scored {', '.join(scored)}."
            if scored
            else "."
        )
    )
