"""Benchmark: our converter against `spacy convert -c ner` on a synthetic CoNLL-2003-style file.

    python -m scripts.bench_convert --tokens 200000

Each converter runs in a child process; wall time and peak RSS come from os.wait4 on that child.
Ours is also run on twice the tokens, to show its memory stays flat.
"""

import tempfile
from pathlib import Path

import typer

from scripts.bench.convert_speed import measure, ours, same_annotation, spacys, write_conll


def main(
    tokens: int = typer.Option(200_000, "--tokens", help="Tokens in the synthetic file"),
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        n = write_conll(tmp / "bench.conll", tokens=tokens)
        ours_s, ours_mb = measure(ours(tmp / "bench.conll", tmp / "ours.spacy"))
        spacy_s, spacy_mb = measure(spacys(tmp / "bench.conll", tmp))
        n2 = write_conll(tmp / "bench2.conll", tokens=2 * tokens, seed=1)
        ours2_s, ours2_mb = measure(ours(tmp / "bench2.conll", tmp / "ours2.spacy"))
        same = same_annotation(tmp / "ours.spacy", tmp / "bench.spacy")
    typer.echo(f"{'converter':<22}{'tokens':>10}{'seconds':>10}{'tokens/s':>12}{'peak MB':>10}")
    for name, count, seconds, mb in (
        ("ours", n, ours_s, ours_mb),
        ("spacy convert -c ner", n, spacy_s, spacy_mb),
        ("ours, 2x tokens", n2, ours2_s, ours2_mb),
    ):
        typer.echo(f"{name:<22}{count:>10}{seconds:>10.2f}{count / seconds:>12,.0f}{mb:>10.1f}")
    typer.echo(
        f"throughput ours/spaCy: {spacy_s / ours_s:.1f}x (goal >= 3x); peak memory ours/spaCy: {ours_mb / spacy_mb:.2f} (goal <= 0.5)"
    )
    typer.echo(
        f"our peak at 2x tokens: {ours2_mb:.1f} MB vs {ours_mb:.1f} MB; same tokens and entities as spaCy: {same}"
    )


if __name__ == "__main__":
    typer.run(main)
