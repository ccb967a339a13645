"""scripts.annotate: records in, records + entities + cats out; resumable; Label Studio import
files; Ray = local."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scripts.annotate import app
from scripts.common.errors import UserError
from scripts.inference.annotation import Job, annotate_file, init_ray
from scripts.inference.predict import predict_texts
from tests.helpers import TEXTS, needs_extra

RECORDS = [
    {"id": i, "text": text, "source": "test", "meta": {"n": i}} for i, text in enumerate(TEXTS * 4)
]


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text(
        "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records),
        encoding="utf8",
    )
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf8").splitlines()]


def annotate(tiny_pipeline: Path, source: Path, output: Path, **options):
    job_options = {
        key: options.pop(key)
        for key in ("fmt", "batch_size", "text_field", "label_config")
        if key in options
    }
    job = Job(model=str(tiny_pipeline), **{"batch_size": 4, **job_options})
    return annotate_file(
        job=job, input_path=source, output_path=output, gpu_id="-1", progress=False, **options
    )


def test_jsonl_output_keeps_every_field_and_adds_the_predictions(
    tmp_path, tiny_pipeline, predictor
):
    source = write_jsonl(tmp_path / "in.jsonl", RECORDS)
    summary = annotate(tiny_pipeline, source, tmp_path / "out.jsonl")
    assert (summary.total, summary.skipped, summary.written) == (len(RECORDS), 0, len(RECORDS))
    expected = predict_texts(predictor, [r["text"] for r in RECORDS])
    assert read_jsonl(tmp_path / "out.jsonl") == [{**r, **p} for r, p in zip(RECORDS, expected)]


def test_an_interrupted_run_resumes_to_the_same_bytes(tmp_path, tiny_pipeline):
    source = write_jsonl(tmp_path / "in.jsonl", RECORDS)
    annotate(tiny_pipeline, source, tmp_path / "full.jsonl")
    full = (tmp_path / "full.jsonl").read_bytes()
    cut = full.index(b"\n", len(full) // 2) + 25  # a few complete lines, then half a line
    (tmp_path / "part.jsonl").write_bytes(full[:cut])
    summary = annotate(tiny_pipeline, source, tmp_path / "part.jsonl")
    assert (
        summary.skipped == full[:cut].count(b"\n")
        and summary.written == len(RECORDS) - summary.skipped
    )
    assert (tmp_path / "part.jsonl").read_bytes() == full
    again = annotate(tiny_pipeline, source, tmp_path / "part.jsonl")  # nothing left: a no-op
    assert again.written == 0 and (tmp_path / "part.jsonl").read_bytes() == full


def test_output_from_another_input_is_refused(tmp_path, tiny_pipeline):
    write_jsonl(tmp_path / "out.jsonl", [{"text": "something else", "entities": [], "cats": {}}])
    with pytest.raises(UserError, match="was not written from .* \\(record 1 differs\\)"):
        annotate(tiny_pipeline, write_jsonl(tmp_path / "in.jsonl", RECORDS), tmp_path / "out.jsonl")
    write_jsonl(
        tmp_path / "long.jsonl", [{"text": t, "entities": [], "cats": {}} for t in TEXTS * 9]
    )
    with pytest.raises(UserError, match="holds 45 records but .* only 20"):
        annotate(tiny_pipeline, tmp_path / "in.jsonl", tmp_path / "long.jsonl")


def test_csv_and_plain_text_inputs(tmp_path, tiny_pipeline, predictor):
    with (tmp_path / "in.csv").open("w", newline="", encoding="utf8") as file:
        writer = csv.writer(file)
        writer.writerow(["id", "body"])
        writer.writerows([[i, text] for i, text in enumerate(TEXTS)])
    annotate(tiny_pipeline, tmp_path / "in.csv", tmp_path / "csv.jsonl", text_field="body")
    rows = read_jsonl(tmp_path / "csv.jsonl")
    assert [r["id"] for r in rows] == [str(i) for i in range(len(TEXTS))]
    assert [{"entities": r["entities"], "cats": r["cats"]} for r in rows] == predict_texts(
        predictor, TEXTS
    )
    (tmp_path / "in.txt").write_text("Python and SQL.\n\nWe offer lunch.\n", encoding="utf8")
    annotate(tiny_pipeline, tmp_path / "in.txt", tmp_path / "txt.jsonl")
    assert [r["text"] for r in read_jsonl(tmp_path / "txt.jsonl")] == [
        "Python and SQL.",
        "We offer lunch.",
    ]


def test_labelstudio_format_is_an_import_file_with_predictions(tmp_path, tiny_pipeline, predictor):
    source = write_jsonl(tmp_path / "in.jsonl", RECORDS)
    output = tmp_path / "tasks.json"
    annotate(tiny_pipeline, source, output, fmt="labelstudio")
    tasks = json.loads(output.read_text(encoding="utf8"))
    assert not (tmp_path / "tasks.json.part").exists()
    assert len(tasks) == len(RECORDS)
    for record, task in zip(RECORDS, tasks):
        assert task["data"] == record
        (prediction,) = task["predictions"]
        assert prediction["model_version"] == "en_tiny-0.0.1" and set(prediction) >= {
            "model_version",
            "result",
        }
        for result in prediction["result"]:
            assert result["to_name"] == "text" and result["from_name"] in ("label", "category")
            if result["type"] == "labels":
                value = result["value"]
                assert record["text"][value["start"] : value["end"]] == value["text"]


def test_labelstudio_run_resumes_from_its_part_file(tmp_path, tiny_pipeline):
    source = write_jsonl(tmp_path / "in.jsonl", RECORDS)
    annotate(tiny_pipeline, source, tmp_path / "full.json", fmt="labelstudio")
    full = (tmp_path / "full.json").read_text(encoding="utf8")
    lines = full.splitlines()[1:-1]
    partial = (
        "".join(line.rstrip(",") + "\n" for line in lines[:7]) + lines[7][:30]
    )  # as an interruption leaves it
    (tmp_path / "out.json.part").write_text(partial, encoding="utf8")
    summary = annotate(tiny_pipeline, source, tmp_path / "out.json", fmt="labelstudio")
    assert summary.skipped == 7 and (tmp_path / "out.json").read_text(encoding="utf8") == full
    more = write_jsonl(
        tmp_path / "more.jsonl", RECORDS + RECORDS[:3]
    )  # the input grew: continue the finished file
    assert annotate(tiny_pipeline, more, tmp_path / "out.json", fmt="labelstudio").written == 3
    assert len(json.loads((tmp_path / "out.json").read_text(encoding="utf8"))) == len(RECORDS) + 3


def test_labelstudio_output_reads_back_through_the_converter_once_accepted(
    tmp_path, tiny_pipeline, predictor
):
    """The loop: pre-annotate, import into Label Studio, accept the predictions, export, convert."""
    labelstudio = pytest.importorskip("scripts.corpus.readers.labelstudio")
    from scripts.corpus.readers import Log, ReadOptions

    texts = [text for text in TEXTS if text]
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": text} for text in texts])
    annotate(tiny_pipeline, source, tmp_path / "tasks.json", fmt="labelstudio")
    tasks = json.loads((tmp_path / "tasks.json").read_text(encoding="utf8"))
    exported = [
        {**task, "annotations": [{"result": task["predictions"][0]["result"]}]} for task in tasks
    ]
    lines = enumerate(json.dumps(exported, ensure_ascii=False, indent=1).split("\n"), 1)
    docs = list(labelstudio.read_labelstudio(lines, options=ReadOptions(), log=Log()))
    assert [doc.text for doc in docs] == texts
    for doc, expected in zip(docs, predict_texts(predictor, texts)):
        assert [(e.start_char, e.end_char, e.label_) for e in doc.ents] == [
            (e["start"], e["end"], e["label"]) for e in expected["entities"]
        ]
        assert {label for label, value in doc.cats.items() if value == 1.0} == {
            max(expected["cats"], key=expected["cats"].get)
        }


def test_cli_reports_counts_and_one_line_errors(tmp_path, tiny_pipeline):
    source = write_jsonl(tmp_path / "in.jsonl", RECORDS[:5])
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            str(tiny_pipeline),
            str(source),
            str(tmp_path / "out.jsonl"),
            "--batch-size",
            "2",
            "--no-progress",
            "--gpu-id",
            "-1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Annotated 5 records (0 already done) of 5" in result.output
    again = runner.invoke(
        app,
        [
            str(tiny_pipeline),
            str(source),
            str(tmp_path / "out.jsonl"),
            "--no-progress",
            "--gpu-id",
            "-1",
        ],
    )
    assert "Nothing to do: all 5 records" in again.output
    bad = runner.invoke(
        app, [str(tiny_pipeline), str(source), str(tmp_path / "x.jsonl"), "--engine", "spark"]
    )
    assert bad.exit_code == 1 and "--engine spark is not one of: local, ray" in bad.output
    missing = runner.invoke(
        app, [str(tmp_path / "nope"), str(source), str(tmp_path / "y.jsonl"), "--gpu-id", "-1"]
    )
    assert (
        missing.exit_code == 1
        and "model not found" in missing.output
        and "Traceback" not in missing.output
    )


needs_ray = needs_extra("ray", "ray")


@pytest.fixture(scope="module")
def local_ray():
    import ray

    init_ray(None, num_cpus=2)
    yield ray
    ray.shutdown()


@pytest.mark.slow
@needs_ray
def test_ray_engine_writes_exactly_what_the_local_engine_writes(tmp_path, tiny_pipeline, local_ray):
    source = write_jsonl(tmp_path / "in.jsonl", RECORDS)
    annotate(tiny_pipeline, source, tmp_path / "local.jsonl", batch_size=3)
    annotate(tiny_pipeline, source, tmp_path / "ray.jsonl", batch_size=3, engine="ray", workers=2)
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "local.jsonl").read_bytes()
    # Label Studio format, resumed on Ray from a run interrupted mid-line
    annotate(tiny_pipeline, source, tmp_path / "local.json", fmt="labelstudio", batch_size=3)
    annotate(
        tiny_pipeline,
        write_jsonl(tmp_path / "head.jsonl", RECORDS[:7]),
        tmp_path / "ray.json",
        fmt="labelstudio",
        batch_size=3,
    )
    tasks = (tmp_path / "ray.json").read_text(encoding="utf8").splitlines()[1:-1]
    (tmp_path / "ray.json").unlink()
    (tmp_path / "ray.json.part").write_text(
        "".join(t.rstrip(",") + "\n" for t in tasks[:5]) + tasks[5][:20], encoding="utf8"
    )
    summary = annotate(
        tiny_pipeline, source, tmp_path / "ray.json", fmt="labelstudio", batch_size=3, engine="ray"
    )
    assert summary.skipped == 5
    assert (tmp_path / "ray.json").read_bytes() == (tmp_path / "local.json").read_bytes()


@needs_ray
def test_an_unreachable_cluster_names_the_token_setting_ray_start_needs(monkeypatch):
    import ray

    def refuse(**options):
        raise ConnectionError(f"Failed to connect to Ray cluster at {options['address']}")

    monkeypatch.setattr(ray, "init", refuse)
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    with pytest.raises(
        UserError, match=r"reach Ray at 10\.0\.0\.9:6379 .*check --address; .*RAY_AUTH_MODE=token"
    ):
        init_ray("10.0.0.9:6379")
    monkeypatch.setenv("RAY_AUTH_MODE", "token")  # already set: the address is what to check
    with pytest.raises(UserError) as err:
        init_ray("10.0.0.9:6379")
    assert "RAY_AUTH_MODE" not in str(err.value) and str(err.value).endswith("check --address")


def write_with_a_lone_surrogate(path: Path) -> Path:
    """Valid JSON lines whose third record holds "\\ud800", which is not Unicode text; a blank
    line before it makes its line number differ from its record number."""
    lines = [json.dumps(r) for r in RECORDS[:2]]
    lines += ["", '{"id": "bad", "text": "Python \\ud800 and SQL"}']
    lines += [json.dumps(r) for r in RECORDS[2:6]]
    path.write_text("\n".join(lines) + "\n", encoding="utf8")
    return path


def test_a_text_spacy_cannot_take_is_reported_with_its_line_and_the_rest_is_annotated(
    tmp_path, tiny_pipeline, predictor
):
    source = write_with_a_lone_surrogate(tmp_path / "in.jsonl")
    output = tmp_path / "out.jsonl"
    summary = annotate(tiny_pipeline, source, output)
    assert summary.written == 7 and summary.not_predicted == (
        f"{source}:4: not predicted (character 7 ('\\ud800') is a lone UTF-16 surrogate, "
        "not Unicode text)",
    )
    rows = read_jsonl(output)
    assert rows[2]["id"] == "bad" and rows[2]["text"] == "Python \ud800 and SQL"
    assert "not predicted" in rows[2]["error"] and "entities" not in rows[2]
    good = rows[:2] + rows[3:]
    assert [{"entities": r["entities"], "cats": r["cats"]} for r in good] == predict_texts(
        predictor, [r["text"] for r in RECORDS[:6]]
    )
    assert annotate(tiny_pipeline, source, output).written == 0  # a rerun recognises the line
    annotate(tiny_pipeline, source, tmp_path / "tasks.json", fmt="labelstudio")
    tasks = json.loads((tmp_path / "tasks.json").read_text(encoding="utf8"))
    assert len(tasks) == 7 and tasks[2]["predictions"] == [] and tasks[2]["meta"]["error"]


def test_strict_stops_on_a_text_spacy_cannot_take_before_writing_anything(tmp_path, tiny_pipeline):
    source = write_with_a_lone_surrogate(tmp_path / "in.jsonl")
    result = CliRunner().invoke(
        app,
        [
            str(tiny_pipeline),
            str(source),
            str(tmp_path / "out.jsonl"),
            "--strict",
            "--gpu-id",
            "-1",
        ],
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"{source}:4: the text cannot be predicted (character 7" in result.output
    assert not (tmp_path / "out.jsonl").exists()
    lenient = CliRunner().invoke(
        app,
        [str(tiny_pipeline), str(source), str(tmp_path / "out.jsonl"), "--no-progress"],
    )
    assert lenient.exit_code == 0, lenient.output
    assert f"⚠ {source}:4: not predicted" in lenient.output
    assert len(read_jsonl(tmp_path / "out.jsonl")) == 7
