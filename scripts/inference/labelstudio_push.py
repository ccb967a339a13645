"""Fresh predictions in Label Studio after every swap, so that it can put the least certain task
first. Given Label Studio's URL and an API token (`serve --label-studio-url URL
--label-studio-token-env NAME`), the backend, at start-up and after each retraining swaps a model
in, predicts every unlabelled task of each project it serves with the served model and imports the
predictions through Label Studio's API:

    POST  /api/projects/{id}/import/predictions   [{"task", "model_version", "result", "score"}]
    PATCH /api/projects/{id}                       {"model_version"[, "sampling"]}

A prediction's `score` is the task's certainty, 1 - its uncertainty
(scripts/scoring/uncertainty.py), so sorting the Data Manager by prediction score, ascending, lists
the tasks the model is least sure of first. Once every task has its prediction, the project's model
version is set to the served one: Label Studio's own ordering (and its uncertainty sampling, which
serves the task with the lowest score among the predictions of the project's model version) then
uses them. With `--uncertainty-sampling` the project's sampling is set to "Uncertainty sampling"
through the API (its settings screen offers the mode only in the Enterprise edition).

The projects: those named by --label-studio-project, and each project Label Studio connects
(/setup) or sends annotations from. The work runs in one background thread, a batch of tasks at a
time, taking turns with /predict; a swap during a push starts it again for the new model.
Progress and the last push are in /health under "push".
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Optional

from scripts.common.errors import one_line
from scripts.inference.predict import (
    Prediction,
    Predictor,
    labelstudio_prediction,
    parse_label_config,
)

log = logging.getLogger("scripts.serve")

UNCERTAINTY_SAMPLING = "Uncertainty sampling"
PAGE_SIZE = 500  # tasks per page of Label Studio's task list
TIMEOUT_S = 60.0


@dataclass(frozen=True)
class PushSettings:
    url: str  # Label Studio, e.g. http://localhost:8080
    token: str  # an API token (Label Studio: Account & Settings, Access Token)
    projects: tuple[int, ...] = ()  # pushed at start-up; more join as Label Studio calls
    batch: int = 64  # tasks predicted and imported at a time
    uncertainty_sampling: bool = False  # also set the projects' sampling to uncertainty
    max_chars: int = 0  # longer texts get no prediction (the server's --max-chars); 0: no limit


class LabelStudioApi:
    """The few calls of Label Studio's REST API the push needs. The token: a Personal Access Token
    (Label Studio 1.20 and later; a JWT, exchanged at /api/token/refresh/ for short-lived access
    tokens, renewed when one expires) or a legacy API token (sent as `Authorization: Token`)."""

    def __init__(self, url: str, token: str) -> None:
        import httpx

        self.token = token
        self.personal = token.count(".") == 2  # header.payload.signature: a JWT
        self.client = httpx.Client(base_url=url.rstrip("/"), timeout=TIMEOUT_S)
        if not self.personal:
            self.client.headers["Authorization"] = f"Token {token}"

    def _renew_access(self) -> None:
        response = self.client.post("/api/token/refresh/", json={"refresh": self.token})
        if response.status_code >= 400:
            raise RuntimeError(
                f"Label Studio refused the Personal Access Token ({response.status_code} from "
                f"/api/token/refresh/): {response.text[:300]}; copy a new one from Account & "
                "Settings"
            )
        self.client.headers["Authorization"] = f"Bearer {response.json()['access']}"

    def call(self, method: str, path: str, **kw: Any) -> Any:
        if self.personal and "Authorization" not in self.client.headers:
            self._renew_access()
        response = self.client.request(method, path, **kw)
        if response.status_code == 401 and self.personal:  # the access token expired
            self._renew_access()
            response = self.client.request(method, path, **kw)
        if response.status_code >= 400:
            raise RuntimeError(
                f"Label Studio answered {response.status_code} to {method} {path}: "
                f"{response.text[:300]}"
            )
        return response.json() if response.content else None

    def project(self, project: int) -> dict[str, Any]:
        return self.call("GET", f"/api/projects/{project}")

    def unlabelled_tasks(self, project: int) -> list[dict[str, Any]]:
        """Every task of the project without an annotation, in Label Studio's order, with its
        predictions (fields=all: the default fields leave them and their versions out)."""
        found, page = [], 1
        while True:
            answer = self.call(
                "GET",
                "/api/tasks/",
                params={"project": project, "page": page, "page_size": PAGE_SIZE, "fields": "all"},
            )
            tasks = answer.get("tasks", []) if isinstance(answer, dict) else answer
            found += [
                t for t in tasks if not t.get("is_labeled") and not t.get("total_annotations")
            ]
            total = answer.get("total", 0) if isinstance(answer, dict) else len(tasks)
            if not tasks or page * PAGE_SIZE >= total:
                return found
            page += 1

    def import_predictions(self, project: int, predictions: list[dict[str, Any]]) -> None:
        self.call("POST", f"/api/projects/{project}/import/predictions", json=predictions)

    def set_project(self, project: int, **fields: Any) -> None:
        self.call("PATCH", f"/api/projects/{project}", json=fields)


class PredictionPush:
    """Pushes the served model's predictions of the unlabelled tasks to Label Studio in a
    background thread; start() (at start-up and after a swap) begins a push for the current
    model, stopping one under way."""

    def __init__(
        self,
        settings: PushSettings,
        *,
        predictor: Callable[[], Predictor],
        predict: Callable[[Predictor, list[str]], list[Prediction]],
        api: Optional[LabelStudioApi] = None,
    ) -> None:
        self.settings = settings
        self.predictor = predictor  # the one served now (a swap changes it)
        self.predict = predict  # with parse_scores, taking turns with /predict
        self.api = api or LabelStudioApi(settings.url, settings.token)
        self.projects: list[int] = list(dict.fromkeys(settings.projects))
        self.wanted = threading.Event()
        self.lock = threading.Lock()
        self.generation = 0
        self.status: dict[str, Any] = {"state": "idle", "projects": self.projects, "last": None}
        self.thread: Optional[threading.Thread] = None

    def start(self) -> None:
        """Push for the model served now (again, if a push is under way)."""
        with self.lock:
            self.generation += 1
        self.wanted.set()
        if self.thread is None:
            self.thread = threading.Thread(target=self._loop, name="labelstudio-push", daemon=True)
            self.thread.start()

    def push_now(self) -> None:
        """One push for the model served now, in this thread (what the background thread runs)."""
        self._push(self.generation)

    def add_project(self, project: Any, *, tasks_added: bool = False) -> None:
        """A project Label Studio called from ("3" or "3.1700000000" from /setup, or an id):
        pushed to from now on, and after the push under way if it is new, or if tasks_added
        (tasks were imported: those without a prediction of the served model get one)."""
        try:
            number = int(str(project).split(".")[0])
        except ValueError:
            return
        new = number not in self.projects
        if new:
            self.projects.append(number)
        if new or tasks_added:
            self.wanted.set()  # the same model: a push under way goes on, and one more follows
            if self.thread is None:
                self.start()

    def health(self) -> dict[str, Any]:
        return dict(self.status)

    def _loop(self) -> None:
        while True:
            self.wanted.wait()
            self.wanted.clear()
            with self.lock:
                generation = self.generation
            self._push(generation)

    def _stale(self, generation: int) -> bool:
        return generation != self.generation

    def _push(self, generation: int) -> None:
        predictor = self.predictor()
        started = time.monotonic()
        version = predictor.version
        self.status.update(state="pushing", model_version=version, done=0, total=0)
        pushed: dict[int, int] = {}
        try:
            for project in list(self.projects):
                count = self._push_project(project, predictor=predictor, generation=generation)
                if count is None:
                    return  # a newer model: start() has asked for another push
                pushed[project] = count
        except Exception as err:  # reported in /health; serving goes on
            log.warning("Label Studio push failed: %s", one_line(err))
            self.status.update(state="failed", error=one_line(err))
            return
        self.status.update(
            state="idle",
            error=None,
            last={
                "model_version": version,
                "tasks": pushed,
                "seconds": round(time.monotonic() - started, 1),
                "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            },
        )
        log.info("Label Studio: predictions of %s pushed (%s)", version, pushed)

    def _push_project(
        self, project: int, *, predictor: Predictor, generation: int
    ) -> Optional[int]:
        """Predict and import the project's unlabelled tasks that have no prediction of this
        model yet; set its model version (and sampling). The number of tasks predicted, or None
        when a newer model came meanwhile."""
        config = parse_label_config(self.api.project(project).get("label_config"))
        limit = self.settings.max_chars
        version = predictor.version
        readable = [
            task
            for task in self.api.unlabelled_tasks(project)
            if isinstance(text := task.get("data", {}).get(config.text_field), str)
            and text
            and (not limit or len(text) <= limit)
        ]
        # Pushed before (an earlier push, a restart): not again.
        tasks = [task for task in readable if version not in versions_of(task)]
        self.status["total"] = self.status.get("total", 0) + len(tasks)
        for start in range(0, len(tasks), self.settings.batch):
            if self._stale(generation):
                return None
            batch = tasks[start : start + self.settings.batch]
            texts = [task["data"][config.text_field] for task in batch]
            predictions = self.predict(predictor, texts)
            self.api.import_predictions(
                project,
                [
                    {
                        "task": task["id"],
                        **labelstudio_prediction(p, predictor=predictor, config=config),
                    }
                    for task, p in zip(batch, predictions)
                ],
            )
            self.status["done"] = self.status.get("done", 0) + len(batch)
        if self._stale(generation):
            return None
        if not readable:  # Label Studio takes a model version only where predictions carry it
            return 0
        fields: dict[str, Any] = {"model_version": version}
        if self.settings.uncertainty_sampling:
            fields["sampling"] = UNCERTAINTY_SAMPLING
        self.api.set_project(project, **fields)
        return len(tasks)


def versions_of(task: dict[str, Any]) -> set[str]:
    """The model versions of a task's predictions, from Label Studio's task list."""
    return {str(p.get("model_version")) for p in task.get("predictions") or [] if p}
