"""Batch annotation: records in, one JSON line (or Label Studio task) out per record, predicted in
batches in this process or on Ray Data workers (the code behind scripts/annotate.py).

    annotate_file(job=Job(model="training/model-best"), input_path=Path("texts.jsonl"),
                  output_path=Path("annotated.jsonl"))

Input: JSON lines or a JSON array (a "text" field; the record's other fields are kept), CSV (a text
column) or plain text (one text per line). Output line i belongs to input record i, so a rerun
resumes after the last complete line (a partial last line from an interrupted run is dropped). Both
engines cut the input into the same batches and predict through scripts.inference.predict, so they
write the same bytes. A record whose text spaCy cannot take (a lone surrogate such as "\\ud800" in
JSON) keeps its line with an "error" field instead of predictions; --strict stops before writing.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass, replace
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, TypedDict

from scripts.common.errors import UserError, info
from scripts.common.files import write_bytes_atomic
from scripts.common.ray_cluster import init_ray
from scripts.inference.predict import (
    LabelConfig,
    LabelStudioPrediction,
    Predictor,
    labelstudio_prediction,
    load_predictor,
    parse_label_config,
    predict_texts,
    read_located_records,
    read_records,
    unreadable_text,
)
from scripts.scoring.uncertainty import MARGIN

ENGINES = ("local", "ray")
FORMATS = ("jsonl", "labelstudio")
PART_SUFFIX = ".part"  # labelstudio: the resumable JSON lines behind the final JSON array
ERROR_FIELD = "error"  # a record spaCy cannot take is written with this field, unpredicted


@dataclass(frozen=True)
class Job:
    """What to run on every batch: the same on the driver and on each Ray worker."""

    model: str
    text_field: str = "text"
    fmt: str = "jsonl"
    batch_size: Optional[int] = None
    label_config: Optional[str] = None  # Label Studio labeling config XML; None: the defaults
    min_score: float = 0.0  # entities scored below it are left out
    uncertainty: str = MARGIN  # the rule of a Label Studio prediction's score


class LabelStudioTask(TypedDict):
    """One task of a Label Studio import file: the record, and the model's prediction for it."""

    data: dict[str, Any]
    predictions: list[LabelStudioPrediction]


@dataclass(frozen=True)
class Summary:
    total: int
    skipped: int  # already in the output from an earlier run
    written: int
    seconds: float
    not_predicted: tuple[str, ...] = ()  # "texts.jsonl:7: why", one per record left unpredicted


def annotate_file(
    *,
    job: Job,
    input_path: Path,
    output_path: Path,
    engine: str = "local",
    address: Optional[str] = None,
    gpu_id: str = "auto",
    workers: int = 1,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float = 0.0,
    progress: bool = True,
    strict: bool = False,
) -> Summary:
    """Annotate every record of input_path not yet in output_path; return the counts. A record
    whose text spaCy cannot take is written with an "error" field instead of predictions, or
    stops the run before anything is written under strict."""
    if engine not in ENGINES:
        raise UserError(f"--engine {engine} is not one of: {', '.join(ENGINES)}")
    if job.fmt not in FORMATS:
        raise UserError(f"--format {job.fmt} is not one of: {', '.join(FORMATS)}")
    parse_label_config(job.label_config)  # a bad labeling config fails here, not on a worker
    # reads it all: bad lines fail now, and records that cannot be predicted are found
    total, not_predicted = 0, []
    for where, record in read_located_records(input_path, text_field=job.text_field):
        total += 1
        problem = unreadable_text(record[job.text_field])
        if problem is not None and strict:
            raise UserError(
                f"{where}: the text cannot be predicted ({problem}); fix the record, or leave "
                f'out --strict to write it with an "{ERROR_FIELD}" field'
            )
        if problem is not None:
            not_predicted.append(f"{where}: not predicted ({problem})")
    work_path = working_file(output_path, fmt=job.fmt)
    done = resume_point(work_path, output_path=output_path, job=job, input_path=input_path)
    if done > total:
        raise UserError(
            f"{output_path} holds {done} records but {input_path} only {total}; pass a new "
            "output file or delete it to start over"
        )
    remaining = islice(read_records(input_path, text_field=job.text_field), done, None)
    chunks = chunked(remaining, size=job.batch_size or default_batch_size(job.model))
    started = time.perf_counter()
    if done < total:
        if engine == "ray":
            batches = run_ray(
                job=job,
                chunks=chunks,
                address=address,
                workers=workers,
                cpus_per_worker=cpus_per_worker,
                gpus_per_worker=gpus_per_worker,
            )
        else:
            batches = run_local(job=job, chunks=chunks, gpu_id=gpu_id)
        started = time.perf_counter()  # documents/s count from here: the local pipeline is loaded
        append_lines(work_path, batches, total=total, done=done, progress=progress)
    if job.fmt == "labelstudio":
        finish_labelstudio(work_path, output_path=output_path)
    return Summary(
        total=total,
        skipped=done,
        written=total - done,
        seconds=time.perf_counter() - started,
        not_predicted=tuple(not_predicted),
    )


