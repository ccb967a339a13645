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
    POST /labelstudio/webhook, /labelstudio/train: answer 200 and do nothing

Label Studio calls <backend URL>/health, /setup and /predict, and its /predict body ({"tasks":
[...], "label_config": ...}) differs from ours, so its routes live under /labelstudio: connect the
backend as http://HOST:PORT/labelstudio in the project's Model settings. Requests that arrive while
a batch runs are joined into the next one (one nlp.pipe call at a time: no thread contention, and
busy servers batch).
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, Optional

from pydantic import BaseModel

from scripts.common.errors import UserError
from scripts.inference.predict import (
    Prediction,
    Predictor,
    labelstudio_config,
    labelstudio_prediction,
    parse_label_config,
    predict_texts,
)


@dataclass(frozen=True)
class Limits:
    max_texts: int = 256  # texts (or Label Studio tasks) per request
    max_chars: int = 100_000  # characters per text

    @property
    def max_body_bytes(self) -> int:
        # Generous: JSON escapes (\uXXXX) take up to six bytes a character, plus the label config.
        return self.max_texts * self.max_chars * 6 + 1_000_000


class PredictRequest(BaseModel):
    texts: list[str]


class TooLarge(Exception):
    """A request over the limits: answered 413 with the message."""


class Batcher:
    """Runs predictions one batch at a time in a worker thread; requests that arrive meanwhile wait
    and go together into the next batch, up to max_texts texts. Adds no delay when the server is
    idle."""

    def __init__(self, predict: Callable[[list[str]], list[Prediction]], *, max_texts: int) -> None:
        self.predict = predict
        self.max_texts = max_texts
        self.queue: asyncio.Queue[tuple[list[str], asyncio.Future]] = asyncio.Queue()

    async def submit(self, texts: list[str]) -> list[Prediction]:
        if not texts:
            return []
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        await self.queue.put((texts, future))
        return await future

    async def run(self) -> None:
        waiting: Optional[tuple[list[str], asyncio.Future]] = None  # did not fit the last batch
        while True:
            batch = [waiting or await self.queue.get()]
            waiting, size = None, len(batch[0][0])
            while not self.queue.empty():
                item = self.queue.get_nowait()
                if size + len(item[0]) > self.max_texts:
                    waiting = item
                    break
                batch.append(item)
                size += len(item[0])
            texts = [text for request, _ in batch for text in request]
            try:
                predictions = await asyncio.to_thread(self.predict, texts)
            except Exception as err:  # a bad batch answers 500 to its requests; serving goes on
                for _, future in batch:
                    if not future.done():
                        future.set_exception(err)
                continue
            start = 0
            for request, future in batch:
                if not future.done():  # the client may have gone away
                    future.set_result(predictions[start : start + len(request)])
                start += len(request)


def check_limits(texts: list[str], *, limits: Limits, what: str = "texts") -> None:
    if len(texts) > limits.max_texts:
        raise TooLarge(
            f"{len(texts)} {what} in one request; the limit is {limits.max_texts} (--max-texts): "
            "send fewer per request"
        )
    for i, text in enumerate(texts):
        if len(text) > limits.max_chars:
            raise TooLarge(
                f"{what} {i} has {len(text)} characters; the limit is {limits.max_chars} "
                "(--max-chars): split long texts"
            )


def create_app(
    predictor: Predictor, *, limits: Limits = Limits(), batch_size: Optional[int] = None
) -> Any:
    """The FastAPI app over one loaded pipeline."""
    from fastapi import APIRouter, Body, FastAPI, Request
    from fastapi.responses import JSONResponse, PlainTextResponse

    from scripts.inference.explain_route import add_explain_route

    batcher = Batcher(
        lambda texts: predict_texts(predictor, texts, batch_size=batch_size),
        max_texts=limits.max_texts,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(batcher.run())
        yield
        task.cancel()

    app = FastAPI(title="spaCy pipeline", version=predictor.version, lifespan=lifespan)

    @app.middleware("http")
    async def refuse_huge_bodies(request: Request, call_next: Callable) -> Any:
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > limits.max_body_bytes:
            detail = f"request body of {length} bytes is over the {limits.max_body_bytes} limit"
            return JSONResponse({"detail": detail}, status_code=413)
        return await call_next(request)

    @app.exception_handler(TooLarge)
    async def too_large(request: Request, err: TooLarge) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=413)

    @app.exception_handler(UserError)
    async def bad_input(request: Request, err: UserError) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=422)

    @app.get("/health")
    async def get_health() -> dict[str, Any]:
        return {
            "status": "UP",
            "model_version": predictor.version,
            "pipeline": predictor.nlp.pipe_names,
            "model_class": "spaCy",
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
        return {"model_version": predictor.version}

    @studio.post("/predict")
    async def studio_predict(payload: dict[str, Any] = Body(...)) -> dict[str, Any]:
        """{"tasks": [{"id", "data": {...}}], "label_config": XML} -> {"results": [one
        prediction per task]}"""
        tasks = payload.get("tasks")
        if not isinstance(tasks, list):
            raise UserError("the Label Studio request has no 'tasks' list")
        label_config = parse_label_config(payload.get("label_config"))
        texts = [task_text(task, field=label_config.text_field) for task in tasks]
        check_limits([t or "" for t in texts], limits=limits, what="tasks")
        predictions = await batcher.submit([t for t in texts if t is not None])
        found = iter(predictions)
        results = [
            labelstudio_prediction(next(found), predictor=predictor, config=label_config)
            if text is not None
            else {"model_version": predictor.version, "result": []}
            for text in texts
        ]
        return {"results": results, "model_version": predictor.version}

    async def no_training(payload: dict[str, Any] = Body(...)) -> dict[str, Any]:
        return {"status": "ignored: this backend predicts only; train with the project workflow"}

    studio.add_api_route("/webhook", no_training, methods=["POST"])  # newer: annotation events
    studio.add_api_route("/train", no_training, methods=["POST"])  # older: Start Training button

    @studio.get("/metrics")
    async def metrics() -> dict[str, Any]:
        return {}

    app.include_router(studio)
    return app


def task_text(task: Any, *, field: str) -> Optional[str]:
    """The text a Label Studio task holds under data[field]; None when it has none (an empty
    result)."""
    data = task.get("data") if isinstance(task, dict) else None
    value = data.get(field) if isinstance(data, dict) else None
    return value if isinstance(value, str) else None
