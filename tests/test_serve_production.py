"""scripts.serve in production: the API key, CORS, request ids, the JSON access log, /metrics, the
demo page's /render, and worker processes (a pipeline directory and an installed package)."""

from __future__ import annotations

import base64
import html
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from scripts.common.errors import UserError
from scripts.inference.batching import Limits
from scripts.inference.demo import render_entities
from scripts.inference.labelstudio_push import PushSettings
from scripts.inference.predict import predict_texts
from scripts.inference.server import create_app
from scripts.inference.serving import ServeOptions
from scripts.inference.workers import ServeSettings, push_settings
from tests.helpers import PROJECT_ROOT, TEXTS

KEY = "s3cret-key-for-tests"
ORIGIN = "https://app.example.com"
BEARER = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def guarded(predictor):
    options = ServeOptions(api_key=KEY, cors_origins=(ORIGIN,))
    app = create_app(predictor, limits=Limits(max_texts=8, max_chars=1000), options=options)
    with TestClient(app) as client:
        yield client


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def test_without_the_key_every_route_but_health_and_the_page_is_401(guarded):
    for method, path in [
        ("POST", "/predict"),
        ("POST", "/render"),
        ("GET", "/metrics"),
        ("GET", "/labelstudio/health"),
        ("POST", "/labelstudio/predict"),
        ("GET", "/docs"),
    ]:
        for headers in ({}, {"Authorization": "Bearer wrong"}, basic("x", KEY)):
            if path.startswith("/labelstudio") and headers == basic("x", KEY):
                continue  # Label Studio sends the key as a Basic password: accepted there
            response = guarded.request(method, path, headers=headers, json={"texts": ["x"]})
            assert response.status_code == 401, (method, path, headers)
            assert "Authorization: Bearer" in response.json()["detail"]
    assert guarded.get("/health").status_code == 200
    assert guarded.get("/").status_code == 200 and "<title>" in guarded.get("/").text


def test_with_the_key_the_routes_answer_as_without_one(guarded, predictor):
    response = guarded.post("/predict", json={"texts": TEXTS}, headers=BEARER)
    assert response.status_code == 200
    assert response.json()["predictions"] == predict_texts(predictor, TEXTS)
    studio = guarded.post(
        "/labelstudio/predict",
        json={"tasks": [{"id": 1, "data": {"text": TEXTS[0]}}]},
        headers=basic("labelstudio", KEY),
    )
    assert studio.status_code == 200 and len(studio.json()["results"]) == 1
    assert guarded.post("/labelstudio/setup", json={}, headers=BEARER).status_code == 200
    assert guarded.get("/labelstudio/health", headers=basic("", KEY)).json()["status"] == "UP"
    wrong = guarded.get("/labelstudio/health", headers=basic("labelstudio", "nope"))
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"].startswith("Basic")


@pytest.mark.parametrize(
    "texts, status, render_status",
    [
        (["x"] * 9, 413, 200),
        (["y" * 1001], 413, 413),
        ("not a list", 422, 200),
        (["\ud800"], 422, 422),
    ],
)
def test_limits_and_bad_input_still_answer_with_the_key(guarded, texts, status, render_status):
    body = json.dumps({"texts": texts}).encode()  # ASCII escapes: a lone surrogate is valid JSON
    headers = {**BEARER, "content-type": "application/json"}
    assert guarded.post("/predict", content=body, headers=headers).status_code == status
    text = json.dumps({"text": texts[0] if isinstance(texts, list) else texts}).encode()
    assert guarded.post("/render", content=text, headers=headers).status_code == render_status


def test_cors_answers_the_listed_origin_only(guarded):
    preflight = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
    allowed = guarded.options("/predict", headers=preflight)
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    other = guarded.options(
        "/predict", headers={**preflight, "Origin": "https://elsewhere.example"}
    )
    assert "access-control-allow-origin" not in other.headers
    refused = guarded.post("/predict", json={"texts": ["x"]}, headers={"Origin": ORIGIN})
    assert refused.status_code == 401  # and the page on that origin can read why:
    assert refused.headers["access-control-allow-origin"] == ORIGIN
    assert "x-request-id" in refused.headers["access-control-expose-headers"].lower()


def test_request_ids_are_kept_when_sane_and_made_otherwise(guarded):
    kept = guarded.get("/health", headers={"X-Request-ID": "abc-123_X.y:z"})
    assert kept.headers["x-request-id"] == "abc-123_X.y:z"
    for insane in ("", "with space", "x" * 200, "new\u00e9line"):
        made = guarded.get("/health", headers={"X-Request-ID": insane.encode("utf8")})
        assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"]), insane
    first, second = guarded.get("/health"), guarded.get("/health")
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


