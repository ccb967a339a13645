"""The whole workflow, end to end, as a user runs it: `spacy project run all`, then the wheel;
and project.yml's steps are the stages of scripts/workflow/stages.py, in its run folder layout.

Training uses a tiny BERT built here (random weights) and one epoch, set through
WEASEL_CONFIG_OVERRIDES, so the run takes seconds; the real defaults are exercised by
`python -m spacy project run all` itself. scripts.bench_train runs the same stages through
run_all() (tests/test_bench_train.py).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
import spacy
from spacy.util import load_config
from weasel.util import load_project_config

from scripts.scoring.pipeline import load_pipeline
from scripts.workflow.stages import BASE_CONFIG, STAGES, RunFolder
from tests.helpers import PROJECT_ROOT, write_tiny_bert

PROJECT_FILES = ["project.yml", "configs", "scripts", "assets"]
PROJECT = load_project_config(PROJECT_ROOT)  # the vars' defaults filled in, as weasel runs it
COMMANDS = {command["name"]: command for command in PROJECT["commands"]}


def words_of(step: str) -> list[str]:
    """The words of a step's one script line, after `python -m scripts.<command>`."""
    [line] = COMMANDS[step]["script"]
    return shlex.split(line)[3:]


def option(words: list[str], name: str) -> str:
    return words[words.index(name) + 1]


def test_project_yml_runs_the_workflows_stages_in_its_order_then_packages():
    assert PROJECT["workflows"]["all"] == [*STAGES, "package"]


def test_project_yml_steps_read_and_write_the_project_run_folder():
    run = RunFolder.project()
    splits = [run.split(name).as_posix() for name in ("train", "dev", "test")]
    convert = words_of("convert")
    assert option(convert, "--output-dir") == run.corpus.as_posix()
    assert COMMANDS["convert"]["outputs"][:3] == splits
    config = words_of("config")
    assert config[:2] == [str(BASE_CONFIG.relative_to(PROJECT_ROOT)), run.config.as_posix()]
    assert option(config, "--train") == splits[0]
    assert words_of("labels") == [run.config.as_posix(), run.labels.as_posix()]
    train = words_of("train")
    assert [train[0], option(train, "--output")] == [run.config.as_posix(), run.training.as_posix()]
    assert run.model_best.as_posix() in COMMANDS["train"]["outputs"]
    assert run.curves.as_posix() in COMMANDS["train"]["outputs"]
    evaluate = words_of("evaluate")
    assert evaluate[:2] == [run.model_best.as_posix(), splits[2]]
    assert option(evaluate, "--output") == run.evaluation.as_posix()
    assert option(evaluate, "--curves") == run.curves.as_posix()


def test_the_base_config_points_at_the_project_run_folder():
    """project.yml's config step keeps configs/base.cfg's [paths]; the workflow's config stage
    writes the run folder's: for the project's folder they are the same."""
    paths = load_config(BASE_CONFIG, interpolate=False)["paths"]
    expected = RunFolder.project().config_paths()
    assert {key: paths[key.removeprefix("paths.")] for key in expected} == expected


def copy_project(target: Path) -> Path:
    target.mkdir(parents=True)
    for name in PROJECT_FILES:
        source = PROJECT_ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, target / name)
    return target


def run_project_ok(project: Path, *args: str, overrides: str) -> subprocess.CompletedProcess:
    result = run_project(project, *args, overrides=overrides)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def fresh_venv_sharing_installed_packages(env_dir: Path) -> Path:
    """A new virtualenv that sees the test interpreter's installed packages, not this repo."""
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    shared = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(purelib) / "installed_packages.pth").write_text("\n".join(sorted(shared)) + "\n")
    return python


