"""Write the training config: configs/base.cfg cut to the chosen components, filled by spaCy.

    python -m scripts.make_config configs/base.cfg training/config.cfg --components ner,textcat

Extra `--section.key value` arguments override configs/base.cfg first, e.g.
`--training.accumulate_gradient 2` or `--components.textcat.class_balance 0.3`; an empty value
(`--training.batcher.size ''`) keeps configs/base.cfg's.
"""

from __future__ import annotations

from pathlib import Path

import typer

from scripts.common.base_model import MAX_UNKNOWN_SHARE
from scripts.common.errors import reported_as_one_line
from scripts.common.spacy_internals import parse_config_overrides
from scripts.training.config import VALID_COMPONENTS, make_config

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def main(
    ctx: typer.Context,
    base_path: Path = typer.Argument(..., help="Base config (configs/base.cfg)"),
    output: Path = typer.Argument(..., help="Where to write the filled config"),
    components: str = typer.Option(
        "ner,textcat", "--components", help=f"One of: {' | '.join(VALID_COMPONENTS)}"
    ),
    transformer: str = typer.Option(
        "auto", "--transformer", help="'auto', a Hugging Face hub name or a local model folder"
    ),
    lang: str = typer.Option("en", "--lang", help="Language code of the texts"),
    train: Path = typer.Option(
        Path("corpus/train.spacy"), "--train", help="Training corpus, to scale the schedule"
    ),
    max_epochs: int = typer.Option(
        0, "--max-epochs", help="Epochs; 0 chooses from the corpus size"
    ),
    logger: str = typer.Option(
        "console",
        "--logger",
        help="Experiment tracker, a section of configs/loggers.cfg: console, mlflow or wandb",
    ),
    max_unknown: float = typer.Option(
        MAX_UNKNOWN_SHARE,
        "--max-unknown",
        help="Stop when a larger share of the training text's word pieces is unknown to the base "
        "model's tokenizer ([UNK]): it cannot read the language; 1.0 goes on anyway",
    ),
) -> None:
    """Write the training config for the chosen components and base model; extra
    --section.key value arguments override configs/base.cfg (an empty value keeps its own)."""
    with reported_as_one_line(
        options={"transformer": "--transformer", "max_unknown": "--max-unknown"},
        project_step=True,
    ):
        make_config(
            base_path=base_path,
            output=output,
            components=components,
            transformer=transformer,
            lang=lang,
            train=train,
            max_epochs=max_epochs,
            overrides=parse_config_overrides(ctx.args),
            logger=logger,
            max_unknown=max_unknown,
        )


if __name__ == "__main__":
    app()