def test_one_json_access_line_per_request_without_the_texts(guarded, caplog):
    secret_text = "Confidential: Python and SQL."
    with caplog.at_level(logging.INFO, logger="scripts.serve.access"):
        guarded.post(
            "/predict",
            json={"texts": [secret_text, "x"]},
            headers={**BEARER, "X-Request-ID": "req-1"},
        )
        guarded.post("/predict", json={"texts": ["x"] * 9}, headers=BEARER)
        guarded.get("/nowhere", headers=BEARER)
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name.endswith("access")]
    assert len(lines) == 3
    ok, too_many, missing = lines
    assert set(ok) == {
        "time",
        "request_id",
        "method",
        "path",
        "route",
        "status",
        "duration_ms",
        "texts",
        "client",
    }
    assert (ok["request_id"], ok["method"], ok["path"], ok["status"], ok["texts"]) == (
        "req-1",
        "POST",
        "/predict",
        200,
        2,
    )
    assert ok["duration_ms"] >= 0 and ok["client"] == "testclient"
    assert too_many["status"] == 413 and "texts" not in too_many
    assert (missing["status"], missing["route"]) == (404, "unmatched")
    assert secret_text not in caplog.text


def test_an_unhandled_error_is_500_with_the_request_id_and_logged(predictor, caplog):
    app = create_app(predictor)

    @app.get("/fail")
    async def fail() -> None:
        raise RuntimeError("kaput")

    with caplog.at_level(logging.INFO, logger="scripts.serve"), TestClient(app) as client:
        response = client.get("/fail", headers={"X-Request-ID": "req-500"})
    assert response.status_code == 500 and response.headers["x-request-id"] == "req-500"
    assert "req-500" in response.json()["detail"]
    errors = [r for r in caplog.records if r.name == "scripts.serve.errors"]
    assert json.loads(errors[0].getMessage())["error"] == "kaput" and errors[0].exc_info


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            sample, _, value = line.rpartition(" ")
            found = dict(re.findall(r'(\w+)="([^"]*)"', sample))
            if sample.split("{")[0] == name and all(found.get(k) == v for k, v in labels.items()):
                return float(value)
    return 0.0


def test_metrics_count_requests_by_route_status_latency_and_texts(predictor):
    with TestClient(create_app(predictor, limits=Limits(max_texts=4))) as client:
        for _ in range(3):
            client.post("/predict", json={"texts": ["Python", "SQL"]})
        client.post("/predict", json={"texts": ["x"] * 5})
        client.post("/labelstudio/predict", json={"tasks": [{"data": {"text": "Java"}}]})
        response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    requests = "spacy_http_requests_total"
    assert metric(text, requests, route="/predict", method="POST", status="200") == 3
    assert metric(text, requests, route="/predict", status="413") == 1
    assert metric(text, requests, route="/labelstudio/predict", status="200") == 1
    assert metric(text, "spacy_http_request_duration_seconds_count", route="/predict") == 4
    assert metric(text, "spacy_texts_predicted_total") == 7


def test_render_gives_displacy_markup_and_the_chosen_category(predictor):
    text = "Python and SQL <b>are</b> required."
    with TestClient(create_app(predictor)) as client:
        body = client.post("/render", json={"text": text}).json()
    (expected,) = predict_texts(predictor, [text])
    assert body["entities"] == expected["entities"] and body["cats"] == expected["cats"]
    assert body["chosen"] == [max(expected["cats"], key=expected["cats"].get)]
    assert body["html"] == render_entities(text, expected, ent_labels=predictor.ent_labels)
    assert not re.search(r"</?b>", body["html"]) and "&lt;b" in body["html"]  # escaped text
    for ent in expected["entities"]:
        mark = rf"<mark[^>]*>\s*{re.escape(html.escape(ent['text']))}\s*<span[^>]*>{ent['label']}"
        assert re.search(mark, body["html"])


def fake_installed_package(pipeline: Path, site: Path) -> str:
    """The pipeline as pip would install its wheel: package en_tiny with its data folder."""
    package = site / "en_tiny"
    shutil.copytree(pipeline, package / "en_tiny-0.0.1")
    shutil.copy(pipeline / "meta.json", package / "meta.json")
    (package / "__init__.py").write_text(
        "from spacy.util import load_model_from_init_py\n\n\n"
        "def load(**overrides):\n    return load_model_from_init_py(__file__, **overrides)\n"
    )
    info = site / "en_tiny-0.0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: en_tiny\nVersion: 0.0.1\n")
    return "en_tiny"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def worker_pids(temp: Path) -> set[str]:
    """The processes with values in the metrics folder (prometheus_client: one file a process)."""
    return {
        match.group(1)
        for path in temp.glob("*/*.db")
        if (match := re.search(r"_(\d+)\.db$", path.name))
    }


