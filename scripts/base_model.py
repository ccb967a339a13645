"""Say where the base model will be loaded from: the `transformer` var resolved, as one JSON line.

python -m scripts.base_model auto --lang en
python -m scripts.base_model roberta-base
"""

import json

import typer

from scripts.common.base_model import resolve_base_model
from scripts.common.errors import reported_as_one_line

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    transformer: str = typer.Argument(
        "auto", help="'auto', a Hugging Face hub name or a local model folder"
    ),
    lang: str = typer.Option("en", "--lang", help="Language code, used when transformer is 'auto'"),
) -> None:
    """Print where the base model will be loaded from."""
    with reported_as_one_line():
        model = resolve_base_model(transformer, lang=lang)
    typer.echo(json.dumps({"name": model.name, "location": model.location, "source": model.source}))


if __name__ == "__main__":
    app()
