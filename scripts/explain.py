"""Explain a pipeline's scores: how much each word pushed each category's score, and each scored
entity's, up or down.

    python -m scripts.explain training/model-best --text "Python and SQL are required."
    python -m scripts.explain en_job_postings --texts texts.jsonl --label requirements \\
        --output explained.html
    python -m scripts.explain training/model-best --text "Free lunch." --json --method lime

Methods (--method): LIME (the lime package's weighted linear fit on copies with random words
deleted, the copies nearest the whole text weighing most; the default), or SHAP values from the
shap package's Partition explainer (Owen values over a hierarchy of the words). A word is a spaCy
token of the pipeline's tokenizer (whitespace left out) and a removed word is deleted from the
text. A label's SHAP values add up to its score minus its base (the score of a text with no words,
one space); an entity's add up to its score. Cost: up to --max-evals texts scored by the pipeline
per explained text, whatever the number of labels. Needs shap and lime: pip install -r
requirements/explain.txt.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from scripts.common.errors import UserError, info, reported_as_one_line
from scripts.common.files import write_bytes_atomic
from scripts.common.options import GPU_ID, gpu_id_option, model_argument
from scripts.evaluation.explain import (
    DEFAULT_MAX_EVALS,
    DEFAULT_METHOD,
    Explanation,
    WordWeight,
    explain_texts,
    render_page,
)
from scripts.inference.predict import load_predictor, read_records

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    model: str = model_argument(),
    text: List[str] = typer.Option(
        [], "--text", "-t", help="A text to explain; repeat for several"
    ),
    texts_path: Optional[Path] = typer.Option(
        None,
        "--texts",
        help="More texts: .jsonl/.json (a text field), .csv/.tsv (a text column) or text lines",
    ),
    text_field: str = typer.Option(
        "text", "--text-field", help="The field or column of --texts that holds the text"
    ),
    label: List[str] = typer.Option(
        [], "--label", "-l", help="A label to explain (repeat for several); default: all"
    ),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", help="Also write the highlighted texts to this HTML file"
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print one JSON object per text instead of the word lists"
    ),
    method: str = typer.Option(
        DEFAULT_METHOD,
        "--method",
        help="shap (SHAP values: they add up to score - base) or lime (local linear weights)",
    ),
    max_evals: int = typer.Option(
        DEFAULT_MAX_EVALS,
        "--max-evals",
        min=4,
        help="Texts the pipeline scores per explained text at most (more: finer weights)",
    ),
    top: int = typer.Option(
        10, "--top", min=0, help="Words printed per label, largest weights first (0: all)"
    ),
    gpu_id: str = gpu_id_option(),
) -> None:
    """Print, per text and label, the words that pushed the score up (+) or down (-)."""
    with reported_as_one_line(options=GPU_ID, project_step=True):
        texts = list(text)
        if texts_path is not None:
            texts += [r[text_field] for r in read_records(texts_path, text_field=text_field)]
        if not texts:
            raise UserError("no text to explain; pass --text '...' or --texts FILE")
        if output is not None and output.is_dir():
            raise UserError(f"--output {output} is a folder; pass a file name such as out.html")
        predictor = load_predictor(model, gpu_id=gpu_id)
        try:
            explanations = explain_texts(
                predictor, texts, labels=label or None, max_evals=max_evals, method=method
            )
        except ImportError as err:
            raise UserError(
                f"cannot import {err.name or 'shap or lime'} ({err}); "
                "pip install -r requirements/explain.txt"
            ) from None
        if output is not None:
            page = render_page(explanations, title=f"Explanations: {predictor.version}")
            write_bytes_atomic(output, page.encode("utf8"))
    for explanation in explanations:
        if as_json:
            typer.echo(json.dumps(explanation, ensure_ascii=False))
        else:
            typer.echo("\n".join(describe(explanation, top=top)) + "\n")
    calls = sum(e["evals"] for e in explanations)
    info(f"{len(explanations)} texts explained with {calls} texts scored by the pipeline")
    if output is not None:
        info(f"Wrote {output}")


def describe(explanation: Explanation, *, top: int) -> list[str]:
    """The lines printed for one text: its labels' and entities' scores and their strongest
    words."""
    lines = [repr(explanation["text"])]
    for label, words in explanation["labels"].items():
        score, base = explanation["cats"][label], explanation["base"][label]
        lines.append(f"  {label} {score:.3f} (base {base:.3f}): {strongest(words, top=top)}")
    for entity in explanation.get("entities", []):
        lines.append(
            f"  entity {entity['text']!r} {entity['label']} {entity['score']:.3f}: "
            + strongest(entity["words"], top=top)
        )
    return lines


def strongest(words: list[WordWeight], *, top: int) -> str:
    """The top words by |weight| (all for top 0) with their weights, and how many more there are,
    e.g. "Python +0.210, SQL +0.180, ... (3 more)"."""
    ranked = sorted(words, key=lambda w: -abs(w["weight"]))
    shown = ranked[:top] if top else ranked
    pairs = ", ".join(f"{w['text']} {w['weight']:+.3f}" for w in shown)
    more = f", ... ({len(ranked) - len(shown)} more)" if len(shown) < len(ranked) else ""
    return f"{pairs or 'no words'}{more}"


if __name__ == "__main__":
    app()
