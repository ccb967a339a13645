"""Package the trained pipeline as a pip-installable wheel whose meta carries the test scores.

    python -m scripts.package training/model-best packages --name job_postings --version 0.0.1 \
        --metrics training/metrics.json --transformer auto --lang en [--fast-ner] [--fast-cpu] \
        [--onnx]

The default wheel holds spaCy's and spacy-transformers' own components, plus the entity_confidence
component where the pipeline has it (its two files ship inside the wheel). --fast-ner, --fast-cpu
and --onnx opt into components that need more code inside the wheel (scripts/packaging/wheel.py
says which). --onnx needs onnxruntime (requirements/onnx.txt).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from scripts.common.errors import info, reported_as_one_line
from scripts.packaging.engines import FLOAT32, INT8, ONNX, Engine, Splits, compare_scores
from scripts.packaging.wheel import package_pipeline

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    model_dir: Path = typer.Argument(..., help="Trained pipeline (training/model-best)"),
    output_dir: Path = typer.Argument(Path("packages"), help="Where the package folder goes"),
    name: str = typer.Option(..., "--name", help="Package name without the language prefix"),
    version: str = typer.Option("0.0.1", "--version", help="Package version"),
    metrics_path: Path = typer.Option(
        Path("training/metrics.json"), "--metrics", help="Test metrics from scripts.evaluate"
    ),
    transformer: str = typer.Option(
        "auto", "--transformer", help="The base model var used for training"
    ),
    lang: str = typer.Option("en", "--lang", help="Language code"),
    fast_ner: bool = typer.Option(
        False,
        "--fast-ner",
        help="Swap spaCy's entity recognizer for fast_ner (same weights and entities, its greedy "
        "decoding run holding the GIL: faster on the CPU) and ship its code inside the wheel. "
        "Risk: it depends on spaCy internals, checked against one spaCy version; another spaCy "
        "may break it",
    ),
    fast_cpu: bool = typer.Option(
        False,
        "--fast-cpu",
        help="Also build <lang>_<name>_int8, with an int8 transformer for fast CPU inference "
        "(ships code inside that wheel)",
    ),
    onnx: bool = typer.Option(
        False,
        "--onnx",
        help="Also build <lang>_<name>_onnx, whose transformer runs on ONNX Runtime with int8 "
        "weights, for fast CPU inference (ships code inside that wheel; needs "
        "pip install -r requirements/onnx.txt)",
    ),
    test_path: Path = typer.Option(
        Path("corpus/test.spacy"),
        "--test",
        help="With --fast-cpu or --onnx: the test split the int8 or ONNX build is scored on",
    ),
    calibration_path: Path = typer.Option(
        Path("corpus/dev.spacy"),
        "--calibration",
        help="With --fast-cpu: the split whose texts calibrate the int8 build",
    ),
) -> None:
    """Build packages/<lang>_<name>-<version>/dist/*.whl, and <lang>_<name>_int8 with --fast-cpu,
    <lang>_<name>_onnx with --onnx."""
    engines = [FLOAT32] + [INT8] * fast_cpu + [ONNX] * onnx
    splits = Splits(test=test_path, calibration=calibration_path)
    with reported_as_one_line(project_step=True):
        for engine in engines:  # before any build, so that a missing split stops at once
            engine.check(splits)
    float_metrics: dict[str, Any] = {}
    for engine in engines:
        with reported_as_one_line(project_step=True):
            built = package_pipeline(
                model_dir=model_dir,
                output_dir=output_dir,
                name=name,
                version=version,
                metrics_path=metrics_path,
                transformer=transformer,
                lang=lang,
                fast_ner=fast_ner,
                engine=engine,
                splits=splits,
            )
        kind = f" ({engine.name}, CPU)" if engine.converted else ""
        info(f"Built {built.wheel}{kind}; install it with: pip install {built.wheel}")
        if not engine.converted:
            float_metrics = built.metrics
        else:
            compare(float_metrics, built.metrics, engine=engine, test_path=test_path)


def compare(
    float_metrics: dict[str, Any], metrics: dict[str, Any], *, engine: Engine, test_path: Path
) -> None:
    """Print each test score of a converted build against the float32 one, and warn where it
    loses."""
    lines, warnings = compare_scores(float_metrics, metrics, engine=engine)
    for line in lines:
        typer.echo(f"  {line} on {test_path}")
    for warning in warnings:
        typer.echo(f"⚠ {warning}", err=True)


if __name__ == "__main__":
    app()
