"""The package meta tells users how well the pipeline did and how to read its categories; the
default wheel ships no code and names only spaCy's and spacy-transformers' components; fast_ner is
opt-in."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Callable

import pytest
from spacy.util import registry
from thinc.api import Config

from scripts.common import spacy_internals
from scripts.common.errors import UserError
from scripts.packaging.meta import describe, performance_from_metrics
from scripts.packaging.wheel import (
    check_names_resolve,
    package_pipeline,
    registered_names,
    use_fast_ner,
)
from tests.helpers import TEXTS, TRAIN, package_options, run_outside_repo

ENTS = {
    "p": 0.5,
    "r": 0.25,
    "f": 1 / 3,
    "n_docs": 9,
    "per_label": {"SKILL": {"p": 0.5, "r": 0.25, "f": 1 / 3}},
}


def cats(mode, thresholds=None):
    return {
        "mode": mode,
        "accuracy": 0.9,
        "macro_f": 0.8,
        "micro_f": 0.85,
        "macro_auc": 0.95,
        "n_docs": 50,
        "per_label": {"joy": {"p": 1.0, "r": 0.5, "f": 2 / 3}},
        "thresholds": thresholds,
    }


def test_description_gives_the_test_scores():
    text = describe(
        {"ents": ENTS, "textcat": cats("exclusive")},
        base_model="bert-base",
        components=["ner", "textcat"],
    )
    assert "fine-tuned from bert-base" in text
    assert "P 0.500, R 0.250, F 0.333 (9 docs)" in text
    assert "accuracy 0.900, macro F 0.800 (50 docs)" in text
    assert "threshold" not in text


def test_description_of_a_multilabel_pipeline_gives_its_tuned_threshold():
    thresholds = {"joy": {"model": 0.35, "best": 0.3}, "anger": {"model": 0.35, "best": 0.6}}
    text = describe(
        {"ents": None, "textcat": cats("multilabel", thresholds)},
        base_model="m",
        components=["textcat_multilabel"],
    )
    assert "score of 0.35 or more" in text


def test_performance_uses_spacys_meta_keys():
    performance = performance_from_metrics({"ents": ENTS, "textcat": cats("exclusive")})
    assert performance["ents_f"] == ENTS["f"]
    assert performance["cats_macro_f"] == 0.8 and performance["cats_accuracy"] == 0.9
    assert performance["ents_per_type"]["SKILL"]["r"] == 0.25
    assert "ents_confidence_auc" not in performance
    scored = {**ENTS, "confidence": {"auc": 0.8, "n_correct": 3, "n_wrong": 1, "by_threshold": []}}
    assert performance_from_metrics({"ents": scored})["ents_confidence_auc"] == 0.8


def test_the_packaged_config_names_fast_ner_for_spacys_ner_only():
    config = {
        "components": {
            "ner": {"factory": "ner"},
            "beam": {"factory": "beam_ner"},
            "textcat": {"factory": "textcat"},
        }
    }
    assert use_fast_ner(config)
    assert [block["factory"] for block in config["components"].values()] == [
        "fast_ner",
        "beam_ner",
        "textcat",
    ]
    assert not use_fast_ner({"components": {"textcat": {"factory": "textcat"}}})  # nothing to ship


@registry.scorers("test_package.project_scorer.v1")
def project_scorer() -> Callable:
    """A scorer only this test module registers, as a project's own would be."""
    return lambda examples: {}


def pipeline_config(ner_factory: str, textcat_scorer: str) -> dict:
    return {
        "nlp": {"lang": "en", "tokenizer": {"@tokenizers": "spacy.Tokenizer.v1"}},
        "components": {
            "transformer": {
                "factory": "transformer",
                "model": {
                    "@architectures": "spacy-transformers.TransformerModel.v3",
                    "get_spans": {"@span_getters": "spacy-transformers.strided_spans.v1"},
                },
            },
            "ner": {
                "factory": ner_factory,
                "model": {"@architectures": "spacy.TransitionBasedParser.v2"},
            },
            "textcat": {
                "factory": "textcat",
                "scorer": {"@scorers": textcat_scorer},
                "model": {"pooling": {"@layers": "reduce_mean.v1"}},
            },
        },
    }


