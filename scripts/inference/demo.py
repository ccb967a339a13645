"""The demo page: GET / serves a page where a person pastes a text and sees the entities marked in
it (displaCy, rendered here) and a bar per category with its score.

    add_demo_routes(app, predictor=predictor, predict=predict_checked)

The page (static/demo.html, .js, .css, shipped with the package) loads nothing from elsewhere. It
reads GET /demo.json {"model_version", "pipeline", "entity_labels", "category_labels"} to fit the
model: the Entities panel only for a model that finds entities, the Categories panel only for a
classifier, and a hint naming the labels in the empty text box. It calls POST /render {"text":
...} -> {"model_version", "html", "entities", "cats", "chosen"}. On a server started with an API
key the page takes the key in a field and sends it as a Bearer token.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any, Awaitable, Callable

from pydantic import BaseModel

from scripts.inference.predict import Prediction, Predictor, predicted_labels

STATIC = files("scripts.inference") / "static"
PAGES = {
    "/": ("demo.html", "text/html; charset=utf-8"),
    "/demo.js": ("demo.js", "text/javascript; charset=utf-8"),
    "/demo.css": ("demo.css", "text/css; charset=utf-8"),
}
MODEL_PATH = "/demo.json"  # what the model predicts, for the page (open like /health)
# Nothing from elsewhere; displaCy's markup colours its marks with style attributes.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
# displaCy's palette, given to the model's labels in order (displaCy greys labels it does not know)
COLOURS = (
    "#7aecec",
    "#feca74",
    "#bfeeb7",
    "#ff9561",
    "#aa9cfc",
    "#c887fb",
    "#9cc9cc",
    "#ffeb80",
    "#ff8197",
    "#bfe1d9",
    "#e4e7d2",
    "#f0d0ff",
)


class RenderRequest(BaseModel):
    text: str


def render_entities(text: str, prediction: Prediction, *, ent_labels: tuple[str, ...]) -> str:
    """displaCy's entity markup (HTML, the text escaped) for one prediction, e.g.
    render_entities("Python", {"entities": [...], "cats": {}}, ent_labels=("SKILL",))."""
    from spacy import displacy

    colours = {label: COLOURS[i % len(COLOURS)] for i, label in enumerate(ent_labels)}
    parsed = {
        "text": text,
        "ents": [
            {"start": ent["start"], "end": ent["end"], "label": ent["label"]}
            for ent in prediction["entities"]
        ],
        "title": None,
    }
    return displacy.render(
        parsed, style="ent", manual=True, page=False, jupyter=False, options={"colors": colours}
    )


def describe_model(predictor: Predictor) -> dict[str, Any]:
    """{"model_version", "pipeline", "entity_labels", "category_labels"}, e.g. for a text
    classifier {"model_version": "en_reviews-0.0.1", ..., "entity_labels": [], ...}."""
    return {
        "model_version": predictor.version,
        "pipeline": list(predictor.nlp.pipe_names),
        "entity_labels": list(predictor.ent_labels),
        "category_labels": list(predictor.cat_labels),
    }


def add_demo_routes(
    app: Any,
    *,
    predictor: Predictor,
    predict: Callable[[list[str]], Awaitable[list[Prediction]]],
) -> None:
    """GET / (and its script and style sheet) and POST /render, which predicts through
    `predict` (the server's limits and batching)."""
    from fastapi import Response

    def page_route(name: str, media_type: str) -> Callable[[], Awaitable[Response]]:
        async def page() -> Response:
            return Response(
                (STATIC / name).read_bytes(),
                media_type=media_type,
                headers={"Content-Security-Policy": CSP, "Cache-Control": "no-cache"},
            )

        return page

    for path, (name, media_type) in PAGES.items():
        app.add_api_route(
            path, page_route(name, media_type), methods=["GET"], include_in_schema=False
        )

    @app.get(MODEL_PATH, include_in_schema=False)
    async def model() -> dict[str, Any]:
        """What the page fits itself to: the model's name and the labels it predicts."""
        return describe_model(predictor)

    @app.post("/render")
    async def render(request: RenderRequest) -> dict[str, Any]:
        """{"text": ...} -> the prediction, displaCy's markup of its entities and the categories
        the model chooses."""
        (prediction,) = await predict([request.text])
        return {
            "model_version": predictor.version,
            "html": render_entities(request.text, prediction, ent_labels=predictor.ent_labels),
            "entities": prediction["entities"],
            "cats": prediction["cats"],
            "chosen": predicted_labels(
                prediction["cats"], exclusive=predictor.exclusive, threshold=predictor.threshold
            ),
        }
