"""Command-line parameters that several commands share, each declared once, as spaCy keeps its
shared Arg/Opt helpers in spacy/cli/_util.py. Each function returns a fresh typer parameter:

    def main(model: str = model_argument(), gpu_id: str = gpu_id_option()) -> None: ...
"""

from __future__ import annotations

from typing import Any

import typer

DEFAULT_GPU_ID = "auto"
# setting -> option, for reported_as_one_line to say how a command sets what an error names
GPU_ID = {"gpu_id": "--gpu-id"}
GPU_ID_HELP = (
    "'auto' (the GPU when cupy and CUDA work, else the CPU), -1 for the CPU, or a GPU index"
)
MODEL_HELP = "Pipeline folder (training/model-best) or installed package name"


def model_argument() -> Any:
    return typer.Argument(..., help=MODEL_HELP)


def gpu_id_option() -> Any:
    return typer.Option(DEFAULT_GPU_ID, GPU_ID["gpu_id"], "-g", help=GPU_ID_HELP)


def min_score_option() -> Any:
    return typer.Option(
        0.0,
        "--min-score",
        min=0.0,
        max=1.0,
        help="Leave out entities whose score is below this (0..1; needs entity_confidence)",
    )


def uncertainty_option() -> Any:
    return typer.Option(
        "margin",
        "--uncertainty",
        help="How a Label Studio prediction's score (1 - uncertainty; lowest: label first) is "
        "found: margin, entropy or least-confident (docs/label-studio.md)",
    )


def pipe_batch_size_option(*, what: str = "Texts") -> Any:
    return typer.Option(
        None,
        "--batch-size",
        min=1,
        help=f"{what} per nlp.pipe batch; default: the pipeline's [nlp] batch_size",
    )


def bootstrap_option(*, what: str) -> Any:
    """--bootstrap N of scripts/scoring/bootstrap.py; `what` says what the draws give."""
    return typer.Option(
        0,
        "--bootstrap",
        min=0,
        help=f"Draws of the test documents (with replacement) for {what}, e.g. 1000 (0: none)",
    )


def bootstrap_seed_option() -> Any:
    return typer.Option(0, "--seed", help="Seed of the bootstrap's draws")


# The options of a Label Studio retraining, which scripts.serve spells --retrain-NAME and
# scripts.retrain --NAME: one help text and bound each; the defaults are RetrainSettings'.
RETRAIN_OPTIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "epochs": ("Epochs of a retraining; 0 chooses from the corpus size", {"min": 0}),
    "margin": (
        "Swap in a retrained model unless an overall figure drops by more than this",
        {"min": 0.0},
    ),
    "test": (
        "Gold file to compare the models on (any format scripts.convert reads); default: the "
        "tasks whose id is a multiple of 5",
        {},
    ),
    "with": (
        ".spacy training data (e.g. corpus/train.spacy) a retraining adds to the annotations "
        "(repeat or comma-separate); an annotated text is taken from the annotation",
        {},
    ),
    "dev": (
        ".spacy data that picks a retraining's model-best (e.g. corpus/dev.spacy); default: a "
        "tenth of its training data",
        {},
    ),
}


def retrain_option(name: str, default: Any, *, prefix: str = "") -> Any:
    """retrain_option("margin", RetrainSettings.margin, prefix="retrain-") -> --retrain-margin."""
    help_text, bounds = RETRAIN_OPTIONS[name]
    return typer.Option(default, f"--{prefix}{name}", help=help_text, **bounds)


# The cold-start model's options (scripts.cold_start, and scripts.serve with --cold-start):
# name -> (default, help).
COLD_START_OPTIONS: dict[str, tuple[Any, str]] = {
    "labels": (
        None,
        "Entity labels to annotate, comma-separated or repeated (A,B); with --patterns, those "
        "of the patterns when left out",
    ),
    "categories": (
        None,
        "Categories to annotate, one per text: x,y, or x=description for each (repeat the "
        "option; a description may hold commas); zero-shot until the first retraining",
    ),
    "patterns": (
        None,
        "Entity ruler patterns, JSONL as spaCy and Prodigy read them: each line a label and a "
        "pattern, a phrase or a list of token dicts",
    ),
    "lang": ("en", "Language code of the cold-start model"),
    "transformer": (
        "auto",
        "Base model the first retraining trains on (as the transformer var)",
    ),
}


def cold_start_option(name: str) -> Any:
    """cold_start_option("labels") -> --labels."""
    default, help_text = COLD_START_OPTIONS[name]
    return typer.Option(default, f"--{name}", help=help_text)