def test_a_config_naming_project_functions_cannot_become_a_wheel_without_their_code():
    stock = pipeline_config("ner", "spacy.textcat_scorer.v2")
    check_names_resolve(stock, shipped=[], model_dir=Path("model"))
    with pytest.raises(UserError) as error:
        check_names_resolve(
            pipeline_config("fast_ner", "test_package.project_scorer.v1"),
            shipped=[],
            model_dir=Path("model"),
        )
    assert str(error.value).startswith(
        f"{Path('model/config.cfg')}: names fast_ner, test_package.project_scorer.v1, which only "
        "this project's code registers"
    )
    check_names_resolve(
        pipeline_config("fast_ner", "spacy.textcat_scorer.v2"),
        shipped=[spacy_internals],
        model_dir=Path("model"),
    )


def wheel_contents(wheel: Path) -> tuple[list[str], Config]:
    """The Python files inside a pipeline wheel and its packaged config."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        config_name = next(name for name in names if name.endswith("/config.cfg"))
        config = Config().from_str(archive.read(config_name).decode("utf8"), interpolate=False)
    return sorted(name for name in names if name.endswith(".py")), config


def stock_origin(registry_name: str, name: str) -> str:
    """The top package that registers a function: spaCy's, spacy-transformers' or thinc's."""
    return registry.get(registry_name, name).__module__.split(".")[0]


LOAD_BOTH = (
    "import json, sys, spacy\n"
    "out = {}\n"
    "for name in sys.argv[2:]:\n"
    "    nlp = spacy.load(name)\n"
    "    docs = list(nlp.pipe(json.loads(sys.argv[1])))\n"
    "    ents = [[(e.start_char, e.end_char, e.label_) for e in d.ents] for d in docs]\n"
    "    out[name] = {'ner': type(nlp.get_pipe('ner')).__name__, 'ents': ents}\n"
    "out['repo'] = sorted(m for m in sys.modules if m.split('.')[0] == 'scripts')\n"
    "print(json.dumps(out))\n"
)


@pytest.mark.slow
def test_the_default_wheel_ships_no_code_and_fast_ner_is_opt_in(tiny_pipeline, tmp_path):
    options = package_options(tiny_pipeline, tmp_path, metrics={"ents": None, "textcat": None})
    default = package_pipeline(**options, name="plain").wheel
    code, config = wheel_contents(default)
    assert code == ["en_plain/__init__.py"]
    for registry_name, name in registered_names(config):
        assert stock_origin(registry_name, name) in ("spacy", "spacy_transformers", "thinc"), name
    assert config["components"]["ner"]["factory"] == "ner"

    fast = package_pipeline(**options, name="fast", fast_ner=True).wheel
    code, config = wheel_contents(fast)
    assert code == ["en_fast/__init__.py", "en_fast/spacy_internals.py"]
    assert config["components"]["ner"]["factory"] == "fast_ner"

    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site)]
        + [str(default), str(fast)],
        check=True,
    )
    texts = [text for text in TEXTS if text] + [text for text, _, _ in TRAIN]
    out = run_outside_repo(
        LOAD_BOTH, json.dumps(texts), "en_plain", "en_fast", cwd=tmp_path, site=site
    )
    assert out["repo"] == []
    assert out["en_plain"]["ner"] == "EntityRecognizer"
    assert out["en_fast"]["ner"] == "FastEntityRecognizer"
    assert any(out["en_plain"]["ents"]), "the test needs a pipeline that finds entities"
    assert out["en_fast"]["ents"] == out["en_plain"]["ents"]
    fast_meta = json.loads((tmp_path / "packages/en_fast-0.0.1/meta.json").read_text())
    assert "relies on spaCy internals" in fast_meta["description"]


def test_the_command_stops_with_one_line_saying_what_to_run_first(tmp_path):
    from typer.testing import CliRunner

    from scripts.package import app

    runner = CliRunner()
    result = runner.invoke(app, [str(tmp_path / "model-best"), str(tmp_path), "--name", "x"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"✘ {tmp_path / 'model-best'}: no trained pipeline here; "
        "run the train step first (spacy project run train)"
    ]
    result = runner.invoke(
        app,
        [str(tmp_path / "model-best"), str(tmp_path), "--name", "x", "--fast-cpu"]
        + ["--test", str(tmp_path / "test.spacy")],
    )
    assert result.exit_code == 1
    assert "no test split to score the int8 build on; pass --test" in result.output
    assert len(result.output.strip().splitlines()) == 1
