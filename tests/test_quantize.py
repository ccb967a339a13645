"""scripts.quantize and package --fast-cpu: an int8 pipeline that saves, loads and installs as a wheel that
needs no code from this repository."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
import torch

from scripts.package import package_pipeline
from scripts.predict import describe_pipeline, predict_texts
from scripts.quantize import ARCHITECTURE, quantize_pipeline
from test_predict import TEXTS, tiny_pipeline  # noqa: F401  shared session fixture

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def int8_linears(nlp) -> int:
    model = nlp.get_pipe("transformer").model.transformer
    return sum(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in model.modules())


def test_quantized_pipeline_saves_and_loads_as_int8(tiny_pipeline, tmp_path):
    nlp = quantize_pipeline(spacy.load(tiny_pipeline))
    assert int8_linears(nlp) == 2 * 5 + 1  # per BERT layer: q, k, v, attention output, feed-forward in; the pooler
    assert nlp.config["components"]["transformer"]["model"]["@architectures"] == ARCHITECTURE
    expected = predict_texts(describe_pipeline(nlp), TEXTS)
    nlp.to_disk(tmp_path / "int8")
    loaded = spacy.load(tmp_path / "int8")
    assert int8_linears(loaded) == 11
    assert predict_texts(describe_pipeline(loaded), TEXTS) == expected
    assert quantize_pipeline(loaded) is loaded and int8_linears(loaded) == 11  # twice is once


def test_int8_scores_stay_close_to_float(tiny_pipeline):
    float_records = predict_texts(describe_pipeline(spacy.load(tiny_pipeline)), TEXTS)
    int8_records = predict_texts(describe_pipeline(quantize_pipeline(spacy.load(tiny_pipeline))), TEXTS)
    for a, b in zip(float_records, int8_records):
        assert max(abs(a["cats"][k] - b["cats"][k]) for k in a["cats"]) < 0.05


def test_fast_cpu_wheel_loads_without_this_repository(tiny_pipeline, tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps({"ents": None, "textcat": None}), encoding="utf8")
    wheel = package_pipeline(model_dir=tiny_pipeline, output_dir=tmp_path / "packages", name="tiny", version="0.0.1",
                             metrics_path=tmp_path / "metrics.json", transformer=str(tiny_pipeline.parent / "tiny-pipeline-bert"), lang="en", int8=True)
    assert wheel.name == "en_tiny_int8-0.0.1-py3-none-any.whl"
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)], check=True)
    expected = predict_texts(describe_pipeline(quantize_pipeline(spacy.load(tiny_pipeline))), TEXTS)
    script = (
        "import json, sys, spacy\n"
        "nlp = spacy.load('en_tiny_int8')\n"
        "assert not [m for m in sys.modules if m == 'scripts' or m.startswith('scripts.')], 'repo code was imported'\n"
        "docs = list(nlp.pipe(json.loads(sys.argv[1])))\n"
        "print(json.dumps({'meta': nlp.meta['name'], 'cats': [d.cats for d in docs], 'ents': [[(e.start_char, e.end_char, e.label_) for e in d.ents] for d in docs]}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(site)}
    texts = [t for t in TEXTS if t]
    done = subprocess.run([sys.executable, "-c", script, json.dumps(texts)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["meta"] == "tiny_int8"
    nonempty = [record for text, record in zip(TEXTS, expected) if text]
    assert out["ents"] == [[[e["start"], e["end"], e["label"]] for e in r["entities"]] for r in nonempty]
    assert [{k: round(v, 6) for k, v in cats.items()} for cats in out["cats"]] == [r["cats"] for r in nonempty]
    meta = json.loads((tmp_path / "packages/en_tiny_int8-0.0.1/meta.json").read_text())
    assert meta["description"].startswith("int8 build for CPU inference")


def test_the_shipped_module_imports_nothing_from_this_repository():
    source = (Path(__file__).resolve().parent.parent / "scripts/quantize.py").read_text(encoding="utf8")
    assert "from scripts" not in source and "import scripts" not in source


def test_feed_forward_outputs_stay_float32_in_bert_and_distilbert_naming():
    from scripts.quantize import int8_linear_names

    class Block(torch.nn.Module):
        def __init__(self, names):
            super().__init__()
            for name in names:
                setattr(self, name, torch.nn.Linear(2, 2))

    bert_layer = torch.nn.Module()
    bert_layer.attention = torch.nn.Module()
    bert_layer.attention.output = Block(["dense"])
    bert_layer.intermediate = Block(["dense"])
    bert_layer.output = Block(["dense"])
    encoder = torch.nn.Module()
    encoder.layer = torch.nn.ModuleList([bert_layer])
    distil = torch.nn.Module()
    distil.layer = torch.nn.ModuleList([Block(["q_lin"])])
    distil.layer[0].ffn = Block(["lin1", "lin2"])
    model = torch.nn.Module()
    model.encoder, model.transformer = encoder, distil
    assert int8_linear_names(model) == ["encoder.layer.0.attention.output.dense", "encoder.layer.0.intermediate.dense",
                                        "transformer.layer.0.q_lin", "transformer.layer.0.ffn.lin1"]
