"""Serve a trained pipeline over HTTP: our JSON API and the Label Studio ML backend protocol.

    python -m scripts.serve training/model-best --host 127.0.0.1 --port 8000
    curl -s localhost:8000/predict -H 'content-type: application/json' \\
        -d '{"texts": ["Python and SQL are required."]}'

Connect Label Studio to http://HOST:PORT/labelstudio in the project's Model settings. The routes
are listed in scripts/inference/server.py.
"""

from __future__ import annotations

from typing import Optional

import typer

from scripts.common.errors import info, reported_as_one_line
from scripts.inference.predict import load_predictor
from scripts.inference.server import Limits, create_app

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    model: str = typer.Argument(
        ..., help="Pipeline directory (training/model-best) or installed package name"
    ),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Interface to listen on (0.0.0.0: every interface)"
    ),
    port: int = typer.Option(8000, "--port", help="TCP port"),
    gpu_id: str = typer.Option(
        "auto", "--gpu-id", help="'auto', -1 for the CPU, or a GPU index (one server per GPU)"
    ),
    batch_size: Optional[int] = typer.Option(
        None, "--batch-size", min=1, help="nlp.pipe batch size; default: the pipeline's own"
    ),
    max_texts: int = typer.Option(
        Limits.max_texts,
        "--max-texts",
        min=1,
        help="Texts (or Label Studio tasks) per request; more answer 413",
    ),
    max_chars: int = typer.Option(
        Limits.max_chars, "--max-chars", min=1, help="Characters per text; longer texts answer 413"
    ),
    min_score: float = typer.Option(
        0.0,
        "--min-score",
        min=0.0,
        max=1.0,
        help="Leave out entities whose score is below this (0..1; needs entity_confidence)",
    ),
) -> None:
    """Serve MODEL: POST /predict {"texts": [...]}, GET /health, and the Label Studio ML backend
    under /labelstudio."""
    import uvicorn

    with reported_as_one_line():
        predictor = load_predictor(model, gpu_id=gpu_id, min_score=min_score)
    url = f"http://{host}:{port}"
    info(f"Serving {predictor.version} on {url} (Label Studio ML backend URL: {url}/labelstudio)")
    server = create_app(
        predictor, limits=Limits(max_texts=max_texts, max_chars=max_chars), batch_size=batch_size
    )
    uvicorn.run(server, host=host, port=port, log_level="warning")


if __name__ == "__main__":
    app()
