"""The Label Studio loop against a real Label Studio: a project with the backend's labeling config,
the backend connected (POST /api/ml), pre-annotations retrieved, annotations submitted, updated and
deleted through Label Studio's API, a webhook that delivers them, a retraining, and predictions
with the new model_version. At scale: "Retrieve predictions" on a project of 1,000 tasks (one
request) gives every task a prediction, and 500 annotations submitted by 16 annotators at once are
each stored once.

Label Studio's dependencies clash with the runtime's, so it lives in a virtual environment of its
own: .ci/run installs it into .venvs/label-studio (requirements/labelstudio.txt); LABEL_STUDIO_BIN
names another `label-studio` executable.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest

from scripts.inference.labelstudio_push import LabelStudioApi, PredictionPush, PushSettings
from scripts.inference.predict import predict_texts
from tests.helpers import PROJECT_ROOT, TRAIN

pytestmark = pytest.mark.slow  # starts Label Studio and the backend, retrains

VENV_BIN = PROJECT_ROOT / ".venvs" / "label-studio" / "bin" / "label-studio"
TOKEN = "spacy-ner-textcat-e2e-token"
TOKEN_ENV = "LABEL_STUDIO_E2E_TOKEN"
USER = {"LABEL_STUDIO_USERNAME": "e2e@example.com", "LABEL_STUDIO_PASSWORD": "e2e-password"}
EVENTS = ["ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED"]
EVENTS += ["TASKS_CREATED"]  # a push predicts the tasks imported after the backend connected


def label_studio_bin() -> Path:
    found = os.environ.get("LABEL_STUDIO_BIN") or (str(VENV_BIN) if VENV_BIN.exists() else "")
    if not found:
        pytest.skip(
            "label-studio is not installed: python -m venv .venvs/label-studio && "
            ".venvs/label-studio/bin/pip install -r requirements/labelstudio.txt (.ci/run does)"
        )
    return Path(found)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, log: Path, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=5).is_success:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            break
        time.sleep(0.5)
    raise AssertionError(f"{url} did not come up: {log.read_text(errors='replace')[-3000:]}")


def studio_env(data_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        **USER,
        "LABEL_STUDIO_USER_TOKEN": TOKEN,
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        # The backend listens on localhost, which Label Studio refuses to call by default.
        "SSRF_PROTECTION_ENABLED": "false",
        "ML_BLOCK_LOCAL_IP": "false",
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
        "DJANGO_DB": "sqlite",
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
    }


def initialized_data(binary: Path, tmp: Path) -> Path:
    """A copy of a migrated Label Studio database with the user and token: migrating takes most
    of Label Studio's first start, so it is done once and kept beside its environment."""
    template = binary.parent.parent.parent / f"{binary.parent.parent.name}-data"
    if not (template / "label_studio.sqlite3").is_file():
        building = template.with_name(template.name + f".{os.getpid()}.tmp")
        shutil.rmtree(building, ignore_errors=True)
        done = subprocess.run(
            [str(binary), "init", "--data-dir", str(building), "--quiet",
             "--enable-legacy-api-token"],
            env=studio_env(building),
            capture_output=True,
            text=True,
            timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        if not (template / "label_studio.sqlite3").is_file():
            shutil.rmtree(template, ignore_errors=True)
            building.rename(template)
    shutil.copytree(template, tmp / "label-studio-data")
    return tmp / "label-studio-data"


def start(command: list[str], *, env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # stopped with its children
    )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def result_of(text: str, spans: list[tuple[int, int, str]], label: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = [
        {
            "from_name": "label",
            "to_name": "text",
            "type": "labels",
            "value": {"start": s, "end": e, "text": text[s:e], "labels": [name]},
        }
        for s, e, name in spans
    ]
    items.append(
        {
            "from_name": "category",
            "to_name": "text",
            "type": "choices",
            "value": {"choices": [label]},
        }
    )
    return items


@dataclass
class Session:
    """A running Label Studio with the backend connected to a project of the backend's config."""

    call: Callable[..., Any]  # call(method, path, **httpx options) -> the JSON answer
    backend: str  # the backend's base URL
    project: int
    journal: Path  # the backend's annotation journal
    studio: str  # Label Studio's base URL


@contextmanager
def label_studio(
    tmp_path: Path, tiny_pipeline: Path | None, *serve_options: str, push: bool = False
) -> Iterator[Session]:
    """Label Studio and `scripts.serve` (with serve_options) started, a project with the
    backend's labeling config, the webhook for annotation events, and the ML backend connected.
    push: the backend also pushes its predictions to Label Studio (--label-studio-url).
    tiny_pipeline None: no model, serve_options start a --cold-start."""
    binary = label_studio_bin()
    scratch = ram_disk_dir() or tmp_path
    data = initialized_data(binary, scratch)
    studio_port, backend_port = free_port(), free_port()
    studio_url, backend = f"http://127.0.0.1:{studio_port}", f"http://127.0.0.1:{backend_port}"
    if push:
        serve_options += ("--label-studio-url", studio_url, "--label-studio-token-env", TOKEN_ENV)
    backend_log, studio_log = tmp_path / "backend.log", tmp_path / "studio.log"
    served: list[str] = []
    if tiny_pipeline is not None:
        # the test pipeline with entity scores, as training makes them
        served.append(str(tmp_path / "served"))
        subprocess.run(
            [sys.executable, "-m", "scripts.add_confidence", str(tiny_pipeline), served[0]],
            cwd=PROJECT_ROOT,
            check=True,
            capture_output=True,
        )
    server = start(
        [sys.executable, "-m", "scripts.serve", *served, "--port", str(backend_port),
         "--gpu-id", "-1", "--data-dir", str(tmp_path / "ls-data"), *serve_options],
        env={**os.environ, TOKEN_ENV: TOKEN},
        log=backend_log,
    )  # fmt: skip
    studio = start(
        [str(binary), "start", "--no-browser", "--port", str(studio_port), "--data-dir",
         str(data), "--enable-legacy-api-token"],
        env=studio_env(data),
        log=studio_log,
    )  # fmt: skip
    try:
        wait_until_up(f"{backend}/health", server, backend_log, timeout=120)
        wait_until_up(f"{studio_url}/health", studio, studio_log, timeout=240)
        api = httpx.Client(
            base_url=studio_url, headers={"Authorization": f"Token {TOKEN}"}, timeout=300
        )

        def call(method: str, path: str, **kw: Any) -> Any:
            response = api.request(method, path, **kw)
            assert response.is_success, f"{method} {path}: {response.status_code} {response.text}"
            return response.json() if response.content else None

        config = httpx.get(f"{backend}/labelstudio/config").text
        project = call("POST", "/api/projects", json={"title": "jobs", "label_config": config})
        pid = project["id"]
        call(
            "POST",
            "/api/webhooks",
            json={"project": pid, "url": f"{backend}/labelstudio/webhook", "send_payload": True,
                  "send_for_all_actions": False, "actions": EVENTS},
        )  # fmt: skip
        ml = call(
            "POST",
            "/api/ml",
            json={"url": f"{backend}/labelstudio", "project": pid, "title": "spaCy"},
        )
        assert ml["state"] == "CO", ml  # connected: /health and /setup answered
        yield Session(call, backend, pid, tmp_path / "ls-data" / "annotations.jsonl", studio_url)
    finally:
        stop(studio)
        stop(server)
        if scratch != tmp_path:
            shutil.rmtree(scratch, ignore_errors=True)


def ram_disk_dir() -> Path | None:
    """A fresh folder on /dev/shm, where there is one: Label Studio on SQLite commits every
    prediction and annotation on its own, and a slow disk's fsyncs would take most of the time."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        return None
    return Path(tempfile.mkdtemp(prefix="label-studio-e2e-", dir=shm))


def import_tasks(session: Session, texts: list[str]) -> list[dict[str, Any]]:
    """Import one task per text; the tasks in import order."""
    call, pid = session.call, session.project
    call("POST", f"/api/projects/{pid}/import", json=[{"text": text} for text in texts])
    tasks = call("GET", "/api/tasks", params={"project": pid, "page_size": len(texts) + 10})
    tasks = sorted(tasks["tasks"] if isinstance(tasks, dict) else tasks, key=lambda t: t["id"])
    assert [t["data"]["text"] for t in tasks] == texts
    return tasks


def retrieve_predictions(session: Session) -> None:
    """The Data Manager's "Retrieve predictions" on every task of the project."""
    session.call(
        "POST",
        "/api/dm/actions",
        params={"id": "retrieve_tasks_predictions", "project": session.project},
        json={"selectedItems": {"all": True, "excluded": []}},
    )


def test_label_studio_sends_annotations_and_gets_a_retrained_model(tmp_path, tiny_pipeline):
    serve = ("--retrain-every", "5", "--retrain-epochs", "1", "--retrain-margin", "1")
    with label_studio(tmp_path, tiny_pipeline, *serve) as session:
        call, backend = session.call, session.backend
        texts = [text for text, _, _ in TRAIN]
        tasks = import_tasks(session, texts)
        retrieve_predictions(session)
        predictions = call("GET", "/api/predictions", params={"task": tasks[0]["id"]})
        assert predictions and predictions[0]["model_version"] == "en_tiny-0.0.1"
        assert isinstance(predictions[0]["result"], list)
        # Scores for "sort by prediction score": one per task, one per entity region.
        every = call("GET", "/api/predictions")
        assert every and all(0.0 <= p["score"] <= 1.0 for p in every), every
        regions = [r for p in every for r in p["result"] if r["type"] == "labels"]
        assert regions and all(0.0 <= r["score"] <= 1.0 for r in regions), regions

        ids = []
        for task, (text, spans, label) in zip(tasks, TRAIN):
            created = call(
                "POST",
                f"/api/tasks/{task['id']}/annotations",
                json={"result": result_of(text, spans, label), "was_cancelled": False},
            )
            ids.append(created["id"])
        # One update and one deletion: six created, one changed, one gone.
        text, spans, _ = TRAIN[0]
        call(
            "PATCH",
            f"/api/annotations/{ids[0]}",
            json={"result": result_of(text, spans, "responsibilities")},
        )
        call("DELETE", f"/api/annotations/{ids[-1]}")
        assert len(session.journal.read_text(encoding="utf8").splitlines()) == 8

        deadline, health = time.monotonic() + 150, {}
        while time.monotonic() < deadline:
            health = httpx.get(f"{backend}/health").json()
            if health["training"]["last"] and health["training"]["state"] == "idle":
                break
            time.sleep(1)
        assert health["annotations"] == 5
        assert health["training"]["last"]["result"] == "swapped", health
        assert health["model_version"] == "en_tiny-0.0.1+ls1"

        retrieve_predictions(session)
        versions = {p["model_version"] for p in call("GET", "/api/predictions")}
        assert "en_tiny-0.0.1+ls1" in versions, versions


PROJECT_TASKS = 1000  # "Retrieve predictions" sends them all in one request
BURST = 500  # annotations submitted at once
SUBMITTERS = 16  # annotators submitting at the same time


def test_label_studio_predicts_a_large_project_and_keeps_a_burst_of_annotations(
    tmp_path, tiny_pipeline
):
    with label_studio(tmp_path, tiny_pipeline, "--max-texts", "64") as session:
        call = session.call
        texts = [f"{TRAIN[i % len(TRAIN)][0]} ({i})" for i in range(PROJECT_TASKS)]
        tasks = import_tasks(session, texts)
        retrieve_predictions(session)  # one request with the 1,000 tasks
        predictions = call("GET", "/api/predictions", params={"project": session.project})
        by_task = Counter(p["task"] for p in predictions)
        assert sorted(by_task) == [t["id"] for t in tasks] and set(by_task.values()) == {1}
        assert {p["model_version"] for p in predictions} == {"en_tiny-0.0.1"}

        def submit(i: int) -> int:
            text, spans, label = TRAIN[i % len(TRAIN)]  # the task's text less its " (i)"
            created = call(
                "POST",
                f"/api/tasks/{tasks[i]['id']}/annotations",
                json={"result": result_of(text, spans, label), "was_cancelled": False},
            )
            return int(created["id"])

        with ThreadPoolExecutor(max_workers=SUBMITTERS) as pool:
            ids = list(pool.map(submit, range(BURST)))
        lines = [json.loads(line) for line in session.journal.read_text().splitlines()]
        stored = Counter(item["annotation"]["id"] for line in lines for item in line["put"])
        assert sorted(stored) == sorted(ids) and set(stored.values()) == {1}
        health = httpx.get(f"{session.backend}/health").json()
        assert health["annotations"] == BURST and health["refused"]["count"] == 0


# Unlabelled tasks for the uncertainty test: job-posting sentences the tiny model scores apart.
POOL = [
    "Experience with Python and Docker is a plus.",
    "You will review pull requests every week.",
    "We offer a yearly training budget.",
    "SQL and Excel are required for this role.",
    "Our team works from Berlin and Lisbon.",
    "Free gym membership and lunch on Fridays.",
    "You will design data pipelines in Python.",
    "A degree in statistics is required.",
    "Flexible hours and remote days.",
    "Maintain the services that run our Python APIs.",
    "Knowledge of Kubernetes is an advantage.",
    "Report to the head of engineering.",
]


def test_after_a_retraining_label_studio_serves_the_least_certain_task_first(
    tmp_path, tiny_pipeline
):
    serve = ("--retrain-every", "5", "--retrain-epochs", "1", "--retrain-margin", "1")
    # One epoch leaves the tiny model's categories even (the margin rule would call every task
    # equally unsure); least-confident ranks them by their lowest entity score.
    serve += ("--uncertainty", "least-confident", "--uncertainty-sampling")
    with label_studio(tmp_path, tiny_pipeline, *serve, push=True) as s:
        call, backend, pid = s.call, s.backend, s.project
        tasks = import_tasks(s, [text for text, _, _ in TRAIN[:5]] + POOL)
        for task, (text, spans, label) in zip(tasks, TRAIN[:5]):
            call(
                "POST",
                f"/api/tasks/{task['id']}/annotations",
                json={"result": result_of(text, spans, label), "was_cancelled": False},
            )
        deadline, health = time.monotonic() + 240, {}
        while time.monotonic() < deadline:
            health = httpx.get(f"{backend}/health").json()
            last_push = health["push"]["last"] or {}
            if health["push"]["state"] == "failed":
                break
            if (
                health["training"]["state"] == "idle"
                and health["training"]["last"]
                and health["push"]["state"] == "idle"
                and last_push.get("model_version") == health["model_version"]
            ):
                break
            time.sleep(1)
        assert health["training"]["last"]["result"] == "swapped", health
        version = health["model_version"]
        assert version == "en_tiny-0.0.1+ls1" and health["push"]["last"]["tasks"] == {
            str(pid): len(POOL)
        }, health

        # Every unlabelled task has one prediction of the new model, with its task score.
        unlabelled = {t["id"] for t in tasks[5:]}
        fresh = [
            p
            for p in call("GET", "/api/predictions", params={"project": pid})
            if p["model_version"] == version
        ]
        assert sorted(p["task"] for p in fresh) == sorted(unlabelled)
        score = {p["task"]: p["score"] for p in fresh}
        assert all(0.0 <= value <= 1.0 for value in score.values())
        assert len(set(score.values())) > 1, "the test needs tasks the model scores apart"
        project = call("GET", f"/api/projects/{pid}")
        assert project["model_version"] == version
        assert project["sampling"] == "Uncertainty sampling"

        # The Data Manager sorted by prediction score lists them in the backend's order.
        query = json.dumps({"ordering": ["tasks:predictions_score"]})
        listed = call(
            "GET", "/api/tasks", params={"project": pid, "page_size": 100, "query": query}
        )
        listed = listed["tasks"] if isinstance(listed, dict) else listed
        order = [t["id"] for t in listed if t["id"] in unlabelled]
        assert [score[i] for i in order] == sorted(score.values())

        # Label Studio's labelling stream serves the least certain task next.
        following = call("GET", f"/api/projects/{pid}/next")
        assert score[following["id"]] == min(score.values()), (following["id"], score)

        # A Personal Access Token (Label Studio 1.20+) works as well as the legacy token.
        personal = call("POST", "/api/token/")["token"]
        api = LabelStudioApi(s.studio, personal)
        assert api.personal and api.project(pid)["model_version"] == version
        assert len(api.unlabelled_tasks(pid)) == len(POOL)
        with pytest.raises(RuntimeError, match="refused the Personal Access Token"):
            LabelStudioApi(s.studio, personal[:-4] + "abcd").project(pid)


def test_a_push_covers_every_page_of_a_large_project_once(tmp_path, tiny_pipeline, predictor):
    """The push itself, run here against the real Label Studio: 1,000 unlabelled tasks (two
    pages of its task list) get one prediction each, and a second push adds none."""
    with label_studio(tmp_path, tiny_pipeline) as session:
        call, pid = session.call, session.project
        texts = [f"{TRAIN[i % len(TRAIN)][0]} ({i})" for i in range(PROJECT_TASKS)]
        tasks = import_tasks(session, texts)
        push = PredictionPush(
            PushSettings(url=session.studio, token=TOKEN, projects=(pid,)),
            predictor=lambda: predictor,
            predict=lambda served, batch: predict_texts(served, batch, parse_scores=True),
        )
        push.push_now()
        assert push.health()["state"] == "idle", push.health()
        assert push.health()["last"]["tasks"] == {pid: PROJECT_TASKS}
        push.push_now()  # every task has its prediction of this model already
        assert push.health()["last"]["tasks"] == {pid: 0}
        predictions = call("GET", "/api/predictions", params={"project": pid})
        by_task = Counter(p["task"] for p in predictions)
        assert sorted(by_task) == [t["id"] for t in tasks] and set(by_task.values()) == {1}
        assert {p["model_version"] for p in predictions} == {predictor.version}
        assert call("GET", f"/api/projects/{pid}")["model_version"] == predictor.version


def test_a_cold_start_predicts_from_patterns_and_names_until_a_retraining_replaces_it(
    tmp_path, tiny_transformer
):
    """serve --cold-start: Label Studio gets the cold-start model's predictions on every task
    (pattern entities, zero-shot categories, a task score) and serves the least certain first;
    annotations then train the real pipeline, which is swapped in and pushed in turn."""
    patterns = tmp_path / "patterns.jsonl"
    patterns.write_text(
        '{"label": "SKILL", "pattern": "Python"}\n{"label": "SKILL", "pattern": "SQL"}\n',
        encoding="utf8",
    )
    serve = ("--cold-start", "--labels", "SKILL", "--patterns", str(patterns))
    serve += ("--categories", "requirements=skills the candidate must have")
    serve += ("--categories", "responsibilities=the work the candidate will do")
    serve += ("--categories", "benefits=what the employer offers: leave, lunch, money")
    serve += ("--transformer", str(tiny_transformer), "--uncertainty-sampling")
    serve += ("--retrain-every", "5", "--retrain-epochs", "1", "--retrain-margin", "1")
    with label_studio(tmp_path, None, *serve, push=True) as s:
        call, backend, pid = s.call, s.backend, s.project
        tasks = import_tasks(s, [text for text, _, _ in TRAIN[:5]] + POOL)

        def pushed(version: str, tasks: int) -> dict:
            deadline, health = time.monotonic() + 240, {}
            while time.monotonic() < deadline:
                health = httpx.get(f"{backend}/health").json()
                last = health["push"]["last"] or {}
                if health["push"]["state"] == "failed":
                    break
                if (
                    health["push"]["state"] == "idle"
                    and last.get("model_version") == version
                    and last["tasks"] == {str(pid): tasks}
                ):
                    return health
                time.sleep(1)
            raise AssertionError(f"no push of {version} to {tasks} tasks: {health}")

        # the backend connected before the import: the import's webhook starts a push
        cold = "en_cold_start-0.0.0"
        pushed(cold, len(tasks))
        predictions = call("GET", "/api/predictions", params={"project": pid})
        assert sorted(p["task"] for p in predictions) == sorted(t["id"] for t in tasks)
        assert {p["model_version"] for p in predictions} == {cold}
        by_task = {p["task"]: p for p in predictions}
        first = by_task[tasks[0]["id"]]  # "Python and SQL are required."
        spans = [r["value"]["text"] for r in first["result"] if r["type"] == "labels"]
        assert spans == ["Python", "SQL"]
        assert any(r["type"] == "choices" for r in first["result"])
        score = {task: p["score"] for task, p in by_task.items()}
        assert len(set(score.values())) > 1
        assert call("GET", f"/api/projects/{pid}")["model_version"] == cold
        following = call("GET", f"/api/projects/{pid}/next")
        assert score[following["id"]] == min(score.values())

        for task, (text, spans, label) in zip(tasks, TRAIN[:5]):
            call(
                "POST",
                f"/api/tasks/{task['id']}/annotations",
                json={"result": result_of(text, spans, label), "was_cancelled": False},
            )
        health = pushed("en_pipeline-0.0.0+ls1", len(POOL))
        assert health["training"]["last"]["result"] == "swapped", health
        assert health["model_version"] == "en_pipeline-0.0.0+ls1"
        fresh = [
            p
            for p in call("GET", "/api/predictions", params={"project": pid})
            if p["model_version"] == "en_pipeline-0.0.0+ls1"
        ]
        assert sorted(p["task"] for p in fresh) == sorted(t["id"] for t in tasks[5:])
