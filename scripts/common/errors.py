"""One way to report a problem with the user's input or setup: one line, no traceback."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from types import MappingProxyType
from typing import Iterator, Mapping, NoReturn, Optional

import typer


class UserError(Exception):
    """Bad input or setup. The message says what, where and how to fix it, on one line. `setting`
    names the setting that fixes it, by its project var (e.g. "gpu_id"): each command then says how
    it sets it (reported_as_one_line), so a stage never tells a scripts.serve user about --vars.

        raise UserError("gpu_id 'x' is not 'auto', -1 or a GPU index", setting="gpu_id")
    """

    def __init__(self, message: str, *, setting: Optional[str] = None) -> None:
        super().__init__(message)
        self.setting = setting


def one_line(err: BaseException) -> str:
    """An exception as one short line, for "cannot do X (why); how to fix" messages."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def fail(message: str) -> NoReturn:
    """Print `message` as one error line on stderr and exit with status 1."""
    typer.echo(f"✘ {message}", err=True)
    raise typer.Exit(code=1)


def how_to_set(
    err: UserError, *, options: Mapping[str, str] = MappingProxyType({}), project_step: bool = False
) -> str:
    """The message, with how the running command sets the error's setting: its option (options:
    setting -> option, e.g. {"gpu_id": "--gpu-id"}), and the project var where the command is a
    step of project.yml.

        "gpu_id 'x' is not ... (set gpu_id with --gpu-id, or --vars.gpu_id in spacy project run)"
    """
    if err.setting is None:
        return str(err)
    ways = [options[err.setting]] if err.setting in options else []
    if project_step:
        ways.append(f"--vars.{err.setting} in spacy project run")
    return f"{err} (set {err.setting} with {', or '.join(ways)})" if ways else str(err)


@contextmanager
def reported_as_one_line(
    *, options: Mapping[str, str] = MappingProxyType({}), project_step: bool = False
) -> Iterator[None]:
    """Turn a UserError raised inside the block into one error line and exit 1. options: the
    command's option for each setting it takes (how_to_set); project_step: the command is a step
    of project.yml, whose vars set what it reads."""
    try:
        yield
    except UserError as err:
        fail(how_to_set(err, options=options, project_step=project_step))


def info(message: str) -> None:
    """One status line on stderr, so stdout stays clean for data."""
    print(f"ℹ {message}", file=sys.stderr, flush=True)
