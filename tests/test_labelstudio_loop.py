"""serve --data-dir: the annotation journal (updates, deletions, replay, a torn last line, a
SIGKILL), malformed events, the training queue, a retraining that swaps the model in, and one that
adds --retrain-with data to annotations of entities only."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

import httpx
from fastapi.testclient import TestClient

from scripts.common.errors import UserError
from scripts.evaluation.comparison import format_table, notes
from scripts.inference.annotation_check import (
    BAD_SPAN,
    NO_TEXT,
    TOO_LONG,
    UNREADABLE_RESULT,
    Rules,
    Tally,
)
from scripts.inference.annotation_store import (
    JOURNAL,
    TORN,
    AnnotationStore,
    BadEvent,
    parse_event,
)
from scripts.inference.batching import Limits
from scripts.inference.predict import load_predictor
from scripts.inference.retraining import (
    LivePredictor,
    Outcome,
    RetrainingLoop,
    RetrainSettings,
    add_data,
    check_data_files,
    file_list,
    served_model,
    split_tasks,
    trainable_tasks,
    verdict_rows,
)
from scripts.inference.server import NOT_STORED, create_app
from tests.helpers import PROJECT_ROOT, TRAIN

CATEGORIES = ("requirements", "responsibilities", "benefits")


def annotation(annotation_id: int, task_id: int, *, text: str, spans=(), label=None) -> dict:
    result = [
        {
            "id": f"s{i}",
            "from_name": "label",
            "to_name": "text",
            "type": "labels",
            "value": {"start": s, "end": e, "text": text[s:e], "labels": [name]},
        }
        for i, (s, e, name) in enumerate(spans)
    ]
    if label:
        result.append(
            {
                "id": "c",
                "from_name": "category",
                "to_name": "text",
                "type": "choices",
                "value": {"choices": [label]},
            }
        )
    return {"id": annotation_id, "task": task_id, "result": result, "was_cancelled": False}


def created(annotation_id: int, task_id: int, *, action: str = "ANNOTATION_CREATED", **kw) -> dict:
    text, spans, label = TRAIN[(task_id - 1) % len(TRAIN)]
    return {
        "action": action,
        "annotation": annotation(annotation_id, task_id, text=text, spans=spans, label=label),
        "task": {"id": task_id, "data": {"text": text}, "project": 1},
        "project": {"id": 1, "title": "jobs"},
        **kw,
    }


def store_events(directory: Path, *events: dict) -> AnnotationStore:
    store = AnnotationStore.open(directory)
    for event in events:
        change = parse_event(event)
        assert change is not None
        store.apply(change)
    return store


def test_updates_replace_deletions_remove_and_a_resend_writes_nothing(tmp_path):
    store = store_events(tmp_path, created(1, 1), created(2, 2), created(3, 3))
    updated = created(2, 2, action="ANNOTATION_UPDATED")
    updated["annotation"]["result"] = []
    store.apply(parse_event(updated))
    store.apply(parse_event({"action": "ANNOTATIONS_DELETED", "annotations": [{"id": 3}]}))
    lines = (tmp_path / JOURNAL).read_text(encoding="utf8").splitlines()
    assert store.apply(parse_event(created(1, 1))) == 0  # Label Studio resent it: no new line
    assert (tmp_path / JOURNAL).read_text(encoding="utf8").splitlines() == lines
    assert (
        sorted(store.annotations) == [1, 2] and store.annotations[2]["annotation"]["result"] == []
    )
    assert store.changed_since(0) == 4 and store.changed_since(3) == 1
    replayed = AnnotationStore.open(tmp_path)
    assert replayed.annotations == store.annotations and replayed.seq == store.seq == 5
    assert replayed.changed_since(3) == 1  # counted once, whether replayed or not


def test_bulk_created_and_an_update_without_task_data_use_what_was_sent(tmp_path):
    bulk = {
        "action": "ANNOTATIONS_CREATED",
        "annotation": [created(i, i)["annotation"] for i in (1, 2)],
        "task": [created(i, i)["task"] for i in (1, 2)],
    }
    store = store_events(tmp_path, bulk)
    update = created(1, 1, action="ANNOTATION_UPDATED")
    del update["task"]
    update["annotation"]["result"] = []
    store.apply(parse_event(update))
    assert store.annotations[1]["task"]["data"]["text"] == TRAIN[0][0]
    exported = store.export()
    assert [t["id"] for t in exported] == [1, 2] and exported[0]["annotations"][0]["result"] == []


def test_a_torn_last_line_is_set_aside_with_a_warning_and_nothing_else_is_lost(tmp_path):
    store_events(tmp_path, created(1, 1), created(2, 2))
    with (tmp_path / JOURNAL).open("ab") as journal:
        journal.write(b'{"seq": 3, "event": "ANNOTATION_CREATED", "put": [{"annot')
    store = AnnotationStore.open(tmp_path)
    assert sorted(store.annotations) == [1, 2]
    assert "cut off by a crash" in store.warnings[0]
    assert (tmp_path / TORN).read_bytes().startswith(b'{"seq": 3')
    store.apply(parse_event(created(3, 3)))
    assert sorted(AnnotationStore.open(tmp_path).annotations) == [1, 2, 3]


def test_a_damaged_line_before_the_end_stops_with_its_line_number(tmp_path):
    store_events(tmp_path, created(1, 1))
    with (tmp_path / JOURNAL).open("ab") as journal:
        journal.write(b"garbage\n")
    store_events(tmp_path / "other", created(2, 2))
    with (tmp_path / JOURNAL).open("ab") as journal:
        journal.write((tmp_path / "other" / JOURNAL).read_bytes())
    with pytest.raises(UserError, match=rf"{JOURNAL}:2: not a journal line"):
        AnnotationStore.open(tmp_path)


@pytest.mark.parametrize(
    "event, fragment",
    [
        ([1, 2], "not an object"),
        ({"annotation": {}}, "no 'action'"),
        ({"action": "ANNOTATION_CREATED"}, "'annotation' is missing"),
        (
            {"action": "ANNOTATION_CREATED", "annotation": {"id": "x", "task": 1, "result": []}},
            'annotation id is "x", not a Label Studio id',
        ),
        (
            {"action": "ANNOTATION_CREATED", "annotation": {"id": 1, "task": 1, "result": {}}},
            "'result' is not a list",
        ),
        (
            {"action": "ANNOTATION_UPDATED", "annotation": {"id": 1, "task": 1, "result": []}},
            "no task data for task 1",
        ),
        ({"action": "ANNOTATIONS_DELETED", "annotations": 3}, "'annotations' is missing"),
        ({"action": "ANNOTATIONS_CREATED", "annotation": [], "task": [{"id": 1}]}, "'data'"),
    ],
)
def test_malformed_events_are_one_line_errors(tmp_path, event, fragment):
    store = AnnotationStore.open(tmp_path)
    with pytest.raises(BadEvent) as caught:
        change = parse_event(event)
        store.apply(change)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


def test_the_held_out_slice_is_every_fifth_task_by_id():
    tasks = [{"id": i, "annotations": []} for i in range(1, 12)]
    train, test = split_tasks(tasks, fixed_test=False)
    assert [t["id"] for t in test] == [5, 10] and len(train) == 9
    assert [t["id"] for t in split_tasks(tasks[:3], fixed_test=False)[1]] == [3]
    assert split_tasks(tasks, fixed_test=True) == (tasks, [])


def test_one_training_at_a_time_and_at_most_one_queued(tmp_path, predictor, tiny_pipeline):
    async def scenario() -> tuple[list[str], list[int]]:
        loop = RetrainingLoop(
            live=LivePredictor(predictor, source=str(tiny_pipeline)),
            data_dir=tmp_path,
            settings=RetrainSettings(every=2),
            load=lambda path: predictor,
        )
        release, runs = asyncio.Event(), []

        async def fake_train(upto: int) -> Outcome:
            runs.append(upto)
            await release.wait()
            return Outcome("failed", "stopped", "")

        loop._train = fake_train  # type: ignore[method-assign]
        answers = [(await loop.webhook(created(1, 1)))["training"]]
        answers.append((await loop.webhook(created(2, 2)))["training"])  # 2 changes: starts
        for i in (3, 4, 5, 6):  # while training: due again at 4, then one run stays queued
            answers.append((await loop.webhook(created(i, i)))["training"])
        assert loop.health()["training"]["state"] == "training"
        release.set()
        while loop.training is not None or loop.queued:
            await asyncio.sleep(0.01)
        return answers, runs

    answers, runs = asyncio.run(scenario())
    assert answers == ["idle", "started", "training", "queued", "queued", "queued"]
    assert runs == [2, 6]  # the queued run sees every annotation stored meanwhile


def entities_only(event: dict) -> dict:
    result = event["annotation"]["result"]
    event["annotation"]["result"] = [r for r in result if r["type"] == "labels"]
    return event


def write_docs(path: Path, rows: list[tuple]) -> Path:
    """rows: (text, [(start, end, label)], category or None, extra cats) as a .spacy file."""
    nlp, docs = spacy.blank("en"), []
    for text, spans, label, *extra in rows:
        doc = nlp.make_doc(text)
        doc.set_ents([doc.char_span(s, e, label=name) for s, e, name in spans], default="outside")
        if label is not None:
            doc.cats = {name: float(name == label) for name in CATEGORIES}
            doc.cats.update(*extra)
        docs.append(doc)
    DocBin(docs=docs).to_disk(path)
    return path


def read_docs(path: Path) -> list:
    return list(DocBin().from_disk(path).get_docs(spacy.blank("en").vocab))


def test_retrain_with_data_yields_to_annotated_and_held_out_texts(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    annotated, dev_task, held = TRAIN[0], TRAIN[1], TRAIN[4]
    write_docs(corpus / "train.spacy", [(annotated[0], annotated[1], None)])
    write_docs(corpus / "dev.spacy", [dev_task])
    write_docs(corpus / "test.spacy", [held])
    new = [(f"Python task {i} daily.", [(0, 6, "SKILL")], "responsibilities") for i in range(19)]
    tool = ("Docker and SQL.", [(0, 6, "TOOL"), (11, 14, "SKILL")], "requirements", {"other": 1.0})
    extra = write_docs(tmp_path / "with.spacy", [(annotated[0], [], "benefits"), held, tool, *new])
    lines: list[str] = []
    settings = RetrainSettings(with_data=(extra,))
    add_data(
        corpus,
        settings=settings,
        lang="en",
        ent_labels={"SKILL"},
        cat_labels=set(CATEGORIES),
        echo=lines.append,
    )
    train, dev = read_docs(corpus / "train.spacy"), read_docs(corpus / "dev.spacy")
    texts = [doc.text for doc in train + dev]
    assert texts.count(annotated[0]) == 1 and held[0] not in texts  # the annotation wins
    assert [(e.text, e.label_) for e in train[0].ents] == [("Python", "SKILL"), ("SQL", "SKILL")]
    assert not train[0].cats  # as annotated: entities only
    assert len(train) == 1 + 18 and len(dev) == 1 + 2  # a tenth of the 20 others to dev
    assert dev[0].text == dev_task[0]
    docker = next(doc for doc in train + dev if doc.text.startswith("Docker"))
    assert [t.ent_iob_ for t in docker] == ["", "O", "B", "O"]  # TOOL unknown: missing, not O
    assert "other" not in docker.cats and docker.cats["requirements"] == 1.0
    assert "2 left out as annotated or held out, 2 labels the model lacks dropped" in lines[0]

    # --retrain-dev: the given data picks model-best (never a held-out text); the annotations'
    # dev share trains
    write_docs(corpus / "train.spacy", [(annotated[0], annotated[1], None)])
    write_docs(corpus / "dev.spacy", [dev_task])
    given_dev = write_docs(tmp_path / "dev.spacy", [held, TRAIN[5]])
    settings = RetrainSettings(with_data=(extra,), dev=(given_dev,))
    add_data(corpus, settings=settings, lang="en", ent_labels=set(), cat_labels=set(), echo=print)
    train, dev = read_docs(corpus / "train.spacy"), read_docs(corpus / "dev.spacy")
    assert [doc.text for doc in dev] == [TRAIN[5][0]]
    assert len(train) == 2 + 20 and dev_task[0] in {doc.text for doc in train}


def test_retrain_with_and_dev_take_spacy_files_other_than_the_held_out_one(tmp_path):
    gold = write_docs(tmp_path / "gold.spacy", [TRAIN[0]])
    assert file_list(["a.spacy,b.spacy", " c.spacy"]) == tuple(
        Path(p) for p in ("a.spacy", "b.spacy", "c.spacy")
    )
    for settings, fragment in (
        (RetrainSettings(with_data=(tmp_path / "train.json",)), "not a .spacy file"),
        (RetrainSettings(with_data=(tmp_path / "none.spacy",)), "no such file"),
        (RetrainSettings(dev=(gold,), test=gold), "--retrain-dev"),
    ):
        with pytest.raises(UserError, match=fragment):
            check_data_files(settings, with_option="--retrain-with", dev_option="--retrain-dev")


@pytest.fixture()
def make_studio(tmp_path, predictor, tiny_pipeline):
    """A TestClient over a server with a RetrainingLoop in tmp_path: make_studio(with_data=...);
    make_studio.loops holds the loops."""
    clients = []

    def make(**settings) -> TestClient:
        live = LivePredictor(predictor, source=str(tiny_pipeline))
        loop = RetrainingLoop(
            live=live,
            data_dir=tmp_path,
            settings=RetrainSettings(every=0, epochs=1, margin=1.0, **settings),
            load=lambda path: load_predictor(path, gpu_id="-1"),
        )
        make.loops.append(loop)  # type: ignore[attr-defined]
        clients.append(TestClient(create_app(live, retraining=loop)))
        return clients[-1].__enter__()

    make.loops = []  # type: ignore[attr-defined]
    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture()
def studio(make_studio):
    return make_studio()


def test_webhook_answers_422_for_malformed_events_and_200_for_unknown_ones(studio):
    bad = studio.post("/labelstudio/webhook", json={"action": "ANNOTATION_CREATED"})
    assert bad.status_code == 422 and "'annotation' is missing" in bad.json()["detail"]
    other = studio.post("/labelstudio/webhook", json={"action": "PROJECT_UPDATED", "project": {}})
    assert other.status_code == 200 and other.json()["status"].startswith("ignored")
    assert studio.post("/labelstudio/webhook", json=created(1, 1)).json()["stored"] == 1
    health = studio.get("/health").json()
    assert health["annotations"] == 1 and health["training"]["state"] == "idle"


def test_without_a_data_dir_the_routes_say_how_to_keep_annotations(predictor):
    with TestClient(create_app(predictor)) as client:
        for route in ("/labelstudio/webhook", "/labelstudio/train"):
            assert client.post(route, json=created(1, 1)).json() == {"status": NOT_STORED}
        assert "annotations" not in client.get("/health").json()


def wait_for_training(client: TestClient, *, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        health = client.get("/health").json()
        if health["training"]["state"] == "idle" and health["training"]["last"]:
            return health
        time.sleep(0.5)
    raise AssertionError(f"training did not finish: {health}")


def test_too_few_annotations_fail_with_the_reason_and_the_model_stays(studio):
    studio.post("/labelstudio/webhook", json=created(1, 1))
    assert (
        studio.post("/labelstudio/train", json={"annotations": []}).json()["training"] == "started"
    )
    health = wait_for_training(studio)
    assert health["training"]["last"]["result"] == "failed"
    assert "retraining needs at least 3" in health["training"]["last"]["reason"]
    assert health["model_version"] == "en_tiny-0.0.1"


@pytest.mark.slow
def test_retraining_swaps_in_a_new_model_version_that_a_restart_serves(studio, tmp_path):
    tasks = [
        {
            "id": i,
            "data": {"text": created(i, i)["task"]["data"]["text"]},
            "annotations": [created(10 + i, i)["annotation"]],
        }
        for i in range(1, 7)
    ]
    answer = studio.post("/labelstudio/train", json={"annotations": tasks, "project": "1.1"})
    assert answer.json() == {"status": "ok", "stored": 6, "training": "started"}
    health = wait_for_training(studio)
    assert health["training"]["last"]["result"] == "swapped", health["training"]["last"]
    assert (
        health["model_version"]
        == "en_tiny-0.0.1+ls1"
        == health["training"]["last"]["model_version"]
    )
    assert studio.post("/predict", json={"texts": ["Python"]}).json()["model_version"] == (
        "en_tiny-0.0.1+ls1"
    )
    assert (tmp_path / "runs/1/compare.txt").is_file()
    restarted = load_predictor(served_model(tmp_path, "unused"), gpu_id="-1")
    assert restarted.version == "en_tiny-0.0.1+ls1"


@pytest.mark.slow
def test_entities_only_fail_with_a_line_that_says_to_pass_retrain_with(make_studio):
    studio = make_studio()
    for i in range(1, 5):
        studio.post("/labelstudio/webhook", json=entities_only(created(i, i)))
    assert studio.post("/labelstudio/train", json={}).json()["training"] == "started"
    last = wait_for_training(studio)["training"]["last"]
    assert last["result"] == "failed" and "\n" not in last["reason"]
    assert "carry no categories" in last["reason"] and "pass --retrain-with" in last["reason"]


@pytest.mark.slow
def test_entities_only_train_with_the_retrain_with_data(make_studio, tmp_path):
    others = [
        ("Knowledge of Excel required.", [(13, 18, "SKILL")], "requirements"),
        ("You will write Python tools.", [(15, 21, "SKILL")], "responsibilities"),
        ("Health insurance for the family.", [], "benefits"),
    ]
    extra = write_docs(tmp_path / "train.spacy", [*TRAIN, *others])
    studio = make_studio(with_data=(extra,))
    for i in range(1, 7):
        studio.post("/labelstudio/webhook", json=entities_only(created(i, i)))
    assert studio.post("/labelstudio/train", json={}).json()["training"] == "started"
    health = wait_for_training(studio)
    assert health["training"]["last"]["result"] == "swapped", health["training"]["last"]
    assert health["model_version"] == "en_tiny-0.0.1+ls1"
    corpus = tmp_path / "runs/1/corpus"
    train = read_docs(corpus / "train.spacy") + read_docs(corpus / "dev.spacy")
    with_cats = sorted(doc.text for doc in train if doc.cats)
    assert len(train) == 5 + 3 and with_cats == sorted(text for text, _, _ in others)
    (held,) = read_docs(corpus / "test.spacy")  # annotations only, as no entities: O, not missing
    assert held.text == TRAIN[4][0] and not held.cats and held.has_annotation("ENT_IOB")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(model: Path, data_dir: Path, port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "scripts.serve", str(model), "--port", str(port), "--gpu-id", "-1",
         "--data-dir", str(data_dir), "--retrain-every", "100"],
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health").is_success:
                return process
        except httpx.HTTPError:
            assert process.poll() is None, process.stderr.read().decode()[-2000:]
        time.sleep(0.3)
    process.kill()
    raise AssertionError("the server did not start")


@pytest.mark.slow
def test_a_server_killed_with_sigkill_restarts_with_every_answered_annotation(
    tmp_path, tiny_pipeline
):
    port = free_port()
    url = f"http://127.0.0.1:{port}/labelstudio/webhook"
    server = start_server(tiny_pipeline, tmp_path, port)
    try:
        for i in range(1, 6):
            assert httpx.post(url, json=created(i, i)).status_code == 200
        httpx.post(url, json={"action": "ANNOTATIONS_DELETED", "annotations": [{"id": 2}]})
        before = httpx.get(f"http://127.0.0.1:{port}/health").json()
    finally:
        os.kill(server.pid, signal.SIGKILL)
        server.wait()
    server = start_server(tiny_pipeline, tmp_path, port)
    try:
        after = httpx.get(f"http://127.0.0.1:{port}/health").json()
        assert httpx.post(url, json=created(1, 1)).json()["stored"] == 0  # nothing counted twice
    finally:
        server.terminate()
        server.wait()
    assert before["annotations"] == after["annotations"] == 4
    assert before["training"]["changed_since_last"] == after["training"]["changed_since_last"] == 5
    lines = (tmp_path / JOURNAL).read_text(encoding="utf8").splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [1, 2, 3, 4, 5, 6]


# ---- what the loop survives: annotations that cannot train, new labels, scale, a slow run ----

LABEL_CONFIG = """<View>
  <Labels name="label" toName="text"><Label value="SKILL"/><Label value="TOOL"/></Labels>
  <Text name="text" value="$text"/>
  <Choices name="category" toName="text" choice="single">
    <Choice value="requirements"/><Choice value="benefits"/>
  </Choices>