def annotate_chunk(predictor: Predictor, records: list[dict[str, Any]], *, job: Job) -> list[str]:
    """The output lines of one batch of records: the record plus "entities" and "cats", or a
    Label Studio task; a record spaCy cannot take gets an "error" field and no predictions."""
    problems = [unreadable_text(record[job.text_field]) for record in records]
    predictions = iter(
        predict_texts(
            predictor,
            [r[job.text_field] for r, problem in zip(records, problems) if problem is None],
            batch_size=len(records) or None,
            parse_scores=job.fmt == "labelstudio",  # the task score of a text without entities
        )
    )
    config = parse_label_config(job.label_config) if job.fmt == "labelstudio" else LabelConfig()
    lines = []
    for record, problem in zip(records, problems):
        if problem is not None:
            lines.append(unpredicted_line(record, problem=problem, job=job, config=config))
            continue
        prediction = next(predictions)
        output: LabelStudioTask | dict[str, Any]
        if job.fmt == "labelstudio":
            output = LabelStudioTask(
                data={**record, config.text_field: record[job.text_field]},
                predictions=[
                    labelstudio_prediction(prediction, predictor=predictor, config=config)
                ],
            )
        else:
            output = {**record, **prediction}
        lines.append(json.dumps(output, ensure_ascii=False))
    return lines


def unpredicted_line(record: dict[str, Any], *, problem: str, job: Job, config: LabelConfig) -> str:
    """The line of a record that cannot be predicted: it keeps its place (output line i is input
    record i), and JSON escapes keep its text as it was, so a rerun recognises it."""
    error = f"not predicted: {problem}"
    if job.fmt == "labelstudio":
        task = {
            "data": {**record, config.text_field: record[job.text_field]},
            "predictions": [],
            "meta": {ERROR_FIELD: error},
        }
        return json.dumps(task, ensure_ascii=True)
    return json.dumps({**record, ERROR_FIELD: error}, ensure_ascii=True)


def run_local(
    *, job: Job, chunks: Iterable[list[dict[str, Any]]], gpu_id: str
) -> Iterator[list[str]]:
    # now, before the progress bar starts
    predictor = load_predictor(
        job.model, gpu_id=gpu_id, min_score=job.min_score, uncertainty=job.uncertainty
    )
    return (annotate_chunk(predictor, records, job=job) for records in chunks)


class RayAnnotator:
    """Ray Data callable class: loads the pipeline by name or path once per worker, then annotates
    one batch of records (a JSON-lines string) per row. The loaded nlp never travels through Ray."""

    def __init__(self, job: Job, threads: int, use_gpu: bool) -> None:
        import torch

        torch.set_num_threads(max(1, threads))
        self.job = job
        self.predictor = load_predictor(
            job.model,
            gpu_id="0" if use_gpu else "-1",
            min_score=job.min_score,
            uncertainty=job.uncertainty,
        )

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy

        out = []
        for chunk in batch["records"]:
            records = [json.loads(line) for line in str(chunk).split("\n")]
            out.append("\n".join(annotate_chunk(self.predictor, records, job=self.job)))
        return {"lines": numpy.array(out, dtype=object)}


def run_ray(
    *,
    job: Job,
    chunks: Iterable[list[dict[str, Any]]],
    address: Optional[str],
    workers: int,
    cpus_per_worker: float,
    gpus_per_worker: float,
) -> Iterator[list[str]]:
    """Each row is one batch, so Ray workers see exactly the batches the local engine makes. The
    driver puts the remaining input into Ray's object store (one row per batch) and writes the lines
    in order; on a cluster, MODEL must be an installed package name or a path every node can
    read."""
    try:
        import ray
    except ImportError:
        raise UserError("--engine ray needs Ray: pip install -r requirements/ray.txt") from None
    if Path(job.model).exists():  # workers do not share our working directory
        job = replace(job, model=str(Path(job.model).resolve()))
    # ASCII JSON: a lone surrogate in a text could not travel as an Arrow (UTF-8) string
    rows = [{"records": "\n".join(json.dumps(record) for record in records)} for records in chunks]
    started_here = not ray.is_initialized()
    if started_here:
        init_ray(address)
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # output line i is input record i
    context.enable_progress_bars = False  # ours counts documents
    # max_restarts has no named parameter yet (requirements/ray.txt pins Ray below 2.64)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
        dataset = ray.data.from_items(rows).map_batches(
            RayAnnotator,
            fn_constructor_kwargs={
                "job": job,
                "threads": int(cpus_per_worker),
                "use_gpu": gpus_per_worker > 0,
            },
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=cpus_per_worker,
            num_gpus=gpus_per_worker,
            max_restarts=0,
        )
    return ray_lines(dataset, shutdown=ray.shutdown if started_here else None)


