"""Convert annotations in the formats users bring into .spacy files, with a report of what was
repaired or dropped.

    python -m scripts.convert assets/ner.tsv assets/cats.csv --output corpus/all.spacy
    python -m scripts.convert data.jsonl --output corpus --split 0.8,0.1,0.1 --seed 0
    python -m scripts.convert --train "A.tsv,B.csv" --dev "C.tsv" --test "" --output-dir corpus
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any, Mapping, Optional

import typer

from scripts.common.errors import UserError
from scripts.corpus.conversion import (
    ConvertError,
    Settings,
    convert_files,
    convert_project,
    parse_file_list,
    parse_split,
    unreadable_input,
)
from scripts.corpus.readers import READERS

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
FORMATS_EPILOG = "Formats (--format): " + "; ".join(
    f"{name}: {reader.help}" for name, reader in READERS.items()
)


@app.command(epilog=FORMATS_EPILOG)
def main(
    ctx: typer.Context,
    sources: Optional[list[Path]] = typer.Argument(
        None,
        help="Files or folders to convert and merge (a folder: its files, sorted; what it skips "
        "is listed)",
    ),
    output: Optional[Path] = typer.Option(
        None,
        "--output",
        "-o",
        help="The .spacy file to write; with --split, a folder for train/dev/test.spacy",
    ),
    train: Optional[str] = typer.Option(
        None, "--train", help="Project mode: comma-separated training files"
    ),
    dev: str = typer.Option(
        "", "--dev", help="Project mode: comma-separated dev files (empty: 10 percent of --train)"
    ),
    test: str = typer.Option(
        "", "--test", help="Project mode: comma-separated test files (empty: 10 percent of --train)"
    ),
    output_dir: Optional[Path] = typer.Option(
        None, "--output-dir", help="Project mode: folder for train/dev/test.spacy and report.json"
    ),
    fmt: str = typer.Option(
        "auto", "--format", "-f", help=f"Reader: auto, or one of {', '.join(READERS)}"
    ),
    lang: str = typer.Option(
        "en",
        "--lang",
        help="spaCy language code for tokenizing texts (zh/ja: characters joined without spaces)",
    ),
    split: Optional[str] = typer.Option(
        None,
        "--split",
        help="Fractions train,dev,test, e.g. 0.8,0.1,0.1 (by document, stratified by category)",
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed of the split"),
    tag_column: int = typer.Option(
        -1,
        "--tag-column",
        help="Token-per-line: column of the tag, from 1 (negative from the end; -1 last)",
    ),
    token_column: int = typer.Option(
        1, "--token-column", help="Token-per-line: column of the token, from 1"
    ),
    labels_file: str = typer.Option(
        "",
        "--labels-file",
        help="Class names, one per line, for numeric classes in tables (empty: none)",
    ),
    misaligned: str = typer.Option(
        "expand", "--misaligned", help="Spans that cut into a word: expand, contract or drop"
    ),
    encoding: str = typer.Option(
        "",
        "--encoding",
        help="Encoding of files without a byte-order mark, e.g. cp1252 (empty: UTF-8; UTF-16 and "
        "UTF-8 with a mark are always read)",
    ),
    recursive: bool = typer.Option(
        False, "--recursive", "-r", help="Folder sources: read their sub-folders too"
    ),
    lenient: bool = typer.Option(
        False, "--lenient", help="Skip malformed lines and count them instead of stopping"
    ),
    strict: bool = typer.Option(
        False,
        "--strict",
        help="Stop at suspicious lines (a table row repeating the header) instead of warning",
    ),
) -> None:
    """Convert annotations in the formats users bring into .spacy files, with a report of what was
    repaired or dropped."""
    settings = reader_settings(ctx.params)
    try:
        if train is not None or output_dir is not None:
            if sources or output is not None or split is not None:
                raise ConvertError(
                    "give either SOURCE... --output (with --split) "
                    "or --train/--dev/--test --output-dir, not both"
                )
            if output_dir is None:
                raise ConvertError(
                    "--train needs --output-dir; name the folder for train/dev/test.spacy"
                )
            convert_project(
                train=parse_file_list(train or ""),
                dev=parse_file_list(dev),
                test=parse_file_list(test),
                output_dir=output_dir,
                seed=seed,
                settings=settings,
                echo=typer.echo,
            )
        else:
            if output is None:
                raise ConvertError(
                    "--output is missing; name the .spacy file to write (or a folder with --split)"
                )
            convert_files(
                sources=list(sources or []),
                output=output,
                split=parse_split(split) if split is not None else None,
                seed=seed,
                settings=settings,
                echo=typer.echo,
            )
    except ConvertError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(1) from None
    except (OSError, UnicodeError) as error:
        typer.echo(str(unreadable_input(error)), err=True)
        raise typer.Exit(1) from None


# The options that say how files are read (Settings, less the language), by their names in main()
READER_OPTIONS = (
    "fmt",
    "tag_column",
    "token_column",
    "labels_file",
    "misaligned",
    "encoding",
    "recursive",
    "lenient",
    "strict",
)


def reader_settings(params: Mapping[str, Any]) -> Settings:
    """Settings from main()'s parsed options, e.g. reader_settings(ctx.params)."""
    return Settings(
        fmt=params["fmt"],
        lang=params["lang"],
        tag_column=params["tag_column"],
        token_column=params["token_column"],
        labels_file=Path(params["labels_file"]) if params["labels_file"] else None,
        misaligned=params["misaligned"],
        encoding=params["encoding"] or None,
        recursive=params["recursive"],
        lenient=params["lenient"],
        strict=params["strict"],
    )


def settings_from_words(words: list[str], *, lang: str, option: str) -> Settings:
    """Reader options given as this command's words, parsed by its own parameters, for a command
    that passes them on: settings_from_words(["--format", "iob"], lang="en",
    option="--convert-options"); only the options of READER_OPTIONS are taken."""
    command = typer.main.get_command(app)
    shown = f"{option} '{' '.join(words)}'"
    try:
        with command.make_context("scripts.convert", list(words)) as ctx:
            params = dict(ctx.params)
            # By the enum's name: typer >= 0.20 parses with its own copy of click.
            given = [
                param
                for param in command.params
                if param.name not in READER_OPTIONS
                and getattr(ctx.get_parameter_source(param.name), "name", "") == "COMMANDLINE"
            ]
    except Exception as err:
        # click's UsageError (from click, or from typer's copy of it): one line, not a traceback
        if not hasattr(err, "format_message"):
            raise
        raise UserError(f"{shown}: {err.format_message()}") from None
    if given:
        name = given[0].opts[0] if given[0].opts[0].startswith("-") else "SOURCE"
        readers = [param.opts[0] for param in command.params if param.name in READER_OPTIONS]
        raise UserError(f"{shown}: {name} is not a reader option; give only {', '.join(readers)}")
    return reader_settings({**params, "lang": lang})


if __name__ == "__main__":
    # What the imports made (spaCy, and torch through thinc) lives until exit: frozen, the garbage
    # collector skips it at every collection and at exit instead of walking it each time.
    gc.freeze()
    app()
