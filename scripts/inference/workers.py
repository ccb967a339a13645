"""Running the server: one process, or N worker processes that share the port, each with its own
copy of the pipeline (the code behind scripts/serve.py).

    serve(ServeSettings(model="training/model-best", workers=2), host="127.0.0.1", port=8000)

With workers > 1 uvicorn starts each worker from an import string, so the settings travel in an
environment variable (SPACY_SERVE_SETTINGS, JSON) and every worker builds its app with
app_from_environment(). The API key itself never travels: each worker reads it from the variable
named by --api-key-env. Metrics use prometheus_client's multiprocess mode in a fresh temporary
folder (PROMETHEUS_MULTIPROC_DIR) that is removed when the server stops.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Optional

from scripts.common.errors import UserError, info, one_line
from scripts.inference.batching import Limits
from scripts.inference.labelstudio_push import PushSettings
from scripts.inference.predict import Predictor, load_predictor
from scripts.inference.retraining import (
    LivePredictor,
    RetrainingLoop,
    RetrainSettings,
    served_model,
)
from scripts.inference.server import create_app
from scripts.inference.serving import ServeOptions, configure_logging, metrics_available
from scripts.scoring.uncertainty import MARGIN

SETTINGS_ENV = "SPACY_SERVE_SETTINGS"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
STARTUP_FAILURE = 3  # uvicorn's exit status for a worker that cannot start: the parent stops too
# uvicorn kills a worker that does not answer its ping in time, and a new worker answers only once
# it has imported this command (spacy, torch): its default of 5 s restarts them forever on a busy
# machine.
WORKER_HEALTHCHECK_S = 60


@dataclass(frozen=True)
class ServeSettings:
    """Everything a worker needs to build the app; JSON-serialisable, never the key itself."""

    model: str
    gpu_id: str = "auto"
    batch_size: Optional[int] = None
    max_texts: int = Limits.max_texts
    max_chars: int = Limits.max_chars
    cors_origins: tuple[str, ...] = ()
    api_key_env: Optional[str] = None
    workers: int = 1
    min_score: float = 0.0  # entities scored below it are left out
    uncertainty: str = MARGIN  # the rule of a Label Studio prediction's score
    # Pushing predictions to Label Studio (scripts/inference/labelstudio_push.py): its URL, the
    # environment variable holding an API token, projects to push to at start-up, sampling mode.
    label_studio_url: Optional[str] = None
    label_studio_token_env: Optional[str] = None
    label_studio_projects: tuple[int, ...] = ()
    uncertainty_sampling: bool = False

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "ServeSettings":
        values = json.loads(text)
        return cls(
            **{
                **values,
                "cors_origins": tuple(values.get("cors_origins", ())),
                "label_studio_projects": tuple(values.get("label_studio_projects", ())),
            }
        )


def push_settings(settings: ServeSettings) -> Optional[PushSettings]:
    """What the Label Studio push needs, or None without --label-studio-url; a UserError when the
    token's environment variable is missing or empty."""
    if not settings.label_studio_url:
        if settings.label_studio_token_env or settings.label_studio_projects:
            raise UserError(
                "--label-studio-token-env and --label-studio-project need --label-studio-url, "
                "e.g. --label-studio-url http://localhost:8080"
            )
        if settings.uncertainty_sampling:
            raise UserError(
                "--uncertainty-sampling sets it through Label Studio's API: add "
                "--label-studio-url URL --label-studio-token-env NAME"
            )
        return None
    name = settings.label_studio_token_env
    token = os.environ.get(name, "").strip() if name else ""
    if not token:
        where = f"the environment variable {name} is not set or empty" if name else "no token"
        raise UserError(
            f"--label-studio-url {settings.label_studio_url}: {where}; copy the Access Token "
            "from Label Studio's Account & Settings, export LABEL_STUDIO_TOKEN=<it> and pass "
            "--label-studio-token-env LABEL_STUDIO_TOKEN"
        )
    return PushSettings(
        url=settings.label_studio_url,
        token=token,
        projects=settings.label_studio_projects,
        uncertainty_sampling=settings.uncertainty_sampling,
    )


def api_key_from(name: Optional[str]) -> Optional[str]:
    """The key in the environment variable `name` (None: no key), or a UserError."""
    if name is None:
        return None
    key = os.environ.get(name, "")
    if not key.strip():
        raise UserError(
            f"--api-key-env {name}: the environment variable {name} is not set or empty; "
            f"export {name}=<a long random key> before starting the server"
        )
    return key.strip()


