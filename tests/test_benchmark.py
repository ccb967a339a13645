"""scripts.benchmark and scripts.loadtest: they print the right figures. Speed itself is never
asserted here."""

from __future__ import annotations

import json
import threading
import time

import pytest
import spacy
from typer.testing import CliRunner

from scripts.bench.loadtest import check_loopback, free_port, loadtest, parse_levels, percentile
from scripts.bench.throughput import benchmark, generated_texts, length_groups, sample_texts
from scripts.benchmark import app
from scripts.common.errors import UserError
from tests.helpers import TEXTS

FIGURES = {
    "model",
    "device",
    "threads",
    "texts",
    "words",
    "batch_size",
    "max_batch_items",
    "repeats",
    "pipeline_words_per_s",
    "transformer_words_per_s",
    "ratio",
    "peak_memory_mb",
    "overrides",
}


def test_benchmark_reports_both_speeds_their_ratio_and_memory(tiny_pipeline):
    texts = [text for text in TEXTS if text] * 3
    result = benchmark(model=str(tiny_pipeline), texts=texts, batch_size=4, repeats=1)
    assert set(result) == FIGURES
    assert (
        result["words"] == sum(len(t.split()) for t in texts)
        and result["batch_size"] == 4
        and result["device"] == "cpu"
    )
    assert result["pipeline_words_per_s"] > 0 and result["transformer_words_per_s"] > 0
    assert result["ratio"] == pytest.approx(
        result["pipeline_words_per_s"] / result["transformer_words_per_s"], abs=0.002
    )
    assert result["peak_memory_mb"] > 50


@pytest.mark.slow  # two benchmark runs, each timing every cut of the pipeline
def test_breakdown_times_the_pipeline_cut_after_each_component(tiny_pipeline):
    texts = [text for text in TEXTS if text] * 3
    result = benchmark(
        model=str(tiny_pipeline), texts=texts, batch_size=4, repeats=1, breakdown=True
    )
    cuts = result["breakdown"]
    pipe_names = spacy.load(tiny_pipeline).pipe_names
    assert len(pipe_names) > 1
    assert [cut["components"] for cut in cuts] == [
        "+".join(pipe_names[:end]) for end in range(1, len(pipe_names) + 1)
    ]
    assert (
        cuts[-1]["words_per_s"] == result["pipeline_words_per_s"]
        and cuts[-1]["ratio"] == result["ratio"]
    )
    assert all(
        cut["words_per_s"] > 0
        and cut["ratio"]
        == pytest.approx(cut["words_per_s"] / result["transformer_words_per_s"], abs=0.002)
        for cut in cuts
    )
    assert "breakdown" not in benchmark(
        model=str(tiny_pipeline), texts=texts, batch_size=4, repeats=1
    )


def test_cli_prints_one_json_line_and_applies_config_overrides(tiny_pipeline, tmp_path):
    (tmp_path / "texts.txt").write_text(
        "Python and SQL are required.\nWe offer lunch.\n", encoding="utf8"
    )
    result = CliRunner().invoke(
        app,
        [
            str(tiny_pipeline),
            "--texts",
            str(tmp_path / "texts.txt"),
            "--repeats",
            "1",
            "--nlp.batch_size",
            "7",
            "--components.transformer.max_batch_items",
            "512",
            "--baseline",
            str(tiny_pipeline),
        ],
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert (
        figures["batch_size"] == 7 and figures["max_batch_items"] == 512 and figures["texts"] == 2
    )
    assert figures["overrides"] == {
        "nlp.batch_size": 7,
        "components.transformer.max_batch_items": 512,
    }
    assert figures["baseline"] == str(tiny_pipeline) and figures["speedup"] > 0


def test_cli_errors_are_one_line(tiny_pipeline, tmp_path):
    bad_device = CliRunner().invoke(app, [str(tiny_pipeline), "--device", "tpu", "--repeats", "1"])
    assert bad_device.exit_code == 1 and "--device tpu is not one of: cpu, gpu" in bad_device.output
    (tmp_path / "empty.txt").write_text("\n\n", encoding="utf8")
    empty = CliRunner().invoke(app, [str(tiny_pipeline), "--texts", str(tmp_path / "empty.txt")])
    assert empty.exit_code == 1 and "no texts to measure on" in empty.output


def test_default_texts_are_the_sample_corpus_or_generated(tmp_path):
    texts = sample_texts()
    assert len(texts) > 300 and all(text.strip() for text in texts)
    assert sample_texts(assets=tmp_path) == generated_texts()
    generated = generated_texts()
    assert (
        len(generated) == 400
        and len(set(generated)) > 100
        and max(len(t.split()) for t in generated) > 60
    )


def test_length_groups_sort_and_respect_the_padded_budget():
    groups = length_groups([5, 50, 6, 49, 7], max_items=100)
    assert sorted(i for group in groups for i in group) == [0, 1, 2, 3, 4]
    lengths = [5, 50, 6, 49, 7]
    assert all(max(lengths[i] for i in g) * len(g) <= 100 or len(g) == 1 for g in groups)
    assert groups[0] == [0, 2, 4]


# --- loadtest -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8000", "http://localhost:9/", "http://[::1]:8000", "http://127.0.0.2:1"],
)
def test_loopback_urls_are_accepted(url):
    assert check_loopback(url) == url.rstrip("/")


@pytest.mark.parametrize(
    "url", ["http://10.0.0.1:8000", "http://192.168.1.2", "http://example.com", "ftp://127.0.0.1"]
)
def test_other_addresses_are_refused(url):
    with pytest.raises(UserError, match="only targets a server on this machine"):
        check_loopback(url)


def test_percentiles_and_levels():
    assert (
        percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0 and percentile(list(range(1, 101)), 0.99) == 99
    )
    assert parse_levels("1,16") == [1, 16]
    with pytest.raises(UserError):
        parse_levels("0,x")


@pytest.fixture(scope="module")
def running_server(predictor):
    """The real app under uvicorn on a free loopback port, in a thread."""
    uvicorn = pytest.importorskip("uvicorn")
    from scripts.inference.batching import Limits
    from scripts.inference.server import create_app

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(predictor, limits=Limits(max_texts=4)),
            host="127.0.0.1",
            port=port,
            log_level="error",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.mark.slow
def test_loadtest_reports_each_level_and_counts_errors(running_server):
    texts = [text for text in TEXTS if text]
    levels = loadtest(
        model=None,
        url=running_server,
        texts=texts,
        levels=[1, 4],
        max_requests=12,
        max_seconds=30,
        texts_per_request=2,
    )
    assert [level["concurrency"] for level in levels] == [1, 4]
    for level in levels:
        assert level["requests"] == 12 and level["errors"] == 0
        assert level["requests_per_s"] > 0 and 0 < level["p50_ms"] <= level["p99_ms"]
    over = loadtest(
        model=None,
        url=running_server,
        texts=texts,
        levels=[2],
        max_requests=4,
        max_seconds=30,
        texts_per_request=5,
    )
    assert over[0]["errors"] == 4 and over[0]["error_kinds"] == {
        "http 413": 4
    }  # the server's limit is 4 texts


def test_loadtest_needs_a_model_or_a_url():
    with pytest.raises(UserError, match="either MODEL"):
        loadtest(
            model=None,
            url=None,
            texts=["x"],
            levels=[1],
            max_requests=1,
            max_seconds=1,
            texts_per_request=1,
        )
