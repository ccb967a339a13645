"""Package the trained pipeline as a pip-installable wheel whose meta carries the test scores.

    python -m scripts.package training/model-best packages --name job_postings --version 0.0.1 \\
        --metrics training/metrics.json --transformer auto --lang en [--fast-cpu]

The packaged copy names the "fast_ner" factory (scripts/fast_ner.py: spaCy's entity recognizer, the
same weights and entities, its greedy loop run holding the GIL) instead of spaCy's "ner", and ships that
module inside the wheel as its code.

--fast-cpu also builds <lang>_<name>_int8: the same pipeline with the transformer's linear layers
quantized to int8 (scripts/quantize.py, shipped inside that wheel too), for CPU inference.
Its quantization is calibrated on the dev split's texts (--calibration, corpus/dev.spacy by default) and
it is scored on the test split (--test, corpus/test.spacy by default): its meta carries its own scores,
and the command prints them against the float32 ones with a warning where int8 loses more than half a point.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import srsly
from spacy.util import load_config

from scripts.common.base_model import BaseModel, resolve_base_model
from scripts.common.errors import UserError
from scripts.inference import fast_ner

LICENSE = "MIT"
INT8_SUFFIX = "int8"
INT8_TOLERANCE = 0.005  # F lost to int8 beyond which package warns
CALIBRATION_TEXTS = 1000  # at most this many texts of the calibration split
SCORES = (("ents", "f", "entity F"), ("textcat", "macro_f", "textcat macro F"))
QUANTIZE_MODULE = Path(__file__).resolve().parent / "quantize.py"  # shipped in the int8 wheel
FAST_NER_MODULE = Path(fast_ner.__file__)  # shipped in every wheel with an entity recognizer


def performance_from_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """Test-split scores in the keys spaCy's meta and model README use (ents_f, cats_macro_f, ...)."""
    performance: dict[str, Any] = {}
    ents = metrics.get("ents")
    if ents:
        performance.update({"ents_p": ents["p"], "ents_r": ents["r"], "ents_f": ents["f"]})
        performance["ents_per_type"] = {
            label: {"p": s["p"], "r": s["r"], "f": s["f"]} for label, s in ents["per_label"].items()
        }
    cats = metrics.get("textcat")
    if cats:
        performance.update(
            {
                "cats_score": cats["macro_f"],
                "cats_macro_f": cats["macro_f"],
                "cats_micro_f": cats["micro_f"],
                "cats_macro_auc": cats.get("macro_auc"),
                "cats_f_per_type": {
                    label: {"p": s["p"], "r": s["r"], "f": s["f"]}
                    for label, s in cats["per_label"].items()
                },
            }
        )
        if "accuracy" in cats:
            performance["cats_accuracy"] = cats["accuracy"]
    return performance


def score(value: Any) -> str:
    """A score for humans: 0.853, or n/a where the test split gave nothing to compute it on."""
    return "n/a" if value is None else f"{value:.3f}"


def describe(metrics: dict[str, Any], *, base_model: str, components: list[str]) -> str:
    """One paragraph for the package meta: what the pipeline does and how well, on which data."""
    parts = [f"Transformer pipeline ({', '.join(components)}) fine-tuned from {base_model}."]
    if metrics.get("ents"):
        ents = metrics["ents"]
        parts.append(
            f"Entities on the held-out test split: P {score(ents['p'])}, R {score(ents['r'])}, "
            f"F {score(ents['f'])} ({ents['n_docs']} docs)."
        )
    if metrics.get("textcat"):
        cats = metrics["textcat"]
        parts.append(
            f"Categories ({cats['mode']}) on the held-out test split: accuracy {score(cats.get('accuracy'))}, "
            f"macro F {score(cats['macro_f'])} ({cats['n_docs']} docs)."
        )
        threshold = next(iter((cats.get("thresholds") or {}).values()), {}).get("model")
        if threshold is not None:
            parts.append(
                f"A label counts as predicted at a score of {threshold:.2f} or more (doc.cats), "
                f"the threshold with the best macro F on the dev set."
            )
    return " ".join(parts)


