"""POST /explain for the HTTP app: word weights per category label and per scored entity
(scripts.evaluation.explain).

    add_explain_route(app, predictor=predictor, batcher=batcher, limits=limits)
    # POST /explain {"texts": [...], "label": "requirements"}   ("label" optional: all labels;
    #               "method": "lime" (default) or "shap"; "max_evals")
    # -> {"model_version", "explanations": [{"text", "cats", "labels", "base", "method", "evals",
    #                                        "entities" (where the pipeline scores them)}]}

The same limits as /predict (413 over them, 422 for bad input or an unknown label). An explanation
scores many masked copies of each text: it runs in a worker thread, one request at a time, and
sends its copies through the app's batcher in small batches, so /predict requests keep being
answered between them and the pipeline still runs one batch at a time.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal, Mapping, Optional

from pydantic import BaseModel, Field

from scripts.evaluation.explain import (
    DEFAULT_MAX_EVALS,
    DEFAULT_METHOD,
    check_labels,
    entity_labels,
    explain_texts,
)
from scripts.inference.batching import Batcher, Limits, check_limits
from scripts.inference.predict import Predictor

MAX_EVALS_LIMIT = 5 * DEFAULT_MAX_EVALS  # what one request may ask for per text


class ExplainRequest(BaseModel):
    texts: list[str]
    label: Optional[str] = None  # None: every label
    max_evals: int = Field(DEFAULT_MAX_EVALS, ge=4, le=MAX_EVALS_LIMIT)
    method: Literal["shap", "lime"] = DEFAULT_METHOD


def add_explain_route(app: Any, *, predictor: Predictor, batcher: Batcher, limits: Limits) -> None:
    """Add POST /explain to a FastAPI app (scripts.inference.server) whose batcher predicts."""
    one_at_a_time = asyncio.Lock()
    ent_labels = entity_labels(predictor.nlp)  # the labels of the entities it scores

    @app.post("/explain")
    async def explain(request: ExplainRequest) -> dict[str, Any]:
        check_limits(request.texts, limits=limits)
        labels = None
        if request.label is not None:
            labels = check_labels([request.label], known=(*predictor.cat_labels, *ent_labels))
        loop = asyncio.get_running_loop()

        def score(texts: list[str]) -> list[Mapping[str, Any]]:
            # the server's own predictions: its categories and its scored entities
            future = asyncio.run_coroutine_threadsafe(batcher.submit(texts), loop)
            return future.result()

        async with one_at_a_time:
            explanations = await asyncio.to_thread(
                explain_texts,
                predictor,
                request.texts,
                labels=labels,
                max_evals=request.max_evals,
                method=request.method,
                score=score,
            )
        return {"model_version": predictor.version, "explanations": explanations}
