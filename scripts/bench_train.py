"""Benchmark the training recipe on a corpus: quality on its test split, words/s and wall time.

    python -m scripts.bench_train --train data/train.tsv --dev data/dev.tsv --test data/test.tsv --components ner

It runs the workflow's own stages (convert, config, train, evaluate) into --output and prints
one JSON line. Training speed counts the words of every training pass, evaluation included in
the time, as the training log reports them.
"""
from __future__ import annotations

import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from timeit import default_timer
from typing import Any, Optional

import typer

from scripts.base_model import resolve_base_model
from scripts.errors import UserError, reported_as_one_line

BASE_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "base.cfg"


def run_stage(name: str, args: list[str]) -> None:
    """Run one workflow stage as the workflow does; a failure stops with the stage's own message."""
    result = subprocess.run([sys.executable, "-m", *args], stdout=sys.stderr)
    if result.returncode != 0:
        raise UserError(f"the {name} stage failed (exit {result.returncode}); its message is above")


def bench_train(
    *,
    train: str,
    dev: str,
    test: str,
    components: str,
    output_dir: Path,
    transformer: str = "auto",
    lang: str = "en",
    max_epochs: int = 0,
    gpu_id: str = "auto",
    seed: int = 0,
    convert_options: str = "",
    config_overrides: Optional[list[str]] = None,
) -> dict[str, Any]:
    corpus = output_dir / "corpus"
    config = output_dir / "config.cfg"
    run_stage("convert", ["scripts.convert", "--train", train, "--dev", dev, "--test", test, "--lang", lang,
                          "--seed", str(seed), "--output-dir", str(corpus), *shlex.split(convert_options)])
    run_stage("config", ["scripts.make_config", str(BASE_CONFIG), str(config), "--components", components,
                         "--transformer", transformer, "--lang", lang, "--train", str(corpus / "train.spacy"),
                         "--max-epochs", str(max_epochs), *(config_overrides or [])])
    speed_log = output_dir / "speed.json"
    started = default_timer()
    run_stage("train", ["scripts.train", str(config), "--output", str(output_dir), "--gpu-id", gpu_id,
                        "--paths.train", str(corpus / "train.spacy"), "--paths.dev", str(corpus / "dev.spacy"),
                        "--paths.labels", str(output_dir / "labels"),
                        "--training.logger.@loggers", "ner_textcat.speed_logger.v1",
                        "--training.logger.path", str(speed_log)])
    train_wall = default_timer() - started
    run_stage("evaluate", ["scripts.evaluate", str(output_dir / "model-best"), str(corpus / "test.spacy"),
                           "--output", str(output_dir / "evaluation"), "--gpu-id", gpu_id])
    speed = json.loads(speed_log.read_text(encoding="utf8"))
    metrics = json.loads((output_dir / "evaluation" / "metrics.json").read_text(encoding="utf8"))
    base_model = resolve_base_model(transformer, lang=lang, check_hub=False).name
    return summarize(metrics=metrics, speed=speed, train_wall=train_wall, components=components, output_dir=output_dir,
                     base_model=base_model)


def summarize(
    *, metrics: dict, speed: dict, train_wall: float, components: str, output_dir: Path, base_model: str
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "components": components,
        "base_model": base_model,
        "epochs": speed["epochs"] + 1,
        "steps": speed["steps"],
        "train_words": speed["words"],
        "train_seconds": round(speed["seconds"], 1),
        "train_words_per_second": round(speed["words"] / speed["seconds"]) if speed["seconds"] else None,
        "wall_seconds": round(train_wall, 1),
        "output": str(output_dir),
    }
    if metrics.get("ents"):
        result["ents"] = {key: metrics["ents"][key] for key in ("p", "r", "f", "n_docs")}
    if metrics.get("textcat"):
        result["textcat"] = {key: metrics["textcat"][key] for key in ("mode", "accuracy", "macro_f", "micro_f", "n_docs")}
    return result


app = typer.Typer(add_completion=False)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def main(
    ctx: typer.Context,
    train: str = typer.Option(..., "--train", help="Training files, comma-separated, any format scripts.convert reads"),
    dev: str = typer.Option("", "--dev", help="Dev files (empty: split off --train)"),
    test: str = typer.Option("", "--test", help="Test files (empty: split off --train)"),
    components: str = typer.Option("ner,textcat", "--components", help="As the components var"),
    transformer: str = typer.Option("auto", "--transformer", help="As the transformer var"),
    lang: str = typer.Option("en", "--lang", help="Language code"),
    max_epochs: int = typer.Option(0, "--max-epochs", help="Epochs; 0 scales them with the corpus"),
    gpu_id: str = typer.Option("auto", "--gpu-id", help="'auto', -1 or a GPU index"),
    seed: int = typer.Option(0, "--seed", help="Seed of the dev/test split"),
    convert_options: str = typer.Option("", "--convert-options", help="Extra options for scripts.convert, quoted"),
    output_dir: Optional[Path] = typer.Option(None, "--output", help="Where the run goes (default: a temporary folder)"),
) -> None:
    """Train and evaluate once; print quality, training words/s and wall time as one JSON line.
    Extra --section.key value arguments override the config, as for scripts.make_config."""
    with reported_as_one_line(), tempfile.TemporaryDirectory() as tmp:
        result = bench_train(
            train=train, dev=dev, test=test, components=components, transformer=transformer, lang=lang,
            max_epochs=max_epochs, gpu_id=gpu_id, seed=seed, convert_options=convert_options,
            output_dir=output_dir or Path(tmp), config_overrides=list(ctx.args),
        )
        if output_dir is None:
            result["output"] = None  # the temporary folder is gone
    print(json.dumps(result))


if __name__ == "__main__":
    app()
