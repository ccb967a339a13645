"""scripts.serve: POST /explain, its limits (413) and bad input (422), and /predict answered while
an explanation runs."""

import threading

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")  # fastapi.testclient runs on httpx

from fastapi.testclient import TestClient

from scripts.evaluation.explain import explain_texts
from scripts.inference import explain_route
from scripts.inference.batching import Limits
from scripts.inference.server import create_app
from tests.helpers import needs_extra

pytestmark = needs_extra("explain", "shap", "lime")

TEXTS = ["Python and SQL  are required.", "", "Ünïcode 💡 café: free lunch."]


@pytest.fixture(scope="module")
def client(predictor):
    with TestClient(create_app(predictor, limits=Limits(max_texts=4, max_chars=500))) as client:
        yield client


def test_explain_answers_what_explain_texts_computes(client, predictor):
    response = client.post("/explain", json={"texts": TEXTS, "max_evals": 30})
    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] == "en_tiny-0.0.1"
    expected = explain_texts(predictor, TEXTS, max_evals=30)
    for got, want in zip(body["explanations"], expected, strict=True):
        assert got["text"] == want["text"] and list(got["labels"]) == list(want["labels"])
        for label, words in got["labels"].items():
            assert [(w["start"], w["end"], w["text"]) for w in words] == [
                (w["start"], w["end"], w["text"]) for w in want["labels"][label]
            ]
            assert [w["weight"] for w in words] == pytest.approx(
                [w["weight"] for w in want["labels"][label]], abs=1e-3
            )


def test_explain_one_label(client):
    response = client.post(
        "/explain", json={"texts": ["We offer free lunch."], "label": "benefits"}
    )
    assert response.status_code == 200
    (explanation,) = response.json()["explanations"]
    assert list(explanation["labels"]) == ["benefits"]
    assert [w["text"] for w in explanation["labels"]["benefits"]] == [
        "We",
        "offer",
        "free",
        "lunch",
        ".",
    ]


@pytest.mark.parametrize(
    "payload, status, fragment",
    [
        ({"texts": ["x"] * 5}, 413, "5 texts in one request; the limit is 4"),
        ({"texts": ["ok", "y" * 501]}, 413, "texts 1 has 501 characters; the limit is 500"),
        ({"texts": ["x"], "label": "nope"}, 422, "unknown label 'nope'; the model's labels are: "),
        ({"texts": ["x"], "max_evals": 1}, 422, "max_evals"),
        ({"texts": ["x"], "method": "occlusion"}, 422, "method"),
        ({"texts": "not a list"}, 422, "texts"),
        ({"label": "benefits"}, 422, "texts"),
    ],
)
def test_explain_bad_requests_are_answered_and_the_server_goes_on(
    client, payload, status, fragment
):
    response = client.post("/explain", json=payload)
    assert response.status_code == status and fragment in str(response.json()["detail"])
    assert client.post("/explain", json={"texts": ["Python"], "max_evals": 4}).status_code == 200


def test_predict_is_answered_while_an_explanation_runs(client, monkeypatch):
    started = threading.Event()

    def explain_and_tell(*args, score, **kwargs):
        def scored(texts):
            started.set()
            return score(texts)

        return explain_texts(*args, score=scored, **kwargs)

    monkeypatch.setattr(explain_route, "explain_texts", explain_and_tell)
    long_text = " ".join(["Python SQL Excel dashboards and free lunch."] * 8)
    answers = {}

    def explain() -> None:
        answers["explain"] = client.post("/explain", json={"texts": [long_text], "max_evals": 800})

    worker = threading.Thread(target=explain)
    worker.start()
    assert started.wait(timeout=300)
    predict = client.post("/predict", json={"texts": ["Python and SQL are required."]})
    explaining = worker.is_alive()  # its masked copies queue behind /predict, not before it
    worker.join()
    assert predict.status_code == 200 and answers["explain"].status_code == 200
    assert explaining and answers["explain"].json()["explanations"][0]["evals"] > 100


def test_explain_covers_the_entities_of_a_pipeline_that_scores_them(tiny_pipeline, tmp_path):
    from scripts.inference.predict import load_predictor
    from scripts.training.confidence import add_confidence

    add_confidence(model_dir=tiny_pipeline, output_dir=tmp_path / "scored")
    scored = load_predictor(str(tmp_path / "scored"), gpu_id="-1")
    text = "Python and SQL are required."
    with TestClient(create_app(scored)) as client:
        response = client.post(
            "/explain", json={"texts": [text], "max_evals": 40, "method": "shap"}
        )
        only = client.post("/explain", json={"texts": [text], "label": "SKILL", "max_evals": 20})
    assert response.status_code == 200 and only.status_code == 200
    assert only.json()["explanations"][0]["labels"] == {}  # an entity label: no categories
    (explanation,) = response.json()["explanations"]
    want = [(e.start_char, e.end_char, e.label_) for e in scored.nlp(text).ents]
    assert want and [(e["start"], e["end"], e["label"]) for e in explanation["entities"]] == want
    for entity in explanation["entities"]:
        assert sum(w["weight"] for w in entity["words"]) == pytest.approx(entity["score"], abs=1e-3)
