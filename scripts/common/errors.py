"""One way to report a problem with the user's input or setup: one line, no traceback."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator, NoReturn

import typer


class UserError(Exception):
    """Bad input or setup. The message says what, where and how to fix it, on one line."""


def one_line(err: BaseException) -> str:
    """An exception as one short line, for "cannot do X (why); how to fix" messages."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def fail(message: str) -> NoReturn:
    """Print `message` as one error line on stderr and exit with status 1."""
    typer.echo(f"✘ {message}", err=True)
    raise typer.Exit(code=1)


@contextmanager
def reported_as_one_line() -> Iterator[None]:
    """Turn a UserError raised inside the block into one error line and exit 1."""
    try:
        yield
    except UserError as err:
        fail(str(err))


def info(message: str) -> None:
    """One status line on stderr, so stdout stays clean for data."""
    print(f"ℹ {message}", file=sys.stderr, flush=True)
