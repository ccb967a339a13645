"""The README, BENCHMARKS.md and the guides in docs/ hold: every `python -m scripts.X` command they
show parses with that command's options, every `spacy project run` names a real command and real
vars, every `pip install -r` file exists, every relative link and #anchor resolves, and the README
stays short."""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import pytest
import typer
from weasel.util import load_project_config

from tests.helpers import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
DOCS = [README, PROJECT_ROOT / "BENCHMARKS.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]
README_LIMIT = 16_000  # bytes: the README says what to do; the detail lives in docs/
# A word that stands for the reader's own: `scripts.benchmark <package> [--texts FILE]`,
# `scripts.package ... --fast-ner`, `--workers N`, `project run STEP`
PLACEHOLDER = re.compile(r"<\w+>.*|\[--.*|\.\.\.|[A-Z]+")
CODE_BLOCK = re.compile(r"^[ \t]*```(\w*)\n(.*?)^[ \t]*```", re.S | re.M)  # also in list items


def commands_in(path: Path) -> list[str]:
    """The commands of a file: lines of its bash code blocks (continuations joined) and inline
    code spans that start with `python -m`."""
    text = path.read_text(encoding="utf8")
    found = []
    for language, block in CODE_BLOCK.findall(text):
        if language == "bash":
            found += [line.strip() for line in block.replace("\\\n", " ").splitlines()]
    prose = CODE_BLOCK.sub("", text).replace("\n", " ")
    found += re.findall(r"`(python -m [^`]+)`", prose)
    # a bare `python -m scripts.x` in prose names the command; it is not an example to run
    return [
        c
        for c in found
        if re.search(r"python -m \S+ ", c)
        and not any(PLACEHOLDER.fullmatch(word) for word in shlex.split(c, comments=True))
    ]


def invocation(command: str) -> list[str]:
    """The words from `python -m` on, without a trailing comment or a shell pipe."""
    words = shlex.split(command, comments=True)
    start = words.index("-m") - 1
    words = words[start:]
    for stop in ("|", "&&", ";"):
        if stop in words:
            words = words[: words.index(stop)]
    return words[2:]  # after python -m


DOCUMENTED = [
    pytest.param(path, command, id=f"{path.name}: {command[:60]}")
    for path in DOCS
    for command in commands_in(path)
]


@pytest.mark.parametrize(("path", "command"), DOCUMENTED)
def test_documented_commands_parse_with_their_options(path, command):
    module, *args = invocation(command)
    if module == "spacy":
        check_project_run(args, where=f"{path.name}: {command}")
        return
    if not module.startswith("scripts."):
        return  # another tool's command (pytest, pip)
    cli = typer.main.get_command(importlib.import_module(module).app)
    try:
        cli.make_context(module, list(args))  # parses and checks every option; runs nothing
    except typer.Exit:
        pass  # --help
    except Exception as err:  # click's usage errors (recent typer versions vendor click)
        message = err.format_message() if hasattr(err, "format_message") else str(err)
        pytest.fail(f"{path.name}: `{command}` does not parse: {message}")


def check_project_run(args: list[str], *, where: str) -> None:
    if args[:2] != ["project", "run"]:
        return
    project = load_project_config(PROJECT_ROOT)
    names = {c["name"] for c in project["commands"]} | set(project["workflows"])
    assert args[2] in names, f"{where}: no project command or workflow '{args[2]}'"
    for word in args[3:]:
        if word.startswith("--vars."):
            var = word.removeprefix("--vars.").split("=")[0]
            assert var in project["vars"], f"{where}: project.yml has no var '{var}'"


def test_the_documented_commands_are_found():
    commands = [c for path in DOCS for c in commands_in(path)]
    assert any("scripts.serve training/model-best" in c for c in commands)
    assert any("spacy project run explain . --vars.explain_text" in c for c in commands)


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_requirement_files_named_exist(path):
    for name in re.findall(r"-r (\S+\.txt)", path.read_text(encoding="utf8")):
        assert (PROJECT_ROOT / name).is_file(), f"{path.name}: pip install -r {name}: no such file"


def heading_anchors(path: Path) -> set[str]:
    """The #anchors GitHub gives a file's headings."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    for line in CODE_BLOCK.sub("", path.read_text(encoding="utf8")).splitlines():
        match = re.match(r"#{1,6}\s+(.*)", line)
        if match:
            slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
            anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
            seen[slug] = seen.get(slug, 0) + 1
    return anchors


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_relative_links_and_anchors_resolve(path):
    prose = CODE_BLOCK.sub("", path.read_text(encoding="utf8"))
    for target in re.findall(r"\]\(([^)\s]+)\)", prose):
        if re.match(r"\w+://", target):
            continue
        file, _, anchor = target.partition("#")
        destination = path.parent / file if file else path
        assert destination.exists(), f"{path.name} links to {target}: no such file"
        if anchor and destination.suffix == ".md":
            assert anchor in heading_anchors(destination), f"{path.name}: no anchor {target}"


def test_readme_is_short_and_links_every_guide():
    text = README.read_text(encoding="utf8")
    assert len(text.encode("utf8")) <= README_LIMIT
    for guide in (PROJECT_ROOT / "docs").glob("*.md"):
        assert f"](docs/{guide.name})" in text, f"README.md does not link docs/{guide.name}"
