"""scripts/packaging/int8.py and package --fast-cpu: an int8 pipeline that saves, loads and installs
as a wheel whose own code (int8.py and spacy_internals.py) is all it needs from this repository."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import warnings
import zipfile

import pytest
import spacy
import torch

from scripts.bench.throughput import REFERENCE, bare_transformer, benchmark
from scripts.common.errors import UserError
from scripts.common.spacy_internals import CONVERTED_TRANSFORMER, swap_in_converted_transformer
from scripts.evaluation.run import evaluate_model
from scripts.inference.predict import describe_pipeline, predict_texts
from scripts.packaging.engines import INT8, Splits, compare_scores
from scripts.packaging.int8 import (
    ALPHA,
    QUANTIZE,
    QUANTIZE_V1,
    Int8Linear,
    SmoothedLinear,
    quantize_module,
    smooth_module,
    smoothing_scale,
)
from scripts.packaging.int8_pipeline import quantize_pipeline
from scripts.packaging.wheel import package_pipeline
from tests.helpers import (
    FLOAT_METRICS,
    PROJECT_ROOT,
    TEXTS,
    TRAIN,
    package_options,
    run_outside_repo,
    write_gold,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def int8_linears(nlp) -> int:
    model = nlp.get_pipe("transformer").model.transformer
    return sum(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in model.modules())


CALIBRATION = [text for text, _, _ in TRAIN]


def inv_scales(nlp) -> list[torch.Tensor]:
    return [
        module.inv_scale
        for module in nlp.get_pipe("transformer").model.transformer.modules()
        if isinstance(module, SmoothedLinear)
    ]


def test_quantized_pipeline_saves_and_loads_as_int8_with_its_smoothing(tiny_pipeline, tmp_path):
    nlp = quantize_pipeline(spacy.load(tiny_pipeline), calibration=CALIBRATION)
    assert (
        int8_linears(nlp) == 2 * 6 + 1
    )  # per BERT layer: q, k, v, attention output, feed-forward in and out; the pooler
    scales = [scale.clone() for scale in inv_scales(nlp)]
    assert len(scales) == 13 and all(
        not torch.equal(scale, torch.ones_like(scale)) for scale in scales
    )
    model_config = nlp.config["components"]["transformer"]["model"]
    assert model_config["@architectures"] == CONVERTED_TRANSFORMER
    assert model_config["convert"] == {"@misc": QUANTIZE}
    expected = predict_texts(describe_pipeline(nlp), TEXTS)
    nlp.to_disk(tmp_path / "int8")
    loaded = spacy.load(tmp_path / "int8")
    assert int8_linears(loaded) == 13
    for module in loaded.get_pipe("transformer").model.transformer.modules():
        if isinstance(module, torch.ao.nn.quantized.dynamic.Linear):
            # 8-bit activations, 7-bit weights: a uint8 x int8 pair summed cannot overflow int16
            assert isinstance(module, Int8Linear)
            weights = module.weight().int_repr()
            assert weights.min() >= -64 and weights.max() <= 63 and weights.abs().max() >= 60
    assert all(torch.equal(a, b) for a, b in zip(inv_scales(loaded), scales, strict=True))
    assert predict_texts(describe_pipeline(loaded), TEXTS) == expected
    assert quantize_pipeline(loaded) is loaded and int8_linears(loaded) == 13  # twice is once


def test_an_int8_pipeline_built_before_v2_loads_with_its_feed_forward_outputs_float32(
    tiny_pipeline, tmp_path
):
    nlp = spacy.load(tiny_pipeline)
    model = nlp.get_pipe("transformer").model.transformer
    quantized = quantize_module(model, version=1)
    swap_in_converted_transformer(
        nlp, component="transformer", model=quantized, convert={"@misc": QUANTIZE_V1}
    )
    assert int8_linears(nlp) == 2 * 5 + 1
    expected = predict_texts(describe_pipeline(nlp), TEXTS)
    nlp.to_disk(tmp_path / "int8-v1")
    loaded = spacy.load(tmp_path / "int8-v1")
    assert int8_linears(loaded) == 11
    transformer = loaded.get_pipe("transformer").model.transformer
    assert not any(isinstance(m, Int8Linear) for m in transformer.modules())
    assert predict_texts(describe_pipeline(loaded), TEXTS) == expected


def test_loading_int8_weights_is_quiet_and_leaves_the_process_warning_filters_alone(
    tiny_pipeline, tmp_path
):
    quantize_pipeline(spacy.load(tiny_pipeline), calibration=CALIBRATION).to_disk(tmp_path / "int8")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = spacy.load(tmp_path / "int8")
    assert int8_linears(loaded) == 13
    assert not [w for w in caught if "TypedStorage" in str(w.message)]
    assert not [f for f in warnings.filters if f[1] is not None and "TypedStorage" in f[1].pattern]


def test_the_benchmark_times_an_int8_pipeline_against_float32_when_asked(tiny_pipeline, tmp_path):
    nlp = quantize_pipeline(spacy.load(tiny_pipeline), calibration=CALIBRATION)
    own, _, _, is_own = bare_transformer(nlp)
    assert is_own and own is nlp.get_pipe("transformer").model.transformer
    reference, _, _, is_own = bare_transformer(nlp, float32=True)
    assert not is_own and reference is not own
    assert not any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in reference.modules())
    assert reference.config.hidden_size == own.config.hidden_size
    nlp.to_disk(tmp_path / "int8")
    texts = [t for t in TEXTS if t]
    assert "bare_model" not in benchmark(model=str(tmp_path / "int8"), texts=texts, repeats=1)
    result = benchmark(model=str(tmp_path / "int8"), texts=texts, repeats=1, float32_bare=True)
    assert result["bare_model"] == REFERENCE and result["ratio"] > 0


def test_int8_scores_stay_close_to_float(tiny_pipeline):
    float_records = predict_texts(describe_pipeline(spacy.load(tiny_pipeline)), TEXTS)
    int8_records = predict_texts(
        describe_pipeline(quantize_pipeline(spacy.load(tiny_pipeline), calibration=CALIBRATION)),
        TEXTS,
    )
    for a, b in zip(float_records, int8_records):
        assert max(abs(a["cats"][k] - b["cats"][k]) for k in a["cats"]) < 0.05


@pytest.mark.slow
def test_fast_cpu_wheel_loads_without_this_repository_and_carries_its_own_test_scores(
    tiny_pipeline, tmp_path
):
    test_path = write_gold(tmp_path / "test.spacy")
    options = dict(
        package_options(tiny_pipeline, tmp_path, metrics=FLOAT_METRICS), name="tiny", engine=INT8
    )
    with pytest.raises(UserError, match="no test split to score the int8 build on; pass --test"):
        package_pipeline(
            **options, splits=Splits(test=tmp_path / "missing.spacy", calibration=test_path)
        )
    with pytest.raises(
        UserError, match="no texts to calibrate the int8 build on; pass --calibration"
    ):
        package_pipeline(
            **options, splits=Splits(test=test_path, calibration=tmp_path / "missing.spacy")
        )
    packaged = package_pipeline(
        **options, splits=Splits(test=test_path, calibration=test_path)
    )  # calibrated on TRAIN's texts
    wheel = packaged.wheel
    assert wheel.name == "en_tiny_int8-0.0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        code = sorted(name for name in archive.namelist() if name.endswith(".py"))
    assert code == [f"en_tiny_int8/{stem}.py" for stem in ("__init__", "int8", "spacy_internals")]
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
    )
    expected = predict_texts(
        describe_pipeline(quantize_pipeline(spacy.load(tiny_pipeline), calibration=CALIBRATION)),
        TEXTS,
    )
    script = (
        "import json, sys, spacy\n"
        "nlp = spacy.load('en_tiny_int8')\n"
        "repo = [m for m in sys.modules if m.split('.')[0] == 'scripts']\n"
        "assert not repo, f'repo code was imported: {repo}'\n"
        "docs = list(nlp.pipe(json.loads(sys.argv[1])))\n"
        "ents = [[(e.start_char, e.end_char, e.label_) for e in d.ents] for d in docs]\n"
        "cats = [d.cats for d in docs]\n"
        "print(json.dumps({'meta': nlp.meta['name'], 'cats': cats, 'ents': ents}))\n"
    )
    texts = [t for t in TEXTS if t]
    out = run_outside_repo(script, json.dumps(texts), cwd=tmp_path, site=site)
    assert out["meta"] == "tiny_int8"
    nonempty = [record for text, record in zip(TEXTS, expected) if text]
    assert out["ents"] == [
        [[e["start"], e["end"], e["label"]] for e in r["entities"]] for r in nonempty
    ]
    assert [{k: round(v, 6) for k, v in cats.items()} for cats in out["cats"]] == [
        r["cats"] for r in nonempty
    ]
    meta = json.loads((tmp_path / "packages/en_tiny_int8-0.0.1/meta.json").read_text())
    assert meta["description"].startswith("int8 build for CPU inference")
    assert "SmoothQuant rescaling calibrated on 6 texts of test.spacy" in meta["description"]
    assert (
        "the float32 pipeline it was made from scored entity F 0.123, textcat macro F 0.456"
        in meta["description"]
    )
    quantize_pipeline(spacy.load(tiny_pipeline), calibration=CALIBRATION).to_disk(tmp_path / "int8")
    own = evaluate_model(
        model=str(tmp_path / "int8"), data_path=test_path, output_dir=tmp_path / "eval", gpu_id="-1"
    )
    assert (
        packaged.metrics["ents"]["f"] == own["ents"]["f"]
        and packaged.metrics["textcat"]["macro_f"] == own["textcat"]["macro_f"]
    )
    assert meta["performance"]["ents_f"] == own["ents"]["f"] != 0.123
    assert meta["performance"]["cats_macro_f"] == own["textcat"]["macro_f"] != 0.456


def test_a_converted_build_is_compared_with_float32_and_warned_of_more_than_half_a_point_lost():
    int8 = {"ents": {"f": 0.118}, "textcat": {"macro_f": 0.4575}}
    lines, warnings = compare_scores(FLOAT_METRICS, int8, engine=INT8)
    assert lines == [
        "entity F: int8 0.118 against float32 0.123 (-0.5 points)",
        "textcat macro F: int8 0.458 against float32 0.456 (+0.2 points)",
    ]
    assert warnings == []
    lines, warnings = compare_scores(
        FLOAT_METRICS, {"ents": {"f": 0.1}, "textcat": None}, engine=INT8
    )
    assert lines == ["entity F: int8 0.100 against float32 0.123 (-2.3 points)"]
    assert warnings == [
        "the int8 build loses 2.3 points of entity F on the test split; "
        "ship the float32 wheel where that matters"
    ]


def test_smoothing_keeps_the_float_output_and_cuts_the_int8_error_of_an_outlier_channel():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32))
    x = torch.randn(512, 64)
    x[:, 3] *= 60  # the kind of channel a transformer's hidden states have a few of
    x[:, 17] *= 25
    expected = model(x).detach()
    input_max = {"0": x.abs().amax(0)}
    smoothed = copy.deepcopy(model)
    assert smooth_module(smoothed, input_max=input_max) == ["0.linear"]
    torch.testing.assert_close(smoothed(x), expected, rtol=1e-4, atol=1e-4)

    def error(quantized):
        return float((quantized(x) - expected).norm() / expected.norm())

    errors = {
        version: (
            error(quantize_module(copy.deepcopy(model), version=version)),
            error(quantize_module(copy.deepcopy(model), input_max=input_max, version=version)),
        )
        for version in (1, 2)
    }
    (plain_v1, smooth_v1), (plain, smooth) = errors[1], errors[2]
    assert smooth_v1 < plain_v1 / 3, errors[1]
    # v2's 8-bit activations leave the unsmoothed layer half v1's error; smoothing halves it again
    assert plain < plain_v1 * 0.6 and smooth < plain / 2, errors


def test_a_quiet_calibration_channel_cannot_be_blown_up():
    input_max = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0])
    scale = smoothing_scale(input_max, torch.ones(2, 5))
    assert float(scale[0]) == pytest.approx(
        0.02**ALPHA
    )  # floored at 1% of the median maximum (2.0)


# What `spacy package --code` does with a code file at build time: import it by file stem, alone.
IMPORT_ALONE = (
    "import sys\n"
    "from spacy.util import import_file, registry\n"
    "import_file('int8', sys.argv[1])\n"
    "quantize = registry.misc.get(sys.argv[2])()\n"
    "print(quantize.__name__, sorted(m for m in sys.modules if m.split('.')[0] in "
    "('scripts', 'spacy_internals')))\n"
)


@pytest.mark.slow
def test_the_shipped_module_imports_on_its_own_without_this_repository(tmp_path):
    done = subprocess.run(
        [sys.executable, "-I", "-c", IMPORT_ALONE, str(PROJECT_ROOT / "scripts/packaging/int8.py")]
        + [QUANTIZE],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["quantize_module", "[]"]


def test_v1_keeps_feed_forward_outputs_float32_in_bert_and_distilbert_naming():
    from scripts.packaging.int8 import int8_linear_names

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
    assert int8_linear_names(model, version=1) == [
        "encoder.layer.0.attention.output.dense",
        "encoder.layer.0.intermediate.dense",
        "transformer.layer.0.q_lin",
        "transformer.layer.0.ffn.lin1",
    ]
    assert int8_linear_names(model) == [
        "encoder.layer.0.attention.output.dense",
        "encoder.layer.0.intermediate.dense",
        "encoder.layer.0.output.dense",
        "transformer.layer.0.q_lin",
        "transformer.layer.0.ffn.lin1",
        "transformer.layer.0.ffn.lin2",
    ]
