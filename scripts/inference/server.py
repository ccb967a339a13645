"""The HTTP app over one loaded pipeline: our JSON API and the Label Studio ML backend protocol.

    app = create_app(load_predictor("training/model-best"), limits=Limits(max_texts=64))
    uvicorn.run(app, host="127.0.0.1", port=8000)

Routes:
    GET  /health              {"status": "UP", "model_version", "pipeline"}
    POST /predict             {"texts": [...]}
                              -> {"model_version", "predictions": [{"entities", "cats"}]}
    POST /explain             {"texts": [...], "label": optional}
                              -> {"model_version", "explanations": [...]}: explain_route.py
    GET  /labelstudio/config  a labeling config (XML) for the model's labels
    GET  /labelstudio/, /labelstudio/health, /labelstudio/metrics
    POST /labelstudio/setup, /labelstudio/predict
    POST /labelstudio/webhook  Label Studio's annotation events and START_TRAINING
    POST /labelstudio/train    the ML backend's older training call
    GET  /, POST /render      the demo page (scripts/inference/demo.py)
    GET  /metrics             Prometheus metrics (scripts/inference/serving.py: also request ids,
                              the access log, the API key and CORS)

With a RetrainingLoop (serve --data-dir) the webhook and train routes store the annotations and
retrain in the background (scripts/inference/retraining.py), and /health says how many
annotations are stored and what training does; without one they answer 200 and say how to turn
it on.

Label Studio calls <backend URL>/health, /setup and /predict, and its /predict body ({"tasks":
[...], "label_config": ...}) differs from ours, so its routes live under /labelstudio: connect the
backend as http://HOST:PORT/labelstudio in the project's Model settings. "Retrieve predictions"
sends every selected task in one request: /labelstudio/predict takes it whole (no --max-texts;
the body may be up to STUDIO_BODY_BYTES, Label Studio's own upload limit) and works through it
--max-texts tasks at a time, so that other requests are served in between; it stops when Label
Studio stops waiting (ML_TIMEOUT_PREDICT, 100 s by default). A task whose text is longer than
--max-chars or not Unicode gets an empty prediction and a line in the log, so that one task does
not cost the others theirs. Requests that arrive while a batch runs are joined into the next one
(one nlp.pipe call at a time: no thread contention, and busy servers batch). A text that is not
Unicode (a lone surrogate) answers 422 before it is batched, and a batch that fails anyway is
retried request by request, so that only the request at fault fails.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any, AsyncIterator, Callable, Optional

from pydantic import BaseModel
from starlette.requests import Request  # at module level: FastAPI resolves route annotations here

from scripts.common.errors import UserError
from scripts.inference.batching import Batcher, Limits, TooLarge, check_limits
from scripts.inference.demo import add_demo_routes
from scripts.inference.explain_route import add_explain_route
from scripts.inference.labelstudio_push import PredictionPush, PushSettings
from scripts.inference.predict import (
    Prediction,
    Predictor,
    labelstudio_config,
    labelstudio_prediction,
    parse_label_config,
    predict_texts,
    unreadable_text,
)
from scripts.inference.retraining import LivePredictor, Refused, RetrainingLoop
from scripts.inference.serving import ServeOptions, install

log = logging.getLogger("scripts.serve")
NOT_STORED = (
    "ignored: annotations are not stored; serve with --data-dir DIR (and --retrain-every N) "
    "to keep them and retrain"
)


class PredictRequest(BaseModel):
    texts: list[str]


def create_app(
    predictor: Predictor | LivePredictor,
    *,
    limits: Limits = Limits(),
    batch_size: Optional[int] = None,
    options: ServeOptions = ServeOptions(),
    retraining: Optional[RetrainingLoop] = None,
    push: Optional[PushSettings] = None,
) -> Any:
    """The FastAPI app over one loaded pipeline (a LivePredictor: one that retraining swaps);
    options: API key, CORS, metrics (scripts/inference/serving.py)."""
    from fastapi import APIRouter, Body, FastAPI, Response
    from fastapi.encoders import jsonable_encoder
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, PlainTextResponse

    # One pipeline, one batch at a time: the two batchers take turns.
    turn = threading.Lock()

    def run_pipeline(
        texts: list[str], *, parse_scores: bool = False, served: Optional[Predictor] = None
    ) -> list[Prediction]:
        with turn:
            return predict_texts(
                served or predictor, texts, batch_size=batch_size, parse_scores=parse_scores
            )

    batcher = Batcher(run_pipeline, max_texts=limits.max_texts)
    # Label Studio's tasks, batched among themselves: their task score also needs how sure the
    # recognizer is of a text without entities (parse_scores), which plain records leave out.
    studio_batcher = Batcher(
        lambda texts: run_pipeline(texts, parse_scores=True), max_texts=limits.max_texts
    )

    # Fresh predictions of the unlabelled tasks in Label Studio, at start-up and after each swap.
    pusher = None
    if push is not None:
        pusher = PredictionPush(
            replace(push, max_chars=push.max_chars or limits.max_chars),
            predictor=lambda: getattr(predictor, "current", predictor),
            predict=lambda served, texts: run_pipeline(texts, parse_scores=True, served=served),
        )
        if retraining is not None:
            retraining.on_swap = pusher.start

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(b.run()) for b in (batcher, studio_batcher)]
        if pusher is not None:
            pusher.start()
        if retraining is not None:
            retraining.resume()
        yield
        for task in tasks:
            task.cancel()
        if retraining is not None:
            await retraining.stop()

    app = FastAPI(title="spaCy pipeline", version=predictor.version, lifespan=lifespan)

    @app.middleware("http")
    async def refuse_huge_bodies(request: Request, call_next: Callable) -> Any:
        length = request.headers.get("content-length", "")
        limit = limits.body_limit(request.url.path)
        if length.isdigit() and int(length) > limit:
            detail = f"request body of {length} bytes is over the {limit} limit"
            return JSONResponse({"detail": detail}, status_code=413)
        return await call_next(request)

    @app.exception_handler(TooLarge)
    async def too_large(request: Request, err: TooLarge) -> JSONResponse:
        return JSONResponse({"detail": printable(str(err))}, status_code=413)

    @app.exception_handler(UserError)
    async def bad_input(request: Request, err: UserError) -> JSONResponse:
        answer = err.answer if isinstance(err, Refused) else {}
        return JSONResponse({"detail": printable(str(err)), **answer}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, err: RequestValidationError) -> Response:
        # FastAPI's own answer, with JSON's \u escapes: it echoes the input, which may hold a lone
        # surrogate that UTF-8 cannot carry
        body = json.dumps({"detail": jsonable_encoder(err.errors())})
        return Response(body, status_code=422, media_type="application/json")

    @app.get("/health")
    async def get_health() -> dict[str, Any]:
        return {
            "status": "UP",
            "model_version": predictor.version,
            "pipeline": predictor.nlp.pipe_names,
            "model_class": "spaCy",
            **(retraining.health() if retraining is not None else {}),
            **({"push": pusher.health()} if pusher is not None else {}),
        }

    @app.post("/predict")
    async def predict(request: PredictRequest) -> dict[str, Any]:
        check_limits(request.texts, limits=limits)
        return {
            "model_version": predictor.version,
            "predictions": await batcher.submit(request.texts),
        }

    add_explain_route(app, predictor=predictor, batcher=batcher, limits=limits)

    studio = APIRouter(prefix="/labelstudio")
    studio.add_api_route("/", get_health, methods=["GET"])
    studio.add_api_route("/health", get_health, methods=["GET"])

    @studio.get("/config", response_class=PlainTextResponse)
    async def config() -> str:
        return labelstudio_config(predictor)

    @studio.post("/setup")
    async def setup(payload: dict[str, Any] = Body(...)) -> dict[str, Any]:
        parse_label_config(payload.get("schema"))  # a config we cannot read fails on connecting
        if pusher is not None and payload.get("project") is not None:
            pusher.add_project(payload["project"])
        return {"model_version": predictor.version}

    @studio.post("/predict")
    async def studio_predict(request: Request, payload: Any = Body(...)) -> dict[str, Any]:
        """{"tasks": [{"id", "data": {...}}], "label_config": XML} -> {"results": [one
        prediction per task]}"""
        tasks = payload.get("tasks") if isinstance(payload, dict) else None
        if not isinstance(tasks, list):
            raise UserError("the Label Studio request has no 'tasks' list")
        label_config = parse_label_config(payload.get("label_config"))
        texts = [task_text(task, field=label_config.text_field) for task in tasks]
        texts = [None if t is None or unpredictable(t, limits) else t for t in texts]
        unread = [task_name(task) for task, text in zip(tasks, texts) if text is None]
        if unread:
            log.warning(
                "Label Studio predict: %d of %d tasks get an empty prediction (no text under %r, "
                "longer than --max-chars %d, or not Unicode): %s",
                len(unread), len(tasks), label_config.text_field, limits.max_chars,
                ", ".join(unread[:10]) + (" ..." if len(unread) > 10 else ""),
            )  # fmt: skip
        wanted = [t for t in texts if t is not None]
        predictions: list[Prediction] = []
        for start in range(0, len(wanted), limits.max_texts):
            if start and await request.is_disconnected():  # nobody reads the rest
                log.warning(
                    "Label Studio stopped waiting after %d of %d tasks (ML_TIMEOUT_PREDICT); "
                    "select fewer tasks, or raise ML_TIMEOUT_PREDICT in Label Studio's environment",
                    start, len(wanted),
                )  # fmt: skip
                return {"results": [], "model_version": predictor.version}
            predictions += await studio_batcher.submit(wanted[start : start + limits.max_texts])
        found = iter(predictions)
        results = [
            labelstudio_prediction(next(found), predictor=predictor, config=label_config)
            if text is not None
            else {"model_version": predictor.version, "result": []}
            for text in texts
        ]
        return {"results": results, "model_version": predictor.version}

    @studio.post("/webhook")  # newer: annotation events, START_TRAINING
    async def webhook(payload: Any = Body(...)) -> dict[str, Any]:
        project = payload.get("project") if isinstance(payload, dict) else None
        if pusher is not None and isinstance(project, dict) and project.get("id") is not None:
            pusher.add_project(project["id"], tasks_added=payload.get("action") == "TASKS_CREATED")
        if retraining is None:
            return {"status": NOT_STORED}
        return await retraining.webhook(payload)

    @studio.post("/train")  # older: the Start Training button
    async def train(payload: Any = Body(...)) -> dict[str, Any]:
        if retraining is None:
            return {"status": NOT_STORED}
        return await retraining.train(payload)

    @studio.get("/metrics")
    async def metrics() -> dict[str, Any]:
        return {}

    app.include_router(studio)

    async def predict_checked(texts: list[str]) -> list[Prediction]:
        check_limits(texts, limits=limits, what="text")
        return await batcher.submit(texts)

    add_demo_routes(app, predictor=predictor, predict=predict_checked)
    install(app, options=options)
    return app


def printable(message: str) -> str:
    """A message that JSON can carry as UTF-8: a lone surrogate from the client escaped."""
    return message.encode("utf-8", "backslashreplace").decode("utf-8")


def unpredictable(text: str, limits: Limits) -> bool:
    return len(text) > limits.max_chars or unreadable_text(text) is not None


def task_name(task: Any) -> str:
    task_id = task.get("id") if isinstance(task, dict) else None
    return f"task {task_id}" if isinstance(task_id, int) else "a task without an id"


def task_text(task: Any, *, field: str) -> Optional[str]:
    """The text a Label Studio task holds under data[field]; None when it has none (an empty
    result)."""
    data = task.get("data") if isinstance(task, dict) else None
    value = data.get(field) if isinstance(data, dict) else None
    return value if isinstance(value, str) else None
