"""The layout holds: project.yml's deps cover what each step imports, and imports point down only
(commands -> stage packages -> common; nothing imports a command; only commands import bench/)."""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import pytest
from weasel.util import load_project_config

from tests.helpers import PROJECT_ROOT

SCRIPTS = PROJECT_ROOT / "scripts"
# With the vars filled in, as weasel runs the steps (a dep may be a var, e.g. annotate_input).
PROJECT = load_project_config(PROJECT_ROOT)
STEPS = [c for c in PROJECT["commands"] if any("-m scripts." in line for line in c["script"])]


def module_file(name: str) -> Path | None:
    """The file of a module of this project (scripts.x.y), or None for anything else."""
    if name != "scripts" and not name.startswith("scripts."):
        return None
    path = PROJECT_ROOT.joinpath(*name.split("."))
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return None


def imported_modules(path: Path) -> set[str]:
    """Every project module a file imports, at the top or inside functions."""
    package = ".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if module_file(name) is not None}


def with_packages(name: str) -> set[str]:
    """A module and the packages Python imports on the way to it."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


def closure(module: str) -> set[Path]:
    """The project files Python runs for `python -m module` (those without code left out)."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        for each in with_packages(name) - seen:
            seen.add(each)
            file = module_file(each)
            if file is not None:
                todo.extend(imported_modules(file))
    files = {module_file(name) for name in seen}
    return {f for f in files if f is not None and has_code(f)}


def has_code(path: Path) -> bool:
    """False for a file that holds at most a docstring: it cannot change what a step does."""
    body = ast.parse(path.read_text(encoding="utf8")).body
    return any(not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)) for n in body)


def covered(path: Path, deps: list[str]) -> bool:
    return any(path == PROJECT_ROOT / dep or (PROJECT_ROOT / dep) in path.parents for dep in deps)


@pytest.mark.parametrize("step", STEPS, ids=[step["name"] for step in STEPS])
def test_every_step_deps_cover_the_modules_its_script_imports(step):
    missing = set()
    for line in step["script"]:
        words = shlex.split(line)
        module = words[words.index("-m") + 1]
        if module.startswith("scripts."):
            missing |= {p for p in closure(module) if not covered(p, step["deps"])}
    names = sorted(str(p.relative_to(PROJECT_ROOT)) for p in missing)
    assert not names, (
        f"project.yml step '{step['name']}' imports {names} without naming them in deps"
    )


@pytest.mark.parametrize("step", STEPS, ids=[step["name"] for step in STEPS])
def test_every_script_dep_is_imported_by_the_step(step):
    """A deps entry under scripts/ that the step never imports re-runs it for nothing."""
    files: set[Path] = set()
    for line in step["script"]:
        words = shlex.split(line)
        module = words[words.index("-m") + 1]
        if module.startswith("scripts."):
            files |= closure(module)
    for dep in step["deps"]:
        if dep.startswith("scripts"):
            path = PROJECT_ROOT / dep
            assert any(f == path or path in f.parents for f in files), (
                f"project.yml step '{step['name']}' names {dep} in deps but never imports it"
            )


def test_deps_and_outputs_name_real_project_paths():
    for step in STEPS:
        for dep in step["deps"]:
            dep = re.sub(r"\$\{vars\.(\w+)\}", lambda m: str(PROJECT["vars"][m[1]]), dep)
            generated = dep.split("/")[0] in ("corpus", "training", "packages")
            assert generated or (PROJECT_ROOT / dep).exists(), f"{step['name']}: no {dep}"


def test_script_lines_are_short_enough_to_read():
    text = (PROJECT_ROOT / "project.yml").read_text(encoding="utf8")
    in_script = False
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.endswith(":") and not stripped.startswith("-"):
            in_script = stripped == "script:"
        elif in_script:
            assert len(line) <= 100, f"project.yml:{number} is {len(line)} characters long"


COMMANDS = {p.stem for p in SCRIPTS.glob("*.py") if p.name != "__init__.py"}
STAGES = {p.name for p in SCRIPTS.iterdir() if (p / "__init__.py").is_file()}
PACKAGE_FILES = [p for p in SCRIPTS.rglob("*.py") if p.parent != SCRIPTS]


def stage_of(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in STAGES else None


def test_scripts_holds_only_commands():
    for name in COMMANDS:
        tree = ast.parse((SCRIPTS / f"{name}.py").read_text(encoding="utf8"))
        apps = [
            node
            for node in tree.body
            if isinstance(node, ast.Assign)
            and ast.unparse(node.targets[0]) == "app"
            and ast.unparse(node.value).startswith("typer.Typer(")
        ]
        mains = [
            node
            for node in tree.body
            if isinstance(node, ast.If) and ast.unparse(node.test) == "__name__ == '__main__'"
        ]
        assert apps and mains, f"scripts/{name}.py is not a typer command (app = typer.Typer(...))"
        assert ast.unparse(mains[0].body[-1]) == "app()", f"scripts/{name}.py does not end in app()"


@pytest.mark.parametrize("path", PACKAGE_FILES, ids=lambda p: str(p.relative_to(SCRIPTS)))
def test_imports_point_down(path):
    own = path.relative_to(SCRIPTS).parts[0]
    for name in imported_modules(path):
        if name == "scripts":
            continue  # the package itself, e.g. to find its folder
        assert name.split(".")[1] not in COMMANDS, f"{path.name} imports the command {name}"
        target = stage_of(name)
        if own == "common":
            assert target == "common", f"common/{path.name} imports {name}: common is the bottom"
        assert target != "bench" or own == "bench", f"{path.name} imports {name} from bench/"


def test_the_quarantined_module_imports_nothing_from_this_project():
    assert not imported_modules(SCRIPTS / "common" / "spacy_internals.py")


# The stages, bottom up: a stage imports only itself and those before it (inference and packaging
# stand side by side above the workflow; bench serves the commands alone).
STAGE_ORDER = {
    "common": 0,
    "corpus": 1,
    "scoring": 2,
    "training": 3,
    "evaluation": 4,
    "workflow": 5,
    "inference": 6,
    "packaging": 6,
    "tuning": 6,
    "bench": 7,
}


def test_every_stage_has_its_place_in_the_order():
    assert STAGES <= set(STAGE_ORDER), f"stages without a place: {STAGES - set(STAGE_ORDER)}"


@pytest.mark.parametrize("path", PACKAGE_FILES, ids=lambda p: str(p.relative_to(SCRIPTS)))
def test_no_stage_imports_a_later_one(path):
    own = path.relative_to(SCRIPTS).parts[0]
    for name in imported_modules(path):
        target = stage_of(name)
        if target is None or target == own:
            continue
        assert STAGE_ORDER[target] < STAGE_ORDER[own], (
            f"{own}/{path.name} imports {name}: {target} does not come before {own}"
        )


def test_no_import_closes_a_cycle():
    """Imports at the top or inside functions: no file reaches itself again."""
    files = list(SCRIPTS.rglob("*.py"))
    edges = {f: {module_file(n) for n in imported_modules(f)} - {None, f} for f in files}
    state: dict[Path, int] = {}  # 1: on the path being walked, 2: done

    def walk(node: Path, path: list[Path]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if nxt.name == "__init__.py" and not has_code(nxt):
                continue
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt) :] + [nxt]
                raise AssertionError(
                    "import cycle: " + " -> ".join(str(p.relative_to(SCRIPTS)) for p in cycle)
                )
            if nxt not in state:
                walk(nxt, path + [nxt])
        state[node] = 2

    for file in sorted(files):
        if file not in state:
            walk(file, [file])
