"""Serve a trained pipeline over HTTP: our JSON API, a demo page and the Label Studio ML backend.

    python -m scripts.serve training/model-best --host 127.0.0.1 --port 8000
    curl -s localhost:8000/predict -H 'content-type: application/json' \\
        -d '{"texts": ["Python and SQL are required."]}'
    SERVE_KEY=$(openssl rand -hex 24) python -m scripts.serve en_job_postings --host 0.0.0.0 \\
        --workers 2 --api-key-env SERVE_KEY --cors-origin https://app.example.com

Open http://HOST:PORT/ for the demo page. Connect Label Studio to http://HOST:PORT/labelstudio in
the project's Model settings. Prometheus scrapes GET /metrics; every request is logged as one JSON
line on stderr with its X-Request-ID. The routes are listed in scripts/inference/server.py, the
API key, metrics and logs in scripts/inference/serving.py.

With --data-dir DIR the server keeps the annotations Label Studio sends and retrains on them
(--retrain-every N, Start Training), swapping in a model only when it is no worse on held-out
annotations; a restart serves the last one swapped in (scripts/inference/retraining.py).

    python -m scripts.serve training/model-best --data-dir ls-data --retrain-every 50 \\
        --retrain-with corpus/train.spacy --retrain-dev corpus/dev.spacy

Before anything is annotated, --cold-start serves entity ruler patterns and zero-shot categories
instead of MODEL, until the first retraining trains the pipeline (scripts/inference/cold_start.py):

    python -m scripts.serve --cold-start --labels BRAND --patterns patterns.jsonl \\
        --categories "POSITIVE=a happy customer" --categories "NEGATIVE=a complaint" \\
        --data-dir ls-data --retrain-every 50
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import List, Optional

import typer

from scripts.common.errors import reported_as_one_line
from scripts.common.options import (
    GPU_ID,
    MODEL_HELP,
    cold_start_option,
    gpu_id_option,
    min_score_option,
    pipe_batch_size_option,
    retrain_option,
    uncertainty_option,
)
from scripts.inference.batching import Limits
from scripts.inference.cold_start import cold_start_spec, served_model_path
from scripts.inference.retraining import (
    RETRAIN_TIMEOUT_S,
    RetrainSettings,
    check_data_files,
    file_list,
)
from scripts.inference.workers import ServeSettings, serve

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    model: Optional[str] = typer.Argument(
        None, help=f"{MODEL_HELP}; left out with --cold-start", show_default=False
    ),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Interface to listen on (0.0.0.0: every interface)"
    ),
    port: int = typer.Option(8000, "--port", help="TCP port"),
    gpu_id: str = gpu_id_option(),
    batch_size: Optional[int] = pipe_batch_size_option(),
    max_texts: int = typer.Option(
        Limits.max_texts,
        "--max-texts",
        min=1,
        help="Texts per request (more answer 413), and per batch of a Label Studio request, "
        "which may hold any number of tasks",
    ),
    max_chars: int = typer.Option(
        Limits.max_chars,
        "--max-chars",
        min=1,
        help="Characters per text: a longer text answers 413, a longer annotated text is not "
        "stored (422), a longer Label Studio task gets an empty prediction",
    ),
    workers: int = typer.Option(
        1,
        "--workers",
        min=1,
        help="Worker processes sharing the port, each with its own copy of the pipeline",
    ),
    cors_origins: Optional[List[str]] = typer.Option(
        None,
        "--cors-origin",
        help="A web origin whose pages may call the API (https://app.example.com); repeatable",
    ),
    api_key_env: Optional[str] = typer.Option(
        None,
        "--api-key-env",
        help="Environment variable holding an API key: requests then need "
        "'Authorization: Bearer KEY' (GET /health and the demo page stay open)",
    ),
    data_dir: Optional[Path] = typer.Option(
        None,
        "--data-dir",
        help="Keep Label Studio's annotations here (a journal) and retrain on them; "
        "default: store nothing",
    ),
    retrain_every: int = typer.Option(
        0,
        "--retrain-every",
        min=0,
        help="Retrain after this many new or changed annotations (with --data-dir); "
        "0: only on Start Training",
    ),
    retrain_epochs: int = retrain_option("epochs", RetrainSettings.epochs, prefix="retrain-"),
    retrain_margin: float = retrain_option("margin", RetrainSettings.margin, prefix="retrain-"),
    retrain_test: Optional[Path] = retrain_option("test", None, prefix="retrain-"),
    retrain_with: Optional[list[str]] = retrain_option("with", None, prefix="retrain-"),
    retrain_dev: Optional[list[str]] = retrain_option("dev", None, prefix="retrain-"),
    retrain_timeout: float = typer.Option(
        RETRAIN_TIMEOUT_S,
        "--retrain-timeout",
        min=0.0,
        help="Seconds a retraining may take before it is stopped and reported as failed "
        "(the served model stays); 0: no limit",
    ),
    min_score: float = min_score_option(),
    uncertainty: str = uncertainty_option(),
    label_studio_url: Optional[str] = typer.Option(
        None,
        "--label-studio-url",
        help="Label Studio's URL (http://localhost:8080): after start-up and each swap, predict "
        "the unlabelled tasks and import the predictions there (docs/label-studio.md)",
    ),
    label_studio_token_env: Optional[str] = typer.Option(
        None,
        "--label-studio-token-env",
        help="Environment variable holding a Label Studio API token (Account & Settings)",
    ),
    label_studio_projects: Optional[List[int]] = typer.Option(
        None,
        "--label-studio-project",
        help="A project id to push to from start-up (the projects that connect the backend "
        "join by themselves); repeatable",
    ),
    uncertainty_sampling: bool = typer.Option(
        False,
        "--uncertainty-sampling",
        help="Also set the projects' sampling to 'Uncertainty sampling' (least certain first)",
    ),
    cold_start: bool = typer.Option(
        False,
        "--cold-start",
        help="Serve before anything is annotated, without MODEL: entities from --patterns, "
        "--categories by zero-shot similarity; the first retraining trains the real pipeline",
    ),
    labels: Optional[List[str]] = cold_start_option("labels"),
    categories: Optional[List[str]] = cold_start_option("categories"),
    patterns: Optional[Path] = cold_start_option("patterns"),
    lang: str = cold_start_option("lang"),
    transformer: str = cold_start_option("transformer"),
) -> None:
    """Serve MODEL: POST /predict {"texts": [...]}, GET /health, GET /metrics, the demo page at
    GET /, and the Label Studio ML backend under /labelstudio."""
    settings = ServeSettings(
        model=model or "",
        gpu_id=gpu_id,
        batch_size=batch_size,
        max_texts=max_texts,
        max_chars=max_chars,
        cors_origins=tuple(cors_origins or ()),
        api_key_env=api_key_env,
        workers=workers,
        min_score=min_score,
        uncertainty=uncertainty,
        label_studio_url=label_studio_url,
        label_studio_token_env=label_studio_token_env,
        label_studio_projects=tuple(label_studio_projects or ()),
        uncertainty_sampling=uncertainty_sampling,
    )
    retrain = RetrainSettings(
        every=retrain_every,
        epochs=retrain_epochs,
        margin=retrain_margin,
        test=retrain_test,
        gpu_id=gpu_id,
        with_data=file_list(retrain_with),
        dev=file_list(retrain_dev),
        max_chars=max_chars,
        timeout=retrain_timeout,
    )
    with reported_as_one_line(options=GPU_ID, project_step=True):
        check_data_files(retrain, with_option="--retrain-with", dev_option="--retrain-dev")
        spec = cold_start_spec(
            labels=labels,
            categories=categories,
            patterns=patterns,
            lang=lang,
            transformer=transformer,
        )
        with served_model_path(
            model, cold_start=cold_start, spec=spec, data_dir=data_dir
        ) as source:
            settings = replace(settings, model=source)
            serve(settings, host=host, port=port, data_dir=data_dir, retrain=retrain)


if __name__ == "__main__":
    app()
