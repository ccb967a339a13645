"""What a production server adds around the app of server.py: request ids, one JSON access-log
line per request, Prometheus metrics (GET /metrics), an optional API key and CORS.

    app = create_app(predictor, options=ServeOptions(api_key="s3cret", cors_origins=("https://x",)))

From the outside in: request context (id, access log, metrics, a 500 for an unhandled error) ->
CORS -> API key -> the app's own middleware and routes. So a refused or failed request is logged
and counted too, and a browser on an allowed origin can read a 401.

The API key: every route needs `Authorization: Bearer KEY` except GET /health and the demo page
(static files and /demo.json, the model's name and labels: no model output; its requests need
the key). /metrics needs it (Prometheus sends it with `authorization: {credentials_file: ...}`
in the scrape config). The Label Studio routes also accept HTTP Basic authentication with the
key as the password (any user name): Label Studio's ML backend connection can send Basic
authentication but no other header.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import os
import re
import sys
import time
import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, Optional, Sequence

from scripts.common.errors import one_line

REQUEST_ID_HEADER = "X-Request-ID"
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+=/-]{0,127}")  # what logs can carry as is
# No model output, no data: the demo page, and what the model is (its name and labels).
OPEN_PATHS = frozenset({"/health", "/", "/demo.js", "/demo.css", "/demo.json"})
LABEL_STUDIO_PREFIX = "/labelstudio"
UNMATCHED = "unmatched"  # the route label of a path no route serves: keeps metrics bounded
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

access_log = logging.getLogger("scripts.serve.access")
error_log = logging.getLogger("scripts.serve.errors")

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class ServeOptions:
    """What create_app adds around the routes; the defaults: no key, no CORS, /metrics on."""

    api_key: Optional[str] = None
    cors_origins: tuple[str, ...] = ()
    metrics: bool = True


@dataclass
class RequestFacts:
    """What the routes tell the access log about the request they answer."""

    texts: Optional[int] = None


_facts: ContextVar[Optional[RequestFacts]] = ContextVar("request_facts", default=None)


def note_texts(count: int) -> None:
    """Record how many texts the current request sends to the pipeline (the access log and the
    texts counter show it); does nothing outside a request."""
    facts = _facts.get()
    if facts is not None:
        facts.texts = (facts.texts or 0) + count


def install(app: Any, *, options: ServeOptions) -> None:
    """Add the API key, CORS, the request context and GET /metrics to a FastAPI app."""
    if options.api_key:
        app.add_middleware(ApiKeyMiddleware, key=options.api_key)
    if options.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(options.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", REQUEST_ID_HEADER],
            expose_headers=[REQUEST_ID_HEADER],
        )
    metrics = Metrics() if options.metrics and metrics_available() else None
    if metrics is not None:
        app.add_api_route("/metrics", metrics.endpoint, methods=["GET"], include_in_schema=False)
    app.add_middleware(RequestContextMiddleware, metrics=metrics, routes=app.routes)


def metrics_available() -> bool:
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return False
    return True


def configure_logging() -> None:
    """Access-log lines (JSON, one a request) and errors (a JSON line and the traceback) on
    stderr; called by the serving process, not by tests, which read the records instead."""
    for logger in (access_log, error_log):
        if not logger.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(message)s"))
            logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


# --------------------------------------------------------------------------------------------------
# Request ids, the access log, metrics, and a 500 with the request id for an unhandled error


def request_id_of(scope: Scope) -> str:
    """The client's X-Request-ID when it is a sane token (letters, digits, ._:+=/-, at most 128),
    else a new one."""
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if SANE_REQUEST_ID.fullmatch(candidate):
                return candidate
    return uuid.uuid4().hex


def route_of(scope: Scope, routes: Sequence[Any] = ()) -> str:
    """The route template of the request ("/predict"), also for one refused before routing (401,
    413), or "unmatched"."""
    route = scope.get("route")
    if route is None:
        from starlette.routing import Match

        route = next((r for r in routes if r.matches(scope)[0] != Match.NONE), None)
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


class RequestContextMiddleware:
    """Gives every HTTP request an id (X-Request-ID in and out), logs one JSON line when it is
    answered and counts it; an unhandled error answers 500 with the id and logs its traceback."""

    def __init__(
        self, app: ASGIApp, *, metrics: Optional["Metrics"] = None, routes: Sequence[Any] = ()
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_of(scope)
        facts = RequestFacts()
        token = _facts.set(facts)
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status, response_started = message["status"], True
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (REQUEST_ID_HEADER.lower().encode(), request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as err:
            error_log.error(
                json.dumps({"time": now(), "request_id": request_id, "error": one_line(err)}),
                exc_info=True,
            )
            if response_started:
                raise
            await send_json(
                send_with_id,
                500,
                {"detail": f"internal error; the server log has it under request id {request_id}"},
            )
        finally:
            _facts.reset(token)
            seconds = time.perf_counter() - started
            route = route_of(scope, self.routes)
            line: dict[str, Any] = {
                "time": now(),
                "request_id": request_id,
                "method": scope["method"],
                "path": scope["path"],
                "route": route,
                "status": status,
                "duration_ms": round(seconds * 1000, 1),
            }
            if facts.texts is not None:
                line["texts"] = facts.texts
            client = scope.get("client")
            line["client"] = client[0] if client else None
            access_log.info(json.dumps(line, ensure_ascii=False))
            if self.metrics is not None:
                texts = facts.texts if status < 400 else None
                self.metrics.observe(
                    route=route, method=scope["method"], status=status, seconds=seconds, texts=texts
                )


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


async def send_json(send: Send, status: int, body: dict[str, Any], **headers: str) -> None:
    data = json.dumps(body).encode("utf8")
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    raw += [(name.lower().encode(), value.encode()) for name, value in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})


# --------------------------------------------------------------------------------------------------
# The API key


class ApiKeyMiddleware:
    """401 for a request without `Authorization: Bearer KEY`, except on OPEN_PATHS; the Label
    Studio routes also take HTTP Basic with the key as the password. Compared in constant time."""

    def __init__(self, app: ASGIApp, *, key: str) -> None:
        self.app = app
        self.key = key.encode("utf8")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :] or "/"
        label_studio = path == LABEL_STUDIO_PREFIX or path.startswith(LABEL_STUDIO_PREFIX + "/")
        if path in OPEN_PATHS or self.allows(scope, basic=label_studio):
            await self.app(scope, receive, send)
            return
        challenge = 'Basic realm="labelstudio"' if label_studio else "Bearer"
        await send_json(
            send,
            401,
            {"detail": "missing or wrong API key: send the header Authorization: Bearer KEY"},
            **{"WWW-Authenticate": challenge},
        )

    def allows(self, scope: Scope, *, basic: bool) -> bool:
        header = b""
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                header = value
        scheme, _, credentials = header.strip().partition(b" ")
        if scheme.lower() == b"bearer":
            return hmac.compare_digest(credentials.strip(), self.key)
        if basic and scheme.lower() == b"basic":
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True)
            except ValueError:
                return False
            return hmac.compare_digest(decoded.partition(b":")[2], self.key)
        return False


# --------------------------------------------------------------------------------------------------
# Prometheus metrics


class Metrics:
    """Requests by route template, method and status; latency by route; texts predicted. With
    PROMETHEUS_MULTIPROC_DIR set (scripts.serve --workers N sets it), every worker writes its
    values there and GET /metrics adds up all workers."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        # multiprocess: the values live in files and are collected per scrape, not registered
        self.registry = None if self.multiprocess else CollectorRegistry()
        self.requests = Counter(
            "spacy_http_requests",
            "HTTP requests answered, by route template, method and status code",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "spacy_http_request_duration_seconds",
            "Time from receiving a request to answering it, by route template",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.texts = Counter(
            "spacy_texts_predicted",
            "Texts run through the pipeline (POST /predict, /render and Label Studio tasks)",
            registry=self.registry,
        )

    def observe(
        self, *, route: str, method: str, status: int, seconds: float, texts: Optional[int]
    ) -> None:
        self.requests.labels(route=route, method=method, status=str(status)).inc()
        self.latency.labels(route=route).observe(seconds)
        if texts:
            self.texts.inc(texts)

    async def endpoint(self) -> Any:
        from fastapi import Response
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        registry = self.registry
        if registry is None:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