</View>"""


def send(client: TestClient, route: str, body) -> httpx.Response:
    """POST body as JSON with \\u escapes, as Label Studio sends it (a lone surrogate too)."""
    return client.post(
        route, content=json.dumps(body), headers={"content-type": "application/json"}
    )


def untrainable(change) -> dict:
    """An ANNOTATION_CREATED event for task 1 changed by `change(event)`."""
    event = created(1, 1, project={"id": 1, "label_config": LABEL_CONFIG})
    change(event)
    return event


def set_value(**value):
    return lambda event: event["annotation"]["result"][0]["value"].update(value)


def set_text(text):
    return lambda event: event["task"]["data"].update(text=text)


def add_result(result):
    return lambda event: event["annotation"]["result"].append(result)


@pytest.mark.parametrize(
    "change, fragment",
    [
        (set_value(start=0, end=500), "span [0, 500) SKILL is beyond the text (length 28)"),
        (set_value(start=3, end=3), "span [3, 3) SKILL is beyond the text (length 28) or empty"),
        (set_text(42), "the task's data holds no text (text: int)"),
        (set_text("Python " * 40), "280 characters, over --max-chars 200"),
        (set_text("Python\ud800 and SQL are required."), r"data.text: character 6 ('\ud800')"),
        (add_result({"type": "relation", "from_id": "s0", "to_id": "s1"}), "type 'relation'"),
        (
            add_result(
                {
                    "from_name": "mood",
                    "to_name": "text",
                    "type": "choices",
                    "value": {"choices": ["glad"]},
                }
            ),
            "result 3 comes from the control 'mood'",
        ),  # fmt: skip
        (
            lambda event: event["annotation"]["result"][-1]["value"].update(
                choices=["requirements", "benefits"]
            ),
            "2 categories chosen (benefits, requirements)",
        ),
    ],
)
def test_an_annotation_that_cannot_train_is_refused_in_one_line_and_not_stored(
    make_studio, tmp_path, change, fragment
):
    studio = make_studio(max_chars=200)
    answer = send(studio, "/labelstudio/webhook", untrainable(change))
    detail = answer.json()["detail"]
    assert answer.status_code == 422 and "\n" not in detail
    assert detail.startswith("ANNOTATION_CREATED: task 1, annotation 1: ") and fragment in detail
    assert not (tmp_path / JOURNAL).exists()
    health = studio.get("/health").json()
    assert health["annotations"] == 0 and health["refused"]["count"] == 1
    assert studio.post("/labelstudio/webhook", json=created(1, 1)).json()["stored"] == 1


def test_a_bulk_event_stores_what_can_train_and_names_what_cannot(studio):
    good, bad = created(1, 1), created(2, 2)
    bad["annotation"]["result"][0]["value"].update(start=0, end=900)
    answer = studio.post(
        "/labelstudio/webhook",
        json={
            "action": "ANNOTATIONS_CREATED",
            "annotation": [good["annotation"], bad["annotation"]],
            "task": [good["task"], bad["task"]],
        },
    )
    body = answer.json()
    assert answer.status_code == 422 and body["stored"] == 1 and len(body["refused"]) == 1
    assert body["detail"].startswith(
        "ANNOTATIONS_CREATED: 1 of 2 annotations not stored, the first: task 2, annotation 2: span"
    )
    assert studio.get("/health").json()["annotations"] == 1


HOSTILE = [
    ("/labelstudio/webhook", "just a string"),
    ("/labelstudio/webhook", {"action": "\ud800"}),
    ("/labelstudio/webhook", {"action": "ANNOTATION_CREATED", "annotation": {"id": "\u00b2"}}),
    ("/labelstudio/webhook", {"action": "ANNOTATIONS_DELETED", "annotations": [{"id": "\ud800"}]}),
    ("/labelstudio/webhook", {**created(1, 1), "task": {"id": "\ud800", "data": 1}}),
    ("/labelstudio/webhook", {**created(1, 1), "task": {"id": 1, "data": {"\ud800": "x"}}}),
    ("/labelstudio/webhook", {**created(1, 1), "project": {"label_config": 5}}),
    ("/labelstudio/webhook", {**created(1, 1), "project": {"label_config": "<View"}}),
    ("/labelstudio/webhook", {**created(1, 1), "project": {"label_config": "<View>\ud800"}}),
    (
        "/labelstudio/webhook",
        untrainable(set_value(start="a", end=[], labels=[{}])),
    ),
    ("/labelstudio/webhook", untrainable(set_value(start=1.5, end=10**30))),
    ("/labelstudio/webhook", untrainable(set_value(labels="SKILL"))),
    ("/labelstudio/webhook", untrainable(lambda e: e["annotation"].update(result=[1, None]))),
    ("/labelstudio/train", {"annotations": "x"}),
    ("/labelstudio/train", {"annotations": [1]}),
    ("/labelstudio/train", {"annotations": [], "label_config": ["x"]}),
    (
        "/labelstudio/train",
        {"annotations": [{"id": 1, "data": {"text": "\ud800"}, "annotations": [{"id": 2}]}]},
    ),
    ("/labelstudio/setup", {"schema": 5}),
    ("/labelstudio/setup", {"schema": "\ud800"}),
    ("/labelstudio/setup", {"schema": "<View><Text"}),
    ("/labelstudio/setup", [1]),
    ("/labelstudio/predict", {"tasks": "x"}),
    ("/labelstudio/predict", [{"tasks": []}]),
    ("/labelstudio/predict", {"tasks": [], "label_config": {"a": 1}}),
    (
        "/labelstudio/predict",
        {"tasks": [1, None, {"data": "x"}, {"id": "\ud800", "data": {"text": "\ud800"}}]},
    ),
]


def test_no_client_input_gives_a_500_or_a_traceback(studio, caplog):
    for route, body in HOSTILE:
        answer = send(studio, route, body)
        assert answer.status_code in (200, 422), (route, body, answer.text)
        if answer.status_code == 422:
            detail = answer.json()["detail"]
            assert isinstance(detail, list) or "\n" not in detail, detail
    assert not [r for r in caplog.records if r.exc_info or r.levelname == "ERROR"]


def test_records_in_a_journal_that_cannot_train_are_skipped_and_counted(tmp_path):
    long_text = created(3, 3)
    long_text["task"]["data"]["text"] = "Python " * 30
    beyond = created(4, 4)
    beyond["annotation"]["result"][0]["value"].update(start=0, end=500)
    number = created(5, 5)
    number["task"]["data"]["text"] = 42
    relation = created(6, 6)
    relation["annotation"]["result"].append({"type": "relation", "from_id": "a", "to_id": "b"})
    store = store_events(tmp_path, created(1, 1), created(2, 2), long_text, number, beyond)
    store.apply(parse_event(relation))  # journals written before the check hold such records
    skipped = Tally()
    kept = trainable_tasks(store.export(), rules=Rules(lang="en", max_chars=200), skipped=skipped)
    assert [task["id"] for task in kept] == [1, 2]
    assert skipped.as_dict()["reasons"] == {
        TOO_LONG: 1, NO_TEXT: 1, BAD_SPAN: 1, UNREADABLE_RESULT: 1
    }  # fmt: skip
    assert skipped.count == 4
    assert "task 4, annotation 4: span [0, 500) SKILL is beyond" in " ".join(skipped.examples)


def metrics(f: float, per_label: dict, unknown: dict | None = None) -> dict:
    return {
        "format": 1,
        "ents": {
            "p": f, "r": f, "f": f,
            "per_label": {label: {"p": v, "r": v, "f": v} for label, v in per_label.items()},
            "unknown_labels": unknown or {},
        },
    }  # fmt: skip


def test_a_label_only_the_candidate_has_is_new_not_worse():
    served = metrics(0.8, {"SKILL": 0.8}, unknown={"TOOL": 3})
    candidate = metrics(0.5, {"SKILL": 0.8, "TOOL": 0.2})  # scored on TOOL too
    known = metrics(0.8, {"SKILL": 0.8})  # on the labels the served model has
    unfair = verdict_rows(served=served, candidate=candidate, known=None, margin=0.01)
    assert [r.figure for r in unfair if r.worse] == ["ents.p", "ents.r", "ents.f"]
    rows = verdict_rows(served=served, candidate=candidate, known=known, margin=0.01)
    assert not any(row.worse for row in rows)
    assert [(r.figure, r.a, r.b) for r in rows if r.new] == [("ents.TOOL.f", None, 0.2)]
    assert "new label" in format_table(rows, margin=0.01)
    assert any("TOOL" in note for note in notes(a=served, b=candidate))


TOOL_TASKS = [
    ("Python and SQL are required.", [(0, 6, "TOOL"), (11, 14, "SKILL")], "requirements"),
    ("You will maintain our Python services.", [(22, 28, "TOOL")], "responsibilities"),
    ("We offer 30 days of paid leave.", [], "benefits"),
    ("Experience with SQL and Excel is a plus.", [(16, 19, "SKILL"), (24, 29, "TOOL")], "perks"),
    ("Build dashboards in Excel for the sales team.", [(20, 25, "TOOL")], "responsibilities"),
    ("Free lunch and a gym budget.", [], "perks"),
]


def test_a_slow_run_is_stopped_then_one_learns_new_labels_and_skips_bad_records(
    make_studio, tmp_path
):
    beyond, number = created(101, 1), created(102, 7)
    beyond["annotation"]["result"][0]["value"].update(start=0, end=500)
    number["task"]["data"]["text"] = 7
    store_events(tmp_path, beyond, number)  # in the journal from before the check
    studio = make_studio(timeout=0.5)
    loop = make_studio.loops[-1]
    tasks = [
        {
            "id": i,
            "data": {"text": text},
            "annotations": [annotation(10 + i, i, text=text, spans=spans, label=label)],
        }
        for i, (text, spans, label) in enumerate(TOOL_TASKS, 1)
    ]
    assert studio.post("/labelstudio/train", json={"annotations": tasks}).json()["stored"] == 6
    stopped = wait_for_training(studio)
    assert stopped["training"]["last"]["result"] == "failed"
    assert "--retrain-timeout 0.5 s" in stopped["training"]["last"]["reason"]
    assert stopped["model_version"] == "en_tiny-0.0.1"
    assert json.loads((tmp_path / "runs/1/result.json").read_text())["result"] == "failed"
    assert studio.post("/predict", json={"texts": ["Python"]}).status_code == 200

    loop.settings = replace(loop.settings, timeout=600)
    assert studio.post("/labelstudio/train", json={}).json()["training"] == "started"
    last = wait_for_training(studio)["training"]["last"]
    assert last["result"] == "swapped", last
    assert (
        last["labels_added"] == ["TOOL", "perks"] and "labels added: TOOL, perks" in last["reason"]
    )
    assert last["skipped"]["count"] == 2
    assert last["skipped"]["reasons"] == {BAD_SPAN: 1, NO_TEXT: 1}
    result = json.loads((tmp_path / "runs/2/result.json").read_text())
    assert result["skipped"] == last["skipped"] and result["labels_added"] == ["TOOL", "perks"]
    swapped = load_predictor(str(tmp_path / "runs/2/model-best"), gpu_id="-1")
    assert "TOOL" in swapped.ent_labels and "perks" in swapped.cat_labels
    assert "ents.TOOL.f" in (tmp_path / "runs/2/compare.txt").read_text()
    assert 'value="TOOL"' in studio.get("/labelstudio/config").text


class CountingNlp:
    """A pipeline that records how many texts each nlp.pipe call gets."""

    def __init__(self, nlp) -> None:
        self.nlp, self.calls = nlp, []

    def pipe(self, texts, **options):
        texts = list(texts)
        self.calls.append(len(texts))
        return self.nlp.pipe(texts, **options)

    def __getattr__(self, name):
        return getattr(self.nlp, name)


def test_label_studio_predict_takes_a_thousand_tasks_in_batches(predictor):
    counting = CountingNlp(predictor.nlp)
    texts = [TRAIN[i % len(TRAIN)][0] for i in range(1000)]
    texts[10], texts[20] = "Python " * 30, "Python\ud800"  # over --max-chars, not Unicode
    tasks = [{"id": i, "data": {"text": text}} for i, text in enumerate(texts)]
    app = create_app(replace(predictor, nlp=counting), limits=Limits(max_texts=64, max_chars=200))
    with TestClient(app) as client:
        answer = send(client, "/labelstudio/predict", {"tasks": tasks, "label_config": None})
    results = answer.json()["results"]
    assert answer.status_code == 200 and len(results) == 1000
    assert max(counting.calls) <= 64 and sum(counting.calls) == 998
    assert results[10]["result"] == [] == results[20]["result"]
    spans = [
        (i, item["value"]) for i, r in enumerate(results) for item in r["result"]
        if item["type"] == "labels"
    ]  # fmt: skip
    assert spans and all(texts[i][v["start"] : v["end"]] == v["text"] for i, v in spans)
    assert all(r["model_version"] == "en_tiny-0.0.1" for r in results)


def test_a_burst_of_500_concurrent_annotations_stores_each_once(tmp_path, predictor, tiny_pipeline):
    live = LivePredictor(predictor, source=str(tiny_pipeline))
    loop = RetrainingLoop(
        live=live,
        data_dir=tmp_path,
        settings=RetrainSettings(),
        load=lambda path: predictor,
    )
    app = create_app(live, retraining=loop)

    async def burst() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ls") as client:
            answers = await asyncio.gather(
                *(client.post("/labelstudio/webhook", json=created(i, i)) for i in range(1, 501))
            )
        return [answer.status_code for answer in answers]

    assert asyncio.run(burst()) == [200] * 500
    lines = [json.loads(line) for line in (tmp_path / JOURNAL).read_text().splitlines()]
    ids = [item["annotation"]["id"] for line in lines for item in line["put"]]
    assert sorted(ids) == list(range(1, 501))
    assert len(AnnotationStore.open(tmp_path).annotations) == 500