def ray_lines(dataset: Any, *, shutdown: Optional[Callable[[], None]]) -> Iterator[list[str]]:
    try:
        for row in dataset.iter_rows():
            yield str(row["lines"]).split("\n")
    finally:
        if shutdown is not None:
            shutdown()


def chunked(records: Iterable[dict[str, Any]], *, size: int) -> Iterator[list[dict[str, Any]]]:
    iterator = iter(records)
    while chunk := list(islice(iterator, size)):
        yield chunk


def default_batch_size(model: str) -> int:
    """The pipeline's own [nlp] batch_size, read from its config without loading the weights."""
    from spacy.util import get_package_path, is_package, load_config

    path = get_package_path(model) if is_package(model) else Path(model)
    configs = [path / "config.cfg", *sorted(path.glob("*/config.cfg"))]
    for config_path in configs:
        if config_path.is_file():
            return int(load_config(config_path, interpolate=False)["nlp"].get("batch_size", 64))
    return 64


# --------------------------------------------------------------------------------------------------
# Output: complete lines only, flushed per batch; a rerun resumes after the last complete line


def working_file(output_path: Path, *, fmt: str) -> Path:
    """JSON lines are the output itself; a Label Studio JSON array is built from OUTPUT.part at the
    end."""
    return (
        output_path.with_name(output_path.name + PART_SUFFIX)
        if fmt == "labelstudio"
        else output_path
    )


def resume_point(work_path: Path, *, output_path: Path, job: Job, input_path: Path) -> int:
    """How many records are already written; drops a partial last line left by an interrupted
    run."""
    if job.fmt == "labelstudio" and not work_path.exists() and output_path.exists():
        seed_from_labelstudio(output_path, work_path)
    if not work_path.exists():
        return 0
    data = work_path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        with work_path.open("r+b") as file:
            file.truncate(end)
        info(f"{work_path}: dropped a partial last line left by an interrupted run")
    lines = data[:end].splitlines()
    if lines:
        check_same_input(lines, job=job, input_path=input_path, work_path=work_path)
    return len(lines)


def check_same_input(lines: list[bytes], *, job: Job, input_path: Path, work_path: Path) -> None:
    """Every line written must belong to the input record at its position, or this is another
    input."""
    text_field = (
        parse_label_config(job.label_config).text_field
        if job.fmt == "labelstudio"
        else job.text_field
    )
    records = read_records(input_path, text_field=job.text_field)
    for number, (line, record) in enumerate(zip(lines, records), 1):
        try:
            written = json.loads(line)
            text = written["data"][text_field] if job.fmt == "labelstudio" else written[text_field]
        except (ValueError, KeyError, TypeError):
            raise UserError(
                f"{work_path}:{number}: not a {job.fmt} record written by annotate; pass a new "
                "output file"
            ) from None
        if text != record[job.text_field]:
            raise UserError(
                f"{work_path}: was not written from {input_path} (record {number} differs); "
                "pass a new output file, or delete this one to start over"
            )


def append_lines(
    work_path: Path, batches: Iterable[list[str]], *, total: int, done: int, progress: bool
) -> None:
    """Write whole lines and flush after each batch, so an interruption leaves only complete
    records; the file is opened with the first batch, so a run that fails before it leaves
    none."""
    from tqdm import tqdm

    file = None
    try:
        with tqdm(
            total=total,
            initial=done,
            unit="doc",
            desc="Annotating",
            disable=not progress,
            smoothing=0.1,
        ) as bar:
            for lines in batches:
                data = "".join(line + "\n" for line in lines).encode("utf8")  # before the file
                if file is None:
                    work_path.parent.mkdir(parents=True, exist_ok=True)
                    file = work_path.open("ab")
                file.write(data)
                file.flush()
                bar.update(len(lines))
    finally:
        if file is not None:
            file.close()


def seed_from_labelstudio(output_path: Path, work_path: Path) -> None:
    """Continue a finished Label Studio file (the input grew): its tasks become the working
    lines."""
    try:
        tasks = json.loads(output_path.read_text(encoding="utf8"))
    except ValueError:
        raise UserError(
            f"{output_path}: exists but is not a Label Studio JSON array; pass a new output file"
        ) from None
    if not isinstance(tasks, list):
        raise UserError(
            f"{output_path}: exists but is not a Label Studio JSON array; pass a new output file"
        )
    write_bytes_atomic(
        work_path,
        "".join(json.dumps(task, ensure_ascii=False) + "\n" for task in tasks).encode("utf8"),
    )


def finish_labelstudio(work_path: Path, *, output_path: Path) -> None:
    """The Label Studio import file: a JSON array, one task per line, moved into place
    atomically."""
    if not work_path.exists():
        return
    lines = [line for line in work_path.read_text(encoding="utf8").split("\n") if line]
    write_bytes_atomic(output_path, ("[\n" + ",\n".join(lines) + "\n]\n").encode("utf8"))
    work_path.unlink()
