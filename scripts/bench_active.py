"""Benchmark the Label Studio loop's uncertainty-first order against labelling in random order:
annotators simulated by a labelled pool, a pipeline retrained each round, scored on a test set.

    python -m scripts.bench_active corpus/train.spacy corpus/test.spacy --components textcat \
        --pool 400 --batch 40 --rounds 6 --strategies random,uncertainty --seed 0 \
        --output training/active

Prints one JSON line per round and strategy ({"strategy", "round", "annotations", "score", ...}),
kept in OUTPUT/seed-S/rounds.jsonl; run it again with another --seed into the same --output for
more seeds. Each run redraws OUTPUT/curves.png (the mean learning curve of each strategy over every
seed there) and prints, last, how many fewer annotations uncertainty-first needs to reach the random
order's last score (OUTPUT/saving.json). Messages of the stages go to stderr. How the rounds run:
scripts/bench/active.py.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import typer

from scripts.bench.active import (
    CURVES_FILE,
    STRATEGIES,
    Plan,
    draw_curves,
    mean_curves,
    read_rounds,
    run_strategies,
    saving,
)
from scripts.common.errors import reported_as_one_line
from scripts.common.files import write_bytes_atomic, write_text_atomic
from scripts.common.options import GPU_ID, gpu_id_option, uncertainty_option

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    pool: Path = typer.Argument(..., help="Labelled .spacy documents the annotators stand for"),
    test: Path = typer.Argument(..., help="Labelled .spacy documents each round is scored on"),
    components: str = typer.Option(..., "--components", help="ner, textcat or textcat_multilabel"),
    pool_size: int = typer.Option(..., "--pool", help="Documents of POOL that may be labelled"),
    batch: int = typer.Option(..., "--batch", help="Documents labelled per round"),
    rounds: int = typer.Option(..., "--rounds", help="Rounds of labelling and retraining"),
    strategies: str = typer.Option(
        ",".join(STRATEGIES), "--strategies", help="Orders to compare, comma-separated"
    ),
    epochs: int = typer.Option(
        0, "--epochs", min=0, help="Epochs per training; 0: chosen from the corpus size"
    ),
    seed: int = typer.Option(0, "--seed", help="The pool's order, the dev split and training"),
    transformer: str = typer.Option("auto", "--transformer", help="Base model, as for config"),
    rule: str = uncertainty_option(),
    gpu_id: str = gpu_id_option(),
    output: Path = typer.Option(
        Path("training/active"), "--output", help="Folder for the seeds' rounds and the curves"
    ),
) -> None:
    """Label POOL round by round in each strategy's order, retrain, score on TEST."""
    with reported_as_one_line(options=GPU_ID):
        plan = Plan(
            components=components,
            pool=pool_size,
            batch=batch,
            rounds=rounds,
            strategies=tuple(name.strip() for name in strategies.split(",") if name.strip()),
            epochs=epochs,
            seed=seed,
            transformer=transformer,
            rule=rule,
            gpu_id=gpu_id,
        )
        found = run_strategies(
            pool=pool,
            test=test,
            plan=plan,
            output=output / f"seed-{seed}",
            echo=lambda message: print(message, file=sys.stderr),
        )
        while True:
            with contextlib.redirect_stdout(sys.stderr):  # stdout carries the result lines alone
                line = next(found, None)
            if line is None:
                break
            print(json.dumps(line), flush=True)
        every = read_rounds(output)
        title = f"{components}: {len({r['seed'] for r in every})} seed(s), batch {batch}"
        write_bytes_atomic(output / CURVES_FILE, draw_curves(every, title=title))
        found_saving = saving(every)
        write_text_atomic(json.dumps(found_saving, indent=2) + "\n", output / "saving.json")
        for curve in mean_curves(every):  # the table behind the curves, on stderr
            points = ", ".join(f"{n}: {s:.3f}" for n, s in zip(curve.annotations, curve.mean))
            print(f"{curve.strategy} (mean of {curve.seeds} seeds): {points}", file=sys.stderr)
    print(json.dumps({"saving": found_saving, "curves": str(output / CURVES_FILE)}))


if __name__ == "__main__":
    app()