@pytest.mark.slow
@pytest.mark.parametrize("model_kind", ["directory", "package"])
def test_two_workers_serve_one_port_and_metrics_add_up_across_them(
    tiny_pipeline, tmp_path, model_kind
):
    site = tmp_path / "site"
    site.mkdir()
    model = str(tiny_pipeline)
    if model_kind == "package":
        model = fake_installed_package(tiny_pipeline, site)
    temp = tmp_path / "temp"  # where the server makes its metrics folder
    temp.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "TMPDIR": str(temp), "TEST_SERVE_KEY": KEY}
    port = free_port()
    command = [sys.executable, "-m", "scripts.serve", model, "--port", str(port), "--workers", "2"]
    command += ["--api-key-env", "TEST_SERVE_KEY", "--gpu-id", "-1", "--max-texts", "4"]
    log = tmp_path / "server.log"
    with log.open("w") as output:
        server = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stderr=output)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while not (up(url) and len(worker_pids(temp)) == 2):  # every worker has made its app
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        for _ in range(6):  # a new connection each: either worker may answer
            response = httpx.post(f"{url}/predict", json={"texts": ["Python"]}, headers=BEARER)
            assert response.status_code == 200
        too_many = httpx.post(f"{url}/predict", json={"texts": ["x"] * 5}, headers=BEARER)
        assert too_many.status_code == 413
        assert httpx.post(f"{url}/predict", json={"texts": ["x"]}).status_code == 401
        text = httpx.get(f"{url}/metrics", headers=BEARER).text
    finally:
        server.terminate()
        server.wait(timeout=60)
    requests = "spacy_http_requests_total"
    assert metric(text, requests, route="/predict", status="200") == 6
    assert metric(text, requests, route="/predict", status="413") == 1
    assert metric(text, requests, route="/predict", status="401") == 1
    assert metric(text, "spacy_texts_predicted_total") == 6
    access = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert sum(1 for line in access if line["path"] == "/predict") == 8
    assert not list(temp.iterdir())  # the metrics folder is gone with the server


@pytest.mark.slow
def test_an_unset_api_key_variable_is_one_line(tiny_pipeline):
    env = {k: v for k, v in os.environ.items() if k != "NO_SUCH_KEY"}
    done = subprocess.run(
        [sys.executable, "-m", "scripts.serve", str(tiny_pipeline), "--api-key-env", "NO_SUCH_KEY"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "--api-key-env NO_SUCH_KEY: the environment variable NO_SUCH_KEY is not set" in (
        done.stderr
    )


@pytest.mark.slow
def test_the_label_studio_loop_refuses_several_workers_in_one_line(tiny_pipeline, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "scripts.serve", str(tiny_pipeline), "--workers", "2"]
        + ["--data-dir", str(tmp_path / "ls")],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "--data-dir with --workers 2: the Label Studio loop runs in one process" in done.stderr
    assert not (tmp_path / "ls").exists()  # refused before anything is written


def test_the_label_studio_push_needs_its_url_and_a_token_each_said_in_one_line(monkeypatch):
    monkeypatch.delenv("NO_SUCH_TOKEN", raising=False)
    url = "http://localhost:8080"
    assert push_settings(ServeSettings(model="m")) is None
    with pytest.raises(UserError, match="NO_SUCH_TOKEN is not set or empty; copy the Access"):
        push_settings(
            ServeSettings(model="m", label_studio_url=url, label_studio_token_env="NO_SUCH_TOKEN")
        )
    with pytest.raises(UserError, match="no token; copy the Access Token"):
        push_settings(ServeSettings(model="m", label_studio_url=url))
    with pytest.raises(UserError, match="need --label-studio-url"):
        push_settings(ServeSettings(model="m", label_studio_projects=(3,)))
    with pytest.raises(UserError, match="--uncertainty-sampling sets it through"):
        push_settings(ServeSettings(model="m", uncertainty_sampling=True))
    monkeypatch.setenv("LS_TEST_TOKEN", " abc \n")
    settings = ServeSettings(
        model="m",
        label_studio_url=url,
        label_studio_token_env="LS_TEST_TOKEN",
        label_studio_projects=(3, 4),
        uncertainty_sampling=True,
    )
    found = push_settings(ServeSettings.from_json(settings.to_json()))
    assert found == PushSettings(url=url, token="abc", projects=(3, 4), uncertainty_sampling=True)
    assert "abc" not in settings.to_json()  # the settings travel to workers without the token
