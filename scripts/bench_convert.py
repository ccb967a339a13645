"""Benchmark: our converter against `spacy convert -c ner` on a synthetic CoNLL-2003-style file.

    python -m scripts.bench_convert --tokens 200000 --repeat 3

Each converter runs in a child process; wall time and peak RSS come from os.wait4 on that child.
Ours is also run on twice the tokens, to show how its memory grows.
"""

from __future__ import annotations

import typer

from scripts.bench.convert_speed import compare_converters

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    tokens: int = typer.Option(200_000, "--tokens", help="Tokens in the synthetic file"),
    repeat: int = typer.Option(
        1, "--repeat", min=1, help="Runs of each converter; the fastest counts (a busy machine)"
    ),
) -> None:
    """Time our converter and `spacy convert -c ner` on the same synthetic CoNLL-2003-style file."""
    typer.echo(compare_converters(tokens=tokens, repeat=repeat).table())


if __name__ == "__main__":
    app()
