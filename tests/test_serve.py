"""scripts.serve: our /predict, limits (413), malformed JSON (422), and the Label Studio ML backend
routes."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")  # fastapi.testclient runs on httpx

from fastapi.testclient import TestClient

from scripts.inference.batching import Batcher, Limits
from scripts.inference.predict import labelstudio_config, predict_texts
from scripts.inference.server import create_app
from tests.helpers import TEXTS

LABEL_CONFIG = """<View>
  <Labels name="label" toName="text"><Label value="SKILL"/></Labels>
  <Text name="text" value="$text"/>
  <Choices name="category" toName="text" choice="single">
    <Choice value="requirements"/><Choice value="responsibilities"/><Choice value="benefits"/>
  </Choices>
</View>"""


@pytest.fixture(scope="module")
def client(predictor):
    with TestClient(create_app(predictor, limits=Limits(max_texts=8, max_chars=1000))) as client:
        yield client


def test_predict_returns_the_records_predict_texts_makes(client, predictor):
    response = client.post("/predict", json={"texts": TEXTS})
    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] == "en_tiny-0.0.1"
    assert body["predictions"] == predict_texts(predictor, TEXTS)


def test_health(client):
    assert client.get("/health").json() == {
        "status": "UP",
        "model_version": "en_tiny-0.0.1",
        "pipeline": ["transformer", "ner", "textcat"],
        "model_class": "spaCy",
    }


@pytest.mark.parametrize(
    "payload, fragment",
    [
        ({"texts": ["x"] * 9}, "9 texts in one request; the limit is 8"),
        ({"texts": ["ok", "y" * 1001]}, "texts 1 has 1001 characters; the limit is 1000"),
    ],
)
def test_over_the_limits_is_413_with_a_message_and_the_server_goes_on(client, payload, fragment):
    response = client.post("/predict", json=payload)
    assert response.status_code == 413 and fragment in response.json()["detail"]
    assert client.post("/predict", json={"texts": ["Python"]}).status_code == 200


def test_huge_body_is_refused_before_it_is_read(client):
    response = client.post(
        "/predict",
        content=b"{}",
        headers={"content-length": str(10**12), "content-type": "application/json"},
    )
    assert response.status_code == 413


@pytest.mark.parametrize(
    "body",
    [b'{"texts": ["unterminated', b'{"texts": "not a list"}', b'{"texts": [1, 2]}', b"[]", b""],
)
def test_malformed_json_is_422_and_the_server_goes_on(client, body):
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert client.post("/predict", json={"texts": ["Python"]}).status_code == 200


def test_labelstudio_health_setup_and_predict_speak_the_ml_backend_protocol(client, predictor):
    for path in ("/labelstudio/", "/labelstudio/health"):
        assert client.get(path).json()["status"] == "UP"
    setup = client.post(
        "/labelstudio/setup",
        json={
            "project": "1.1700000000",
            "schema": LABEL_CONFIG,
            "hostname": "http://localhost:8080",
            "access_token": "x",
        },
    )
    assert setup.json() == {"model_version": "en_tiny-0.0.1"}
    tasks = [{"id": i, "data": {"text": text}, "meta": {}} for i, text in enumerate(TEXTS)] + [
        {"id": 99, "data": {"image": "x.png"}}
    ]
    response = client.post(
        "/labelstudio/predict",
        json={
            "tasks": tasks,
            "model_version": None,
            "project": "1.1700000000",
            "label_config": LABEL_CONFIG,
            "params": {"login": None, "password": None, "context": None},
        },
    )
    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == len(tasks) and results[-1]["result"] == []
    records = predict_texts(predictor, TEXTS)
    for text, record, result in zip(TEXTS, records, results):
        assert result["model_version"] == "en_tiny-0.0.1"
        spans = [r["value"] for r in result["result"] if r["type"] == "labels"]
        assert [(s["start"], s["end"], s["labels"][0]) for s in spans] == [
            (e["start"], e["end"], e["label"]) for e in record["entities"]
        ]
        assert all(text[s["start"] : s["end"]] == s["text"] for s in spans)
        choices = [r for r in result["result"] if r["type"] == "choices"]
        if text:
            assert choices[0]["from_name"] == "category" and choices[0]["to_name"] == "text"
            assert choices[0]["value"]["choices"] == [max(record["cats"], key=record["cats"].get)]


def test_labelstudio_errors_are_answers_not_crashes(client):
    assert client.post("/labelstudio/predict", json={"tasks": "nope"}).status_code == 422
    bad = client.post("/labelstudio/predict", json={"tasks": [], "label_config": "<View><Text"})
    assert bad.status_code == 422 and "not valid XML" in bad.json()["detail"]
    # More tasks than --max-texts (8): Label Studio sends a project whole, so all are predicted.
    many = client.post("/labelstudio/predict", json={"tasks": [{"data": {"text": "x"}}] * 9})
    assert many.status_code == 200 and len(many.json()["results"]) == 9
    too_many = client.post("/predict", json={"texts": ["x"] * 9})
    assert too_many.status_code == 413
    assert (
        client.post("/labelstudio/webhook", json={"action": "ANNOTATION_CREATED"}).status_code
        == 200
    )
    assert client.post("/labelstudio/train", json={"annotations": []}).status_code == 200


def test_a_text_that_is_not_unicode_is_422_naming_its_index_and_the_server_goes_on(client):
    body = b'{"texts": ["Python", "SQL \\ud800 and Java"]}'  # valid JSON: a lone surrogate
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("texts 1 cannot be predicted: character 4")
    tasks = b'{"tasks": [{"data": {"text": "ok"}}, {"data": {"text": "\\udfff"}}]}'
    studio = client.post(
        "/labelstudio/predict", content=tasks, headers={"content-type": "application/json"}
    )
    # Label Studio's request holds the whole project: the bad task gets an empty prediction, the
    # others theirs.
    assert studio.status_code == 200
    ok, bad = studio.json()["results"]
    assert ok["model_version"] == bad["model_version"] and not bad["result"]
    assert any(r["type"] == "choices" for r in ok["result"])
    assert client.post("/predict", json={"texts": ["Python"]}).status_code == 200


def test_labelstudio_config_route_serves_the_models_labeling_config(client, predictor):
    response = client.get("/labelstudio/config")
    assert response.status_code == 200 and response.text == labelstudio_config(predictor)


def test_batcher_joins_waiting_requests_and_keeps_their_order():
    calls = []

    def predict(texts):
        calls.append(list(texts))
        return [{"n": text} for text in texts]

    async def scenario():
        batcher = Batcher(predict, max_texts=4)
        runner = asyncio.create_task(batcher.run())
        results = await asyncio.gather(*(batcher.submit([f"{i}a", f"{i}b"]) for i in range(5)))
        runner.cancel()
        return results

    results = asyncio.run(scenario())
    assert results == [[{"n": f"{i}a"}, {"n": f"{i}b"}] for i in range(5)]
    assert (
        all(len(call) <= 4 for call in calls) and len(calls) < 5
    )  # requests were joined, never over the limit


def test_batcher_failure_answers_the_batch_and_keeps_serving():
    def predict(texts):
        if "boom" in texts:
            raise RuntimeError("boom")
        return [{} for _ in texts]

    async def scenario():
        batcher = Batcher(predict, max_texts=1)
        runner = asyncio.create_task(batcher.run())
        with pytest.raises(RuntimeError):
            await batcher.submit(["boom"])
        ok = await batcher.submit(["fine"])
        runner.cancel()
        return ok

    assert asyncio.run(scenario()) == [{}]


def test_a_failing_request_batched_with_a_good_one_fails_alone():
    calls = []

    def predict(texts):
        calls.append(list(texts))
        if "boom" in texts:
            raise RuntimeError("boom")
        return [{"n": text} for text in texts]

    async def scenario():
        batcher = Batcher(predict, max_texts=8)
        runner = asyncio.create_task(batcher.run())
        await asyncio.sleep(0)  # the runner waits for the queue
        results = await asyncio.gather(
            batcher.submit(["boom"]), batcher.submit(["fine", "too"]), return_exceptions=True
        )
        runner.cancel()
        return results

    bad, good = asyncio.run(scenario())
    assert calls[0] == ["boom", "fine", "too"]  # batched together, then retried one by one
    assert isinstance(bad, RuntimeError) and good == [{"n": "fine"}, {"n": "too"}]