def build_meta(
    *,
    model_meta: dict,
    metrics: dict,
    name: str,
    version: str,
    base_model: BaseModel,
    components: list[str],
) -> dict:
    meta = dict(model_meta)
    meta.update(
        name=name,
        version=version,
        license=LICENSE,
        description=describe(metrics, base_model=base_model.name, components=components),
        performance=performance_from_metrics(metrics),
    )
    if base_model.source != "local":
        meta["sources"] = [
            {"name": base_model.name, "url": f"https://huggingface.co/{base_model.name}"}
        ]
    return meta


@dataclass
class Packaged:
    wheel: Path
    metrics: dict[str, Any]  # the test scores in its meta: metrics_path's, or with int8 its own


def package_pipeline(
    *,
    model_dir: Path,
    output_dir: Path,
    name: str,
    version: str,
    metrics_path: Path,
    transformer: str,
    lang: str,
    int8: bool = False,
    test_path: Optional[Path] = None,
    calibration_path: Optional[Path] = None,
) -> Packaged:
    """Stage the model with its final meta, build the wheel offline.
    int8: build <lang>_<name>_int8 instead, with the transformer quantized for the CPU (calibrated on
    calibration_path's texts) and scored on test_path."""
    from spacy.cli.package import package

    if not (model_dir / "config.cfg").is_file():
        raise UserError(
            f"{model_dir}: no trained pipeline here; run the train step first (spacy project run train)"
        )
    if not metrics_path.is_file():
        raise UserError(
            f"{metrics_path}: test metrics not found; run the evaluate step first (spacy project run evaluate)"
        )
    if int8:
        check_int8_inputs(test_path=test_path, calibration_path=calibration_path)
    metrics = json.loads(metrics_path.read_text(encoding="utf8"))
    base_model = resolve_base_model(transformer, lang=lang, check_hub=False)
    if int8:
        name = f"{name}_{INT8_SUFFIX}"
    package_name = f"{lang}_{name}"
    output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output_dir) as tmp:
        staged = Path(tmp) / "pipeline"
        shutil.copytree(model_dir, staged)
        config = load_config(staged / "config.cfg", interpolate=False)
        # The weights are inside the package; record the public name, not a path on this machine.
        config["components"]["transformer"]["model"]["name"] = base_model.name
        code_paths = [FAST_NER_MODULE] if use_fast_ner(config) else []
        config.to_disk(staged / "config.cfg", interpolate=False)
        components = [c for c in config["nlp"]["pipeline"] if c != "transformer"]
        model_meta = srsly.read_json(staged / "meta.json")
        scores = metrics
        if int8:
            n_texts = quantize_staged(staged, calibration_path=calibration_path)  # type: ignore[arg-type]
            scores = score_staged(
                staged,
                test_path=test_path,
                output_dir=Path(tmp) / "evaluation",  # type: ignore[arg-type]
                gold_preproc=bool(metrics.get("data", {}).get("gold_preproc")),
            )
            code_paths.append(QUANTIZE_MODULE)
        meta = build_meta(
            model_meta=model_meta,
            metrics=scores,
            name=name,
            version=version,
            base_model=base_model,
            components=components,
        )
        if int8:
            calibration = f"{n_texts} texts of {calibration_path.name}"  # type: ignore[union-attr]
            meta["description"] = (
                int8_description(float_metrics=metrics, calibration=calibration)
                + " "
                + meta["description"]
            )
        srsly.write_json(staged / "meta.json", meta)
        built = Path(tmp) / "built"
        built.mkdir()
        package(
            staged,
            built,
            create_meta=False,
            create_sdist=False,
            create_wheel=False,
            require_parent=True,
            force=True,
            silent=True,
            code_paths=code_paths,
        )
        package_dir = built / f"{package_name}-{version}"
        # Build without network: an isolated build would download setuptools.
        result = subprocess.run(
            [sys.executable, "-m", "build", "--wheel", "--no-isolation", "."],
            cwd=package_dir,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise UserError(
                f"building the wheel in {package_dir.name} failed: {result.stderr.strip().splitlines()[-1:]}; pip install -r requirements.txt"
            )
        final_dir = output_dir / package_dir.name
        if final_dir.exists():
            shutil.rmtree(final_dir)
        shutil.move(str(package_dir), final_dir)
    wheels = sorted((final_dir / "dist").glob("*.whl"))
    return Packaged(wheel=wheels[-1], metrics=scores)


def use_fast_ner(config: Any) -> bool:
    """Name the fast_ner factory instead of spaCy's "ner" in the config; say whether there was one."""
    blocks = [
        block
        for block in config["components"].values()
        if block.get("factory") == fast_ner.SPACY_FACTORY
    ]
    for block in blocks:
        block["factory"] = fast_ner.FACTORY
    return bool(blocks)


def check_int8_inputs(*, test_path: Optional[Path], calibration_path: Optional[Path]) -> None:
    if test_path is None or not test_path.is_file():
        raise UserError(
            f"{test_path}: no test split to score the int8 build on; pass --test with the evaluate step's data (corpus/test.spacy)"
        )
    if calibration_path is None or not calibration_path.is_file():
        raise UserError(
            f"{calibration_path}: no texts to calibrate the int8 build on; pass --calibration with a .spacy file (corpus/dev.spacy)"
        )


def quantize_staged(staged: Path, *, calibration_path: Path) -> int:
    """Replace the staged pipeline by its int8 version, calibrated on the texts of calibration_path;
    return how many texts that was."""
    import spacy
    from spacy.tokens import DocBin

    from scripts.inference.int8 import quantize_pipeline

    nlp = spacy.load(staged)
    try:
        docs = DocBin().from_disk(calibration_path).get_docs(nlp.vocab)
        texts = [doc.text for doc, _ in zip(docs, range(CALIBRATION_TEXTS)) if doc.text.strip()]
    except Exception as err:  # not a DocBin
        raise UserError(
            f"{calibration_path}: cannot read it as a .spacy DocBin ({' '.join(str(err).split())[:200]}); pass --calibration corpus/dev.spacy"
        ) from None
    if not texts:
        raise UserError(
            f"{calibration_path}: no texts to calibrate the int8 build on; pass --calibration with a non-empty split"
        )
    quantize_pipeline(nlp, calibration=texts).to_disk(staged)
    return len(texts)


def score_staged(
    staged: Path, *, test_path: Path, output_dir: Path, gold_preproc: bool
) -> dict[str, Any]:
    """The staged pipeline's test metrics, computed as the evaluate step computes them, on the CPU."""
    from scripts.evaluation.run import evaluate_model

    return evaluate_model(
        model=str(staged),
        data_path=test_path,
        output_dir=output_dir,
        gold_preproc=gold_preproc,
        gpu_id="-1",
    )


def int8_description(*, float_metrics: dict[str, Any], calibration: str) -> str:
    scored = [
        f"{label} {score(float_metrics[task][key])}"
        for task, key, label in SCORES
        if float_metrics.get(task)
    ]
    return (
        "int8 build for CPU inference: the transformer's linear layers are dynamically quantized "
        f"(torch.ao.quantization.quantize_dynamic) after SmoothQuant rescaling calibrated on {calibration}; "
        "the NER and text classifier are unchanged. The scores "
        "below are this int8 pipeline's"
        + (
            f"; the float32 pipeline it was made from scored {', '.join(scored)}."
            if scored
            else "."
        )
    )


def int8_comparison(
    float_metrics: dict[str, Any], int8_metrics: dict[str, Any]
) -> tuple[list[str], list[str]]:
    """(lines, warnings): each test score of the int8 build against the float32 one; a warning where int8
    loses more than INT8_TOLERANCE."""
    lines, warnings = [], []
    for task, key, label in SCORES:
        before, after = (
            (float_metrics.get(task) or {}).get(key),
            (int8_metrics.get(task) or {}).get(key),
        )
        if before is None or after is None:
            continue
        lines.append(
            f"{label}: int8 {after:.3f} against float32 {before:.3f} ({100 * (after - before):+.1f} points)"
        )
        if (
            round(before - after, 9) > INT8_TOLERANCE
        ):  # rounded: 0.123 - 0.118 is 0.5 points, not a hair more
            warnings.append(
                f"the int8 build loses {100 * (before - after):.1f} points of {label} on the test split; "
                "ship the float32 wheel where that matters"
            )
    return lines, warnings
