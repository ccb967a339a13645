"""Measure how faithful the explanations are: deleting the top-weighted words against random ones.

    python -m scripts.bench_explain training/model-best --data corpus/test.spacy
    python -m scripts.bench_explain en_job_postings --data corpus/test.spacy --limit 50 --seed 1
    python -m scripts.bench_explain training/model-best --data corpus/test.spacy --details
    python -m scripts.bench_explain training/model-best --data corpus/test.spacy --method lime

For each held-out text with categories, the label the pipeline scores highest is explained; then
the k words with the largest weights are deleted, and k random words (--draws times, averaged).
Prints one line per k: the share of texts where deleting the top words lowered the score more,
the mean score drops, and the texts; then one JSON line with everything, including the texts the
pipeline scored (model calls). --details adds a line per text where the top words did not win
(score, top word and weight, drops, whether a random draw hit the top words, and where the top
word ranks when each word is deleted alone). How: scripts/bench/faithfulness.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List

import typer

from scripts.bench.faithfulness import deletion_check
from scripts.common.errors import UserError, info, reported_as_one_line
from scripts.common.options import GPU_ID, gpu_id_option, model_argument
from scripts.evaluation.explain import DEFAULT_METHOD
from scripts.evaluation.run import read_docs
from scripts.inference.predict import load_predictor
from scripts.scoring.metrics import has_cat_annotation

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    model: str = model_argument(),
    data_path: Path = typer.Option(
        ..., "--data", help="Held-out texts as a .spacy DocBin, e.g. corpus/test.spacy"
    ),
    limit: int = typer.Option(50, "--limit", min=1, help="Texts to check at most (the first N)"),
    ks: List[int] = typer.Option([1, 3], "--k", min=1, help="Words deleted; repeat for several"),
    max_evals: int = typer.Option(
        200, "--max-evals", min=4, help="Texts the pipeline scores per explanation at most"
    ),
    draws: int = typer.Option(3, "--draws", min=1, help="Random deletions per text and k"),
    method: str = typer.Option(DEFAULT_METHOD, "--method", help="shap or lime (scripts.explain)"),
    seed: int = typer.Option(0, "--seed", help="Seed of the random deletions"),
    details: bool = typer.Option(
        False, "--details", help="Per-text lines for the texts that fail, with each word's drop"
    ),
    gpu_id: str = gpu_id_option(),
) -> None:
    """Share of texts where deleting the top-k words beats deleting k random ones."""
    with reported_as_one_line(options=GPU_ID):
        predictor = load_predictor(model, gpu_id=gpu_id)
        if not predictor.cat_labels:
            raise UserError(f"the model '{model}' has no text classifier to explain")
        docs = read_docs(data_path=data_path, nlp=predictor.nlp)
        texts = [doc.text for doc in docs if has_cat_annotation(doc)] or [d.text for d in docs]
        info(f"Checking {min(limit, len(texts))} of {len(texts)} texts from {data_path}")
        result = deletion_check(
            predictor.nlp,
            texts[:limit],
            ks=ks,
            max_evals=max_evals,
            seed=seed,
            draws=draws,
            details=details,
            method=method,
        )
    for row in result.get("details", []):
        for k, top in row["drop_top"].items():
            randoms = row["drop_random"][k]
            if top > sum(randoms) / len(randoms):
                continue
            typer.echo(
                f"text {row['index']} k={k}: {row['label']} {row['score']:.4f}, "
                f"{row['words']} words, evals {row['evals']}; top {row['top_word']!r} "
                f"{row['top_weight']:+.4f}; drop top {top:+.4f} vs random "
                f"{', '.join(f'{d:+.4f}' for d in randoms)} ({row['random_hit_top'][k]} hit the "
                f"top); top word ranks {row['top_word_rank']} of {row['words']} deleted alone, "
                f"largest single drop {max(row['leave_one_out']):+.4f}"
            )
    for row in result["per_k"]:
        typer.echo(
            f"k={row['k']}: top-k deletion beats random in {row['share_top_beats_random']:.0%} of "
            f"{row['texts']} texts; mean score drop {row['mean_drop_top']:.3f} (top) vs "
            f"{row['mean_drop_random']:.3f} (random)"
        )
    typer.echo(
        f"{result['model_calls']} texts scored by the pipeline "
        f"({result['explain_calls_per_text']} per explanation), {result['seconds']} s"
    )
    typer.echo(json.dumps({"model": model, "data": str(data_path), **result}))


if __name__ == "__main__":
    app()
