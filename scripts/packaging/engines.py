"""The engines a trained pipeline is packaged for, behind one interface: float32 (the trained
pipeline as it is), int8 (its transformer quantized for PyTorch on the CPU,
scripts/packaging/int8_pipeline.py) and ONNX (its transformer run by ONNX Runtime,
scripts/packaging/onnx_pipeline.py). package_pipeline (scripts/packaging/wheel.py) asks each the
same things:

    engine = ENGINES["onnx"]
    splits = engine.check(Splits(test=Path("corpus/test.spacy")))  # stop before any work
    note = engine.build(staged, splits)          # convert a staged copy of the pipeline in place
    scores = engine.score(staged, splits, float_metrics=..., workdir=..., gold_preproc=False)
    engine.package_name("job_postings")          # job_postings_onnx
    engine.describe(float_metrics, note)         # the sentences that open its wheel's description

and ships engine.code inside the wheel, with engine.requirements among its requirements. A new
engine is one more Engine here; package_pipeline does not change.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Optional

from scripts.common import spacy_internals
from scripts.packaging import int8 as int8_module
from scripts.packaging import onnx_transformer as onnx_module
from scripts.packaging.int8_pipeline import check_int8_inputs, int8_description, quantize_staged
from scripts.packaging.meta import SCORES
from scripts.packaging.onnx_pipeline import check_onnx_inputs, onnx_description, onnx_staged

TOLERANCE = 0.005  # F lost by a converted engine beyond which package warns


@dataclass(frozen=True)
class Splits:
    """The data a converted engine needs: the test split it is scored on again, and the split
    whose texts calibrate it (int8)."""

    test: Optional[Path] = None
    calibration: Optional[Path] = None


@dataclass(frozen=True)
class Engine:
    name: str  # in messages: "the int8 build loses ..."
    suffix: str  # appended to the package name, "" for the float32 pipeline itself
    code: tuple[ModuleType, ...]  # this project's modules its wheel ships, to load at all
    requirements: tuple[str, ...]  # what its wheel needs beyond what the config names
    # Stop before any work where the splits or the engine's own packages are missing.
    check: Callable[[Splits], Any]
    # Convert the staged pipeline in place; return what its description says of the conversion.
    build: Callable[[Path, Splits], str]
    # The sentences that open its wheel's description, from the float32 scores and build's note.
    describe: Callable[[dict[str, Any], str], str]

    @property
    def converted(self) -> bool:
        """Whether it changes the trained pipeline, and so is scored on the test split again."""
        return bool(self.suffix)

    def package_name(self, name: str) -> str:
        return f"{name}_{self.suffix}" if self.suffix else name

    def score(
        self,
        staged: Path,
        splits: Splits,
        *,
        float_metrics: dict[str, Any],
        workdir: Path,
        gold_preproc: bool,
    ) -> dict[str, Any]:
        """The test scores its wheel's meta carries: the evaluate step's for the float32 pipeline,
        the converted pipeline's own, computed the same way on the CPU, for the others."""
        if not self.converted:
            return float_metrics
        from scripts.evaluation.run import evaluate_model

        return evaluate_model(
            model=str(staged),
            data_path=splits.test,
            output_dir=workdir,
            gold_preproc=gold_preproc,
            gpu_id="-1",
        )


def _int8_build(staged: Path, splits: Splits) -> str:
    assert splits.calibration is not None  # check_int8 stopped otherwise
    n_texts = quantize_staged(staged, calibration_path=splits.calibration)
    return f"{n_texts} texts of {splits.calibration.name}"


def _onnx_build(staged: Path, splits: Splits) -> str:
    onnx_staged(staged)
    return ""


FLOAT32 = Engine(
    name="float32",
    suffix="",
    code=(),
    requirements=(),
    check=lambda splits: None,
    build=lambda staged, splits: "",
    describe=lambda float_metrics, note: "",
)
INT8 = Engine(
    name="int8",
    suffix="int8",
    code=(spacy_internals, int8_module),
    requirements=(),
    check=lambda splits: check_int8_inputs(
        test_path=splits.test, calibration_path=splits.calibration
    ),
    build=_int8_build,
    describe=lambda float_metrics, note: int8_description(
        float_metrics=float_metrics, calibration=note
    ),
)
ONNX = Engine(
    name="ONNX",
    suffix="onnx",
    code=(spacy_internals, onnx_module),
    requirements=("onnxruntime>=1.20,<2",),
    check=lambda splits: check_onnx_inputs(test_path=splits.test),
    build=_onnx_build,
    describe=lambda float_metrics, note: onnx_description(float_metrics=float_metrics),
)
ENGINES = {engine.suffix or engine.name: engine for engine in (FLOAT32, INT8, ONNX)}


def compare_scores(
    float_metrics: dict[str, Any], metrics: dict[str, Any], *, engine: Engine
) -> tuple[list[str], list[str]]:
    """(lines, warnings): each test score of a converted engine's build against the float32 one;
    a warning where it loses more than TOLERANCE."""
    lines, warnings = [], []
    for task, key, label in SCORES:
        before = (float_metrics.get(task) or {}).get(key)
        after = (metrics.get(task) or {}).get(key)
        if before is None or after is None:
            continue
        lines.append(
            f"{label}: {engine.name} {after:.3f} against float32 {before:.3f} "
            f"({100 * (after - before):+.1f} points)"
        )
        # Rounded: 0.123 - 0.118 is half a point, not a hair more.
        if round(before - after, 9) > TOLERANCE:
            warnings.append(
                f"the {engine.name} build loses {100 * (before - after):.1f} points of {label} on "
                "the test split; ship the float32 wheel where that matters"
            )
    return lines, warnings
