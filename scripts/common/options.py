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


def pipe_batch_size_option(*, what: str = "Texts") -> Any:
    return typer.Option(
        None,
        "--batch-size",
        min=1,
        help=f"{what} per nlp.pipe batch; default: the pipeline's [nlp] batch_size",
    )