def run_project(project: Path, *args: str, overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "WEASEL_CONFIG_OVERRIDES": overrides, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "spacy", "project", "run", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow  # spacy project run all, then a wheel in a fresh venv
def test_project_run_all_builds_a_wheel_that_works_in_a_fresh_venv(tmp_path):
    project = copy_project(tmp_path / "project")
    base_model = write_tiny_bert(tmp_path / "tiny-bert")
    overrides = f"--vars.transformer {base_model} --vars.max_epochs 1"

    result = run_project_ok(project, "all", overrides=overrides)
    assert "Training on CPU" in result.stderr

    for produced in [
        "corpus/train.spacy",
        "corpus/dev.spacy",
        "corpus/test.spacy",
        "training/config.cfg",
        "training/labels/ner.json",
        "training/labels/textcat.json",
        "training/model-best",
        "training/metrics.json",
    ]:
        assert (project / produced).exists(), produced
    metrics = json.loads((project / "training/metrics.json").read_text())
    # Each task is scored on the test documents that carry its annotation only.
    test_docs = list(
        spacy.tokens.DocBin()
        .from_disk(project / "corpus/test.spacy")
        .get_docs(spacy.blank("en").vocab)
    )
    assert metrics["ents"]["n_docs"] == sum(doc.has_annotation("ENT_IOB") for doc in test_docs)
    assert metrics["textcat"]["n_docs"] == sum(bool(doc.cats) for doc in test_docs)
    assert 0 < metrics["ents"]["n_docs"] < len(test_docs)

    wheels = list((project / "packages/en_job_postings-0.0.1/dist").glob("*.whl"))
    assert [w.name for w in wheels] == ["en_job_postings-0.0.1-py3-none-any.whl"]
    meta = json.loads((project / "training/model-best/meta.json").read_text())
    assert set(meta["labels"]["ner"]) == {"SKILL", "DIPLOMA", "DIPLOMA_MAJOR", "EXPERIENCE"}

    # The package carries its weights: remove the base model, install into a fresh venv, use it.
    shutil.rmtree(base_model)
    python = fresh_venv_sharing_installed_packages(tmp_path / "venv")
    # --force-reinstall: the packages the venv shares may hold an older build of this wheel.
    install = subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", wheels[0]],
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stderr
    use = (
        "import json, spacy, sys\n"
        "nlp = spacy.load('en_job_postings')\n"
        "texts = ['We are hiring a welder with 4 years of experience in TIG welding.',\n"
        "         'Parking is free for staff.']\n"
        "docs = list(nlp.pipe(texts))\n"
        "repo = [m for m in sys.modules if m.split('.')[0] == 'scripts']\n"
        "assert not repo, f'repo code was imported: {repo}'\n"
        "ents = [[(e.text, e.label_) for e in d.ents] for d in docs]\n"
        "ner = type(nlp.get_pipe('ner')).__name__\n"
        "cats = [d.cats for d in docs]\n"
        "pipeline = nlp.pipe_names\n"
        "nlp.enable_pipe('entity_confidence')\n"
        "scores = [list(d.spans['ents_scored'].attrs['scores']) for d in nlp.pipe(texts)]\n"
        "out = {'pipeline': pipeline, 'meta': nlp.meta, 'cats': cats, 'ents': ents}\n"
        "print(json.dumps({**out, 'ner': ner, 'scores': scores}))\n"
    )
    loaded = subprocess.run(
        [python, "-c", use],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""},
    )
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    out = json.loads(loaded.stdout)
    assert out["pipeline"] == ["transformer", "ner", "textcat"]  # entity scores off by default
    assert out["ner"] == "EntityRecognizer"  # spaCy's own; the wheel ships entity_confidence only
    assert [len(scores) for scores in out["scores"]] == [len(ents) for ents in out["ents"]]
    assert all(
        set(cats) == {"responsibilities", "requirements", "benefits", "company", "application"}
        for cats in out["cats"]
    )
    assert all(abs(sum(cats.values()) - 1.0) < 1e-4 for cats in out["cats"])
    assert len(out["ents"]) == 2
    assert out["meta"]["performance"]["ents_f"] == pytest.approx(metrics["ents"]["f"], abs=1e-6)
    assert out["meta"]["license"] == "MIT"
    assert any(req.startswith("spacy-transformers") for req in out["meta"]["requirements"])
    assert "held-out test split" in out["meta"]["description"]


@pytest.mark.slow  # spacy project run all, three times
def test_weasel_reruns_only_what_changed_and_new_vars_retrain_from_scratch(tmp_path):
    project = copy_project(tmp_path / "project")
    base_model = write_tiny_bert(tmp_path / "tiny-bert")
    base = f"--vars.transformer {base_model} --vars.max_epochs 1"
    run_project_ok(project, "all", overrides=base)

    # Same data, same vars: convert runs (its inputs are vars) but writes identical bytes, so
    # nothing downstream re-runs.
    again = run_project_ok(project, "all", overrides=base)
    for step in ["config", "labels", "train", "evaluate", "package"]:
        assert f"Skipping '{step}': nothing changed" in again.stdout, step

    sentences = [
        [
            ("Wir", "O"),
            ("suchen", "O"),
            ("Erfahrung", "O"),
            ("mit", "O"),
            ("Python", "B-SKILL"),
            (".", "O"),
        ],
        [
            ("Kenntnisse", "O"),
            ("in", "O"),
            ("SAP", "B-SKILL"),
            ("FI", "I-SKILL"),
            ("sind", "O"),
            ("wichtig", "O"),
        ],
        [
            ("Sie", "O"),
            ("haben", "O"),
            ("ein", "O"),
            ("Studium", "O"),
            ("der", "O"),
            ("Informatik", "B-MAJOR"),
        ],
    ]
    data = (
        "\n\n".join("\n".join(f"{w}\t{t}" for w, t in sentence) for sentence in sentences * 10)
        + "\n"
    )
    (project / "assets/de.tsv").write_text(data, encoding="utf8")
    new = run_project_ok(
        project,
        "all",
        overrides=f"{base} --vars.train assets/de.tsv --vars.dev '' --vars.test '' "
        "--vars.components ner --vars.lang de",
    )
    assert "Skipping 'train'" not in new.stdout
    nlp = load_pipeline(str(project / "training/model-best"))  # registers entity_confidence
    assert nlp.lang == "de"
    assert nlp.component_names == ["transformer", "ner", "entity_confidence"]
    assert nlp.disabled == ["entity_confidence"]
    assert set(nlp.get_pipe("ner").labels) == {"SKILL", "MAJOR"}
    assert (
        project / "packages/de_job_postings-0.0.1/dist/de_job_postings-0.0.1-py3-none-any.whl"
    ).is_file()