def build_app(
    settings: ServeSettings,
    *,
    data_dir: Optional[Path] = None,
    retrain: RetrainSettings = RetrainSettings(),
) -> Any:
    """Load the pipeline and make the app, e.g. build_app(ServeSettings(model="en_jobs")). With
    data_dir, Label Studio's annotations are kept there and retrained on, and the last model
    swapped in under data_dir is the one served."""
    source = served_model(data_dir, settings.model) if data_dir is not None else settings.model
    if source != settings.model:
        info(f"Serving {source}, the last model retraining swapped in under {data_dir}")

    def load(path: str) -> Predictor:
        return load_predictor(
            path,
            gpu_id=settings.gpu_id,
            min_score=settings.min_score,
            uncertainty=settings.uncertainty,
        )

    predictor = LivePredictor(load(source), source=source)
    retraining = None
    if data_dir is not None:
        retraining = RetrainingLoop(
            live=predictor,
            data_dir=data_dir,
            settings=retrain,
            load=load,
        )
        stored = len(retraining.store.annotations)
        info(f"Keeping Label Studio's annotations in {data_dir} ({stored} stored)")
    options = ServeOptions(
        api_key=api_key_from(settings.api_key_env), cors_origins=settings.cors_origins
    )
    limits = Limits(max_texts=settings.max_texts, max_chars=settings.max_chars)
    return create_app(
        predictor,
        limits=limits,
        batch_size=settings.batch_size,
        options=options,
        retraining=retraining,
        push=push_settings(settings),
    )


def app_from_environment() -> Any:
    """uvicorn's app factory in each worker: the settings from SPACY_SERVE_SETTINGS. A worker that
    cannot load the pipeline prints one line and exits so that the parent stops instead of
    restarting it forever."""
    configure_logging()
    try:
        settings = ServeSettings.from_json(os.environ[SETTINGS_ENV])
        share_cpus(settings.workers)
        return build_app(settings)
    except Exception as err:  # a UserError or anything else: one line, then stop every worker
        print(f"✘ worker {os.getpid()}: {one_line(err)}", file=sys.stderr, flush=True)
        sys.exit(STARTUP_FAILURE)


def share_cpus(workers: int) -> None:
    """Each worker's torch gets its share of the CPU cores (unless OMP_NUM_THREADS says), so that
    N workers do not run N times as many threads as there are cores."""
    if workers > 1 and not os.environ.get("OMP_NUM_THREADS"):
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


def serve(
    settings: ServeSettings,
    *,
    host: str,
    port: int,
    data_dir: Optional[Path] = None,
    retrain: RetrainSettings = RetrainSettings(),
) -> None:
    """Serve until interrupted: in this process, or in settings.workers worker processes."""
    import uvicorn

    api_key_from(settings.api_key_env)  # an unset key fails now, in one line
    if push_settings(settings) is not None and settings.workers > 1:
        raise UserError(
            f"--label-studio-url with --workers {settings.workers}: one process pushes the "
            "predictions; serve Label Studio with --workers 1"
        )
    if data_dir is not None and settings.workers > 1:
        # one journal, one training at a time and one swapped model: a single process owns them
        raise UserError(
            f"--data-dir with --workers {settings.workers}: the Label Studio loop runs in one "
            "process; serve it with --workers 1 (a second server without --data-dir can take the "
            "/predict traffic)"
        )
    url = f"http://{host}:{port}"
    if not metrics_available():
        info("no /metrics: pip install prometheus-client to get Prometheus metrics")
    if settings.workers == 1:
        app = build_app(settings, data_dir=data_dir, retrain=retrain)
        configure_logging()
        info(f"Serving {app.version} on {url} (Label Studio ML backend URL: {url}/labelstudio)")
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
        return
    model = settings.model
    if Path(model).exists():
        model = str(Path(model).resolve())
    else:
        import spacy

        if not spacy.util.is_package(model):
            load_predictor(model)  # raises the one-line "model not found" of every command
    settings = replace(settings, model=model)
    info(
        f"Serving {settings.model} with {settings.workers} workers on {url} (Label Studio ML "
        f"backend URL: {url}/labelstudio)"
    )
    with tempfile.TemporaryDirectory(prefix="spacy-serve-metrics-") as metrics_dir:
        saved = {name: os.environ.get(name) for name in (SETTINGS_ENV, MULTIPROC_ENV)}
        os.environ[SETTINGS_ENV] = settings.to_json()
        os.environ[MULTIPROC_ENV] = metrics_dir
        try:
            uvicorn.run(
                f"{__name__}:app_from_environment",
                factory=True,
                workers=settings.workers,
                host=host,
                port=port,
                log_level="warning",
                access_log=False,
                timeout_worker_healthcheck=WORKER_HEALTHCHECK_S,
            )
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
