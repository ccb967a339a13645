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
from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

import httpx
from fastapi.testclient import TestClient

from scripts.common.errors import UserError
from scripts.inference.annotation_store import (
    JOURNAL,
    TORN,
    AnnotationStore,
    BadEvent,
    parse_event,
)
from scripts.inference.predict import load_predictor
from scripts.inference.retraining import (
    LivePredictor,
    Outcome,
    RetrainingLoop,
    RetrainSettings,
    add_data,
    check_data_files,
    file_list,
    keep_known_labels,
    served_model,
    split_tasks,
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


def test_the_held_out_slice_is_every_fifth_task_by_id_and_unknown_labels_are_dropped():
    tasks = [{"id": i, "annotations": []} for i in range(1, 12)]
    train, test = split_tasks(tasks, fixed_test=False)
    assert [t["id"] for t in test] == [5, 10] and len(train) == 9
    assert [t["id"] for t in split_tasks(tasks[:3], fixed_test=False)[1]] == [3]
    assert split_tasks(tasks, fixed_test=True) == (tasks, [])
    task = {"id": 1, "annotations": [annotation(1, 1, text="Python", spans=[(0, 6, "LANG")])]}
    task["annotations"][0]["result"] += annotation(2, 1, text="x", label="benefits")["result"]
    assert keep_known_labels([task], ent_labels={"SKILL"}, cat_labels={"benefits"}) == 1
    assert [r["type"] for r in task["annotations"][0]["result"]] == ["choices"]


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
    """A TestClient over a server with a RetrainingLoop in tmp_path: make_studio(with_data=...)."""
    clients = []

    def make(**settings) -> TestClient:
        live = LivePredictor(predictor, source=str(tiny_pipeline))
        loop = RetrainingLoop(
            live=live,
            data_dir=tmp_path,
            settings=RetrainSettings(every=0, epochs=1, margin=1.0, **settings),
            load=lambda path: load_predictor(path, gpu_id="-1"),
        )
        clients.append(TestClient(create_app(live, retraining=loop)))
        return clients[-1].__enter__()

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
