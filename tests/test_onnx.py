"""scripts/packaging/onnx_transformer.py and package --onnx: an ONNX Runtime pipeline that gives
the float32 pipeline's entities and categories, saves, loads and installs as a wheel whose own code
(onnx_transformer.py and spacy_internals.py) is all it needs from this repository."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import zipfile

import pytest
import spacy

from scripts.bench.throughput import REFERENCE, benchmark, reference_model
from scripts.common.errors import UserError
from scripts.common.spacy_internals import LAYER_TRANSFORMER
from scripts.inference.predict import describe_pipeline, predict_texts
from scripts.packaging.engines import ONNX, Splits
from scripts.packaging.onnx_pipeline import check_onnx_inputs, is_onnx, onnx_pipeline
from scripts.packaging.onnx_transformer import ONNX_LAYER, OnnxShim
from scripts.packaging.wheel import package_pipeline
from tests.helpers import (
    FLOAT_METRICS,
    TEXTS,
    TRAIN,
    needs_extra,
    package_options,
    run_outside_repo,
    write_gold,
)

# Building or running the ONNX pipeline needs the optional extra; refusing to build does not.
needs_onnx = needs_extra("onnx", "onnxruntime", "onnx")

# How far a category score of the ONNX build may be from float32's: float32 ONNX differs by
# rounding only, int8 weights move scores a little (entities must stay the same on these texts).
CATS_TOLERANCE = {False: 1e-4, True: 0.05}


def entities(records: list[dict]) -> list[list]:
    return [[(e["start"], e["end"], e["label"]) for e in r["entities"]] for r in records]


def cats_distance(a: list[dict], b: list[dict]) -> float:
    return max(
        abs(x["cats"][k] - y["cats"][k]) for x, y in zip(a, b, strict=True) for k in x["cats"]
    )


@pytest.fixture(scope="module")
def float_records(tiny_pipeline):
    records = predict_texts(describe_pipeline(spacy.load(tiny_pipeline)), TEXTS)
    assert any(r["entities"] for r in records), "the test needs a pipeline that finds entities"
    return records


@needs_onnx
@pytest.mark.parametrize("quantize", [False, True], ids=["float32", "int8"])
def test_the_onnx_pipeline_predicts_as_float32_and_saves_and_loads_alike(
    tiny_pipeline, tmp_path, float_records, quantize
):
    nlp = onnx_pipeline(spacy.load(tiny_pipeline), quantize=quantize)
    model_config = nlp.config["components"]["transformer"]["model"]
    assert model_config["@architectures"] == LAYER_TRANSFORMER
    assert model_config["layer"]["@layers"] == ONNX_LAYER
    assert nlp.get_pipe("transformer").model.transformer is None  # no PyTorch model left
    records = predict_texts(describe_pipeline(nlp), TEXTS)
    assert entities(records) == entities(float_records)
    assert cats_distance(records, float_records) < CATS_TOLERANCE[quantize]
    nlp.to_disk(tmp_path / "onnx")
    assert not (tmp_path / "onnx/transformer/model").is_dir()  # one file: ONNX, config, tokenizer
    loaded = spacy.load(tmp_path / "onnx")
    assert is_onnx(loaded)
    assert predict_texts(describe_pipeline(loaded), TEXTS) == records
    assert onnx_pipeline(loaded) is loaded and is_onnx(loaded)  # twice is once
    # spaCy copies and pickles models (Model.copy, multiprocessing): a session cannot be; its bytes
    shim = loaded.get_pipe("transformer").model.layers[0].shims[0]
    assert isinstance(shim, OnnxShim)
    assert copy.deepcopy(shim).to_bytes() == shim.to_bytes()


@needs_onnx
def test_the_onnx_pipeline_does_not_train(tiny_pipeline):
    nlp = onnx_pipeline(spacy.load(tiny_pipeline), quantize=False)
    with pytest.raises(ValueError, match="runs inference only; train the float32 pipeline"):
        nlp.get_pipe("transformer").model.begin_update([nlp.make_doc(TRAIN[0][0])])


@needs_onnx
def test_the_benchmark_measures_an_onnx_pipeline_against_pytorch_float32(tiny_pipeline, tmp_path):
    nlp = onnx_pipeline(spacy.load(tiny_pipeline))
    reference = reference_model(nlp.get_pipe("transformer").model)
    assert type(reference).__name__ == "BertModel"
    assert next(reference.parameters()).dtype.is_floating_point
    assert reference.config.hidden_size == 32 and reference.config.num_hidden_layers == 2
    nlp.to_disk(tmp_path / "onnx")
    result = benchmark(model=str(tmp_path / "onnx"), texts=[t for t in TEXTS if t], repeats=1)
    assert result["bare_model"] == REFERENCE
    assert result["ratio"] > 0 and result["pipeline_words_per_s"] > 0


LOAD_AND_PREDICT = (
    "import json, sys, spacy\n"
    "nlp = spacy.load('en_tiny_onnx')\n"
    "repo = [m for m in sys.modules if m.split('.')[0] == 'scripts']\n"
    "assert not repo, f'repo code was imported: {repo}'\n"
    "docs = list(nlp.pipe(json.loads(sys.argv[1])))\n"
    "ents = [[(e.start_char, e.end_char, e.label_) for e in d.ents] for d in docs]\n"
    "cats = [d.cats for d in docs]\n"
    "print(json.dumps({'meta': nlp.meta, 'cats': cats, 'ents': ents}))\n"
)


@pytest.mark.slow
@needs_onnx
def test_onnx_wheel_loads_without_this_repository_and_carries_its_own_test_scores(
    tiny_pipeline, tmp_path, float_records
):
    options = dict(
        package_options(tiny_pipeline, tmp_path, metrics=FLOAT_METRICS), name="tiny", engine=ONNX
    )
    with pytest.raises(UserError, match="no test split to score the ONNX build on; pass --test"):
        package_pipeline(**options, splits=Splits(test=tmp_path / "missing.spacy"))
    packaged = package_pipeline(**options, splits=Splits(test=write_gold(tmp_path / "test.spacy")))
    wheel = packaged.wheel
    assert wheel.name == "en_tiny_onnx-0.0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        code = sorted(name for name in archive.namelist() if name.endswith(".py"))
    assert code == [
        f"en_tiny_onnx/{stem}.py" for stem in ("__init__", "onnx_transformer", "spacy_internals")
    ]
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site)]
        + [str(wheel)],
        check=True,
    )
    texts = [t for t in TEXTS if t]
    out = run_outside_repo(LOAD_AND_PREDICT, json.dumps(texts), cwd=tmp_path, site=site)
    expected = [r for text, r in zip(TEXTS, float_records) if text]
    assert [[tuple(e) for e in ents] for ents in out["ents"]] == entities(expected)
    assert (
        max(abs(cats[k] - r["cats"][k]) for cats, r in zip(out["cats"], expected) for k in cats)
        < CATS_TOLERANCE[True]
    )
    meta = out["meta"]
    assert meta["name"] == "tiny_onnx"
    assert meta["description"].startswith("ONNX build for CPU inference")
    assert "entity F 0.123" in meta["description"]  # the float32 scores, to read its own against
    assert meta["performance"]["ents_f"] == packaged.metrics["ents"]["f"]
    assert meta["performance"]["cats_macro_f"] == packaged.metrics["textcat"]["macro_f"]
    assert (meta["performance"]["ents_f"], meta["performance"]["cats_macro_f"]) != (0.123, 0.456)
    assert any(r.startswith("onnxruntime>=") for r in meta["requirements"])
    assert any(r.startswith("spacy-transformers") for r in meta["requirements"])


def test_bad_inputs_stop_with_one_line(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from scripts.package import app

    result = CliRunner().invoke(
        app,
        [str(tmp_path / "model-best"), str(tmp_path), "--name", "x", "--onnx"]
        + ["--test", str(tmp_path / "test.spacy")],
    )
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"✘ {tmp_path / 'test.spacy'}: no test split to score the ONNX build on; "
        "pass --test with the evaluate step's data (corpus/test.spacy)"
    ]
    test_path = write_gold(tmp_path / "test.spacy")
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(UserError, match="onnxruntime is not installed, and the ONNX build needs"):
        check_onnx_inputs(test_path=test_path)
