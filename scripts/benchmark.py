"""Measure the pipeline against its own transformer run bare: words/s of each, their ratio, memory.

    python -m scripts.benchmark training/model-best
    python -m scripts.benchmark en_job_postings --texts texts.jsonl --batch-size 64 --device cpu
    python -m scripts.benchmark training/model-best --components.transformer.max_batch_items 8192
    python -m scripts.benchmark en_job_postings --breakdown     # also words/s up to each component
    python -m scripts.benchmark en_job_postings_int8 --float32-bare  # int8 over float32's bare pass

The bare pass runs the Hugging Face model and tokenizer that the pipeline's transformer component
holds, on the same texts in the same sub-batches, without spaCy: the ratio is what spaCy adds around
the forward passes (how it is measured: scripts/bench/throughput.py). Each batch counts with its
fastest of `--repeats` timed passes. Extra `--section.key value` options override the pipeline's
config as `spacy.load(config=...)` does.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from scripts.bench.throughput import benchmark, load_texts
from scripts.common.errors import UserError, info, reported_as_one_line
from scripts.common.options import model_argument, pipe_batch_size_option

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def main(
    ctx: typer.Context,
    model: str = model_argument(),
    texts_path: Optional[Path] = typer.Option(
        None, "--texts", help=".jsonl/.json/.csv/.txt texts; default: the sample corpus in assets/"
    ),
    text_field: str = typer.Option(
        "text", "--text-field", help="The field or column that holds the text"
    ),
    batch_size: Optional[int] = pipe_batch_size_option(),
    device: str = typer.Option("cpu", "--device", help="cpu or gpu"),
    repeats: int = typer.Option(
        5, "--repeats", min=1, help="Timed passes of each; each batch's fastest counts"
    ),
    baseline: Optional[str] = typer.Option(
        None,
        "--baseline",
        help="Another pipeline to time alongside (e.g. the float32 one), for a speedup",
    ),
    breakdown: bool = typer.Option(
        False,
        "--breakdown",
        help="Also time the pipeline cut after each component: what each one costs",
    ),
    float32_bare: bool = typer.Option(
        False,
        "--float32-bare",
        help="Run the bare pass on the float32 model of the same config (random weights), so "
        "that an int8 build's ratio is its speed over float32",
    ),
) -> None:
    """Print one JSON line: words/s of nlp.pipe and of the bare transformer, their ratio, peak
    memory, device."""
    # it loads spaCy's CLI and spacy-transformers: not for --help
    from scripts.common.spacy_internals import parse_config_overrides

    with reported_as_one_line():
        try:
            overrides = parse_config_overrides(ctx.args)
        except SystemExit:  # spaCy's parser exits on a malformed option
            raise UserError(
                f"cannot read the config overrides {' '.join(ctx.args)}; write them as "
                "--section.key value"
            ) from None
        texts = load_texts(texts_path, text_field=text_field)
        source = "sample corpus" if texts_path is None else texts_path
        info(f"Benchmarking {model} on {len(texts)} texts ({source}), {device}")
        result = benchmark(
            model=model,
            texts=texts,
            batch_size=batch_size,
            device=device,
            repeats=repeats,
            overrides=overrides,
            baseline=baseline,
            breakdown=breakdown,
            float32_bare=float32_bare,
        )
    print(json.dumps(result), flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    app()
