"""Package the trained pipeline as a pip-installable wheel whose meta carries the test scores.

    python -m scripts.package training/model-best packages --name job_postings --version 0.0.1 \
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

from pathlib import Path

import typer

from scripts.common.errors import info, reported_as_one_line
from scripts.packaging.wheel import check_int8_inputs, int8_comparison, package_pipeline


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
    fast_cpu: bool = typer.Option(
        False,
        "--fast-cpu",
        help="Also build <lang>_<name>_int8, with an int8 transformer for fast CPU inference",
    ),
    test_path: Path = typer.Option(
        Path("corpus/test.spacy"),
        "--test",
        help="With --fast-cpu: the test split the int8 build is scored on",
    ),
    calibration_path: Path = typer.Option(
        Path("corpus/dev.spacy"),
        "--calibration",
        help="With --fast-cpu: the split whose texts calibrate the int8 build",
    ),
) -> None:
    """Build packages/<lang>_<name>-<version>/dist/*.whl (and <lang>_<name>_int8 with --fast-cpu)."""
    with reported_as_one_line():
        if fast_cpu:  # before the float32 build, so that a missing split stops the command at once
            check_int8_inputs(test_path=test_path, calibration_path=calibration_path)
        built = package_pipeline(
            model_dir=model_dir,
            output_dir=output_dir,
            name=name,
            version=version,
            metrics_path=metrics_path,
            transformer=transformer,
            lang=lang,
        )
    info(f"Built {built.wheel}; install it with: pip install {built.wheel}")
    if fast_cpu:
        with reported_as_one_line():
            int8 = package_pipeline(
                model_dir=model_dir,
                output_dir=output_dir,
                name=name,
                version=version,
                metrics_path=metrics_path,
                transformer=transformer,
                lang=lang,
                int8=True,
                test_path=test_path,
                calibration_path=calibration_path,
            )
        lines, warnings = int8_comparison(built.metrics, int8.metrics)
        info(f"Built {int8.wheel} (int8, CPU); install it with: pip install {int8.wheel}")
        for line in lines:
            typer.echo(f"  {line} on {test_path}")
        for warning in warnings:
            typer.echo(f"⚠ {warning}", err=True)


app = typer.Typer(add_completion=False)
app.command()(main)

if __name__ == "__main__":
    app()
