"""Retrain on the annotations Label Studio sent, and swap the result in only when it is no worse.

One run (python -m scripts.retrain, in a subprocess of the server) writes into DIR/runs/<n>/:
    train.json, test.json   the stored annotations as Label Studio exports, split by task id
    corpus/                 the project's convert step on them (the Label Studio reader), plus
                            the --with data (.spacy) less every text an annotation or the
                            held-out data has, and the --dev data as the dev set
    labels/, config.cfg     the served model's labels; the project's config step (same base model,
                            components, --epochs)
    model-best/, model-last the project's train step
    eval-served/, eval-candidate/  scripts.evaluate of both models on the same held-out slice
    result.json             {"result": "swapped" | "kept" | "failed", "reason", "model_version"}

    outcome = retrain(data_dir=Path("ls-data"), model="training/model-best", run=1)

The held-out slice is every task whose id is a multiple of 5 (at least one task), or --test; it
is never trained on or used to pick model-best. The dev set that picks model-best is --dev, else
a tenth of the annotations to train on and of the --with data. The candidate is swapped in when
scripts.compare's check (compare_metrics) finds no overall figure worse than the served model's
by more than the margin. The server (RetrainingLoop) runs one
training at a time, queues at most one more, keeps serving meanwhile, and records in
DIR/state.json which model it serves, so that a restart serves the last one swapped in.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import re
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional

from spacy.tokens import Doc

from scripts.common.errors import UserError, one_line
from scripts.common.files import PROJECT_ROOT, write_bytes_atomic, write_text_atomic
from scripts.inference.annotation_store import (
    AnnotationStore,
    BadEvent,
    Change,
    event_name,
    parse_event,
    parse_tasks,
)
from scripts.inference.predict import Predictor

log = logging.getLogger("scripts.serve")
STATE = "state.json"
RUNS = "runs"
RESULT = "result.json"
TEST_EVERY = 5  # tasks whose id is a multiple of this are held out
DEV_SHARE = 0.1  # of the --with data, to pick model-best with the annotations' own share
TASK_COMPONENTS = ("ner", "textcat", "textcat_multilabel")
LOCAL_VERSION = re.compile(r"\+ls\d+$")


@dataclass(frozen=True)
class RetrainSettings:
    every: int = 0  # retrain after this many new or changed annotations; 0: only when asked
    epochs: int = 0  # 0: the config step chooses from the corpus size
    margin: float = 0.01  # largest drop of an overall figure that still swaps
    test: Optional[Path] = None  # a fixed gold file instead of the held-out slice
    gpu_id: str = "-1"
    with_data: tuple[Path, ...] = ()  # .spacy training data trained on with the annotations
    dev: tuple[Path, ...] = ()  # .spacy data that picks model-best; default: split off training


@dataclass(frozen=True)
class Outcome:
    result: str  # swapped | kept | failed
    reason: str
    model_version: str  # the candidate's ("" when none was trained)
    model: str = ""  # the candidate's folder, relative to DIR

    def as_dict(self) -> dict[str, str]:
        return {"result": self.result, "reason": self.reason, "model_version": self.model_version}


# ---- the served model, swappable ----------------------------------------------------------------


class LivePredictor:
    """The Predictor the server uses, replaceable while it serves: every attribute reads the
    current one, and swap() is one reference assignment."""

    def __init__(self, predictor: Predictor, *, source: str) -> None:
        self.current = predictor
        self.source = source  # what scripts.evaluate loads: a folder or a package name

    def swap(self, predictor: Predictor, *, source: str) -> None:
        self.current, self.source = predictor, source

    def __getattr__(self, name: str) -> Any:  # nlp, version, ent_labels, cat_labels, ...
        return getattr(self.current, name)


def read_state(data_dir: Path) -> dict[str, Any]:
    """DIR/state.json: {"served": {"model", "model_version", "run"}, "last", "trained_upto"}."""
    path = data_dir / STATE
    if not path.is_file():
        return {}
    try:
        state = json.loads(path.read_text(encoding="utf8"))
    except ValueError as err:
        raise UserError(f"{path}: not valid JSON ({err}); remove it to start over") from None
    return state if isinstance(state, dict) else {}


def served_model(data_dir: Path, model: str) -> str:
    """The model to serve: the last one swapped in under DIR, else MODEL."""
    served = read_state(data_dir).get("served") or {}
    path = data_dir / str(served.get("model", ""))
    if served.get("model") and (path / "meta.json").is_file():
        return str(path)
    return model


# ---- one run ----------------------------------------------------------------------------------


def base_version(version: str) -> str:
    """The served version without this loop's suffix: "0.0.1+ls3" -> "0.0.1"."""
    return LOCAL_VERSION.sub("", version)


def split_tasks(tasks: list[dict[str, Any]], *, fixed_test: bool) -> tuple[list, list]:
    """(train, test): every task whose id is a multiple of TEST_EVERY is held out (just one when
    that leaves fewer than two to train on, the last task when none is); with a fixed test file,
    all train."""
    if fixed_test:
        return tasks, []
    test = [task for task in tasks if int(task["id"]) % TEST_EVERY == 0]
    if not test or len(tasks) - len(test) < 2:  # two tasks to train on come first
        test = (test or tasks)[-1:]
    held = {id(task) for task in test}
    return [task for task in tasks if id(task) not in held], test


def check_enough(tasks: int, *, fixed_test: bool) -> None:
    """Two tasks to train on (one is split off for the dev set) and one to hold out."""
    needed = 2 if fixed_test else 3
    if tasks < needed:
        raise UserError(
            f"{tasks} annotated tasks are stored; retraining needs at least {needed} "
            f"(2 to train on{'' if fixed_test else ', 1 held out'}): annotate more"
        )


def file_list(values: Optional[list[str]]) -> tuple[Path, ...]:
    """Repeated and comma-separated options as one tuple: ["a.spacy,b.spacy", "c.spacy"]."""
    return tuple(Path(part.strip()) for value in values or [] for part in value.split(",") if part)


def check_data_files(settings: RetrainSettings, *, with_option: str, dev_option: str) -> None:
    """--with and --dev name existing .spacy files, none of them the held-out file."""
    test = settings.test.resolve() if settings.test is not None else None
    for option, paths in ((with_option, settings.with_data), (dev_option, settings.dev)):
        for path in paths:
            if path.suffix != ".spacy":
                raise UserError(
                    f"{option} {path}: not a .spacy file; give the convert step's output, "
                    "e.g. corpus/train.spacy"
                )
            if not path.is_file():
                raise UserError(f"{option} {path}: no such file; check the path")
            if path.resolve() == test:
                raise UserError(
                    f"{option} {path} is also the held-out file: the swap would be decided on "
                    "data the candidate was trained or picked on; give another file"
                )


def usable(task: dict[str, Any]) -> bool:
    return any(not a.get("was_cancelled") for a in task["annotations"])


def keep_known_labels(
    tasks: list[dict[str, Any]], *, ent_labels: set[str], cat_labels: set[str]
) -> int:
    """Drop labels and choices the served model does not have (it trains on its own label set);
    how many were dropped."""
    dropped = 0
    for task in tasks:
        for annotation in task["annotations"]:
            kept = []
            for result in annotation.get("result") or []:
                value = result.get("value") if isinstance(result, dict) else None
                for key, known in (("labels", ent_labels), ("choices", cat_labels)):
                    if isinstance(value, dict) and isinstance(value.get(key), list):
                        names = [name for name in value[key] if name in known]
                        dropped += len(value[key]) - len(names)
                        result = {**result, "value": {**value, key: names}} if names else None
                        break
                if result is not None:
                    kept.append(result)
            annotation["result"] = kept
    return dropped


def drop_unknown_labels(doc: Doc, *, ent_labels: set[str], cat_labels: set[str]) -> int:
    """keep_known_labels for a Doc of --with/--dev data: an entity of a label the served model
    lacks becomes missing annotation (not "no entity"), such a category is removed."""
    unknown = [ent for ent in doc.ents if ent_labels and ent.label_ not in ent_labels]
    if unknown:
        doc.set_ents([], missing=unknown, default="unmodified")
    cats = {name: value for name, value in doc.cats.items() if not cat_labels or name in cat_labels}
    dropped = len(unknown) + len(doc.cats) - len(cats)
    doc.cats = cats
    return dropped


def add_data(
    corpus: Path,
    *,
    settings: RetrainSettings,
    lang: str,
    ent_labels: set[str],
    cat_labels: set[str],
    echo: Callable[[str], None],
) -> None:
    """Add the --with data to corpus/train.spacy and make the --dev data corpus/dev.spacy (else
    split a tenth of the --with data off to dev). A text that a stored annotation or the held-out
    data has is taken from there only: the annotation wins, the held-out data is never trained on
    or used to pick model-best."""
    import spacy
    from spacy.tokens import DocBin

    vocab = spacy.blank(lang).vocab

    def read(path: Path) -> list[Doc]:
        return list(DocBin().from_disk(path).get_docs(vocab))

    train, dev, test = (read(corpus / f"{name}.spacy") for name in ("train", "dev", "test"))
    held = {doc.text for doc in test}
    train = [doc for doc in train if doc.text not in held]  # a task imported twice
    dev = [doc for doc in dev if doc.text not in held]
    annotated = {doc.text for doc in [*train, *dev]} | held
    counts = {"replaced": 0, "dropped": 0}

    def fresh(paths: tuple[Path, ...]) -> list[Doc]:
        docs = []
        for path in paths:
            for doc in read(path):
                if doc.text in annotated:
                    counts["replaced"] += 1
                    continue
                counts["dropped"] += drop_unknown_labels(
                    doc, ent_labels=ent_labels, cat_labels=cat_labels
                )
                docs.append(doc)
        return docs

    extra = fresh(settings.with_data)
    if settings.dev:
        train += dev  # the annotations' dev share trains; the given data picks model-best
        dev = fresh(settings.dev)
        if not dev:
            raise UserError(
                f"--retrain-dev {', '.join(map(str, settings.dev))}: every text in it is "
                "annotated or held out; give other dev data"
            )
    elif extra:
        order = list(range(len(extra)))
        random.Random(0).shuffle(order)  # the same split every run
        picked = set(order[: int(len(extra) * DEV_SHARE)])
        dev += [doc for i, doc in enumerate(extra) if i in picked]
        extra = [doc for i, doc in enumerate(extra) if i not in picked]
    train += extra
    for name, docs in (("train", train), ("dev", dev)):
        write_bytes_atomic(corpus / f"{name}.spacy", DocBin(docs=docs).to_bytes())
    echo(
        f"Added {len(extra)} documents of {', '.join(map(str, settings.with_data)) or 'no file'} "
        f"to train on; {counts['replaced']} left out as annotated or held out, "
        f"{counts['dropped']} labels the model lacks dropped; dev: {len(dev)} documents"
        + (f" of {', '.join(map(str, settings.dev))}" if settings.dev else "")
    )


def held_out_without_entities(corpus: Path, *, lang: str) -> None:
    """The Label Studio reader's rule (a task without spans, in a file with spans, is a document
    with no entities) across train.json and test.json, which are converted one file each."""
    import spacy
    from spacy.tokens import DocBin

    vocab = spacy.blank(lang).vocab
    docs = {
        name: list(DocBin().from_disk(corpus / f"{name}.spacy").get_docs(vocab))
        for name in ("train", "dev", "test")
    }
    if not any(doc.has_annotation("ENT_IOB") for doc in [*docs["train"], *docs["dev"]]):
        return
    missing = [doc for doc in docs["test"] if not doc.has_annotation("ENT_IOB")]
    for doc in missing:
        doc.set_ents([], default="outside")
    if missing:
        write_bytes_atomic(corpus / "test.spacy", DocBin(docs=docs["test"]).to_bytes())


def check_components(
    train: Path, *, components: list[str], lang: str, with_data: tuple[Path, ...]
) -> None:
    """Each component of the served model has something to learn from; else one line that says
    what to annotate or to pass --retrain-with."""
    import spacy
    from spacy.tokens import DocBin

    docs = list(DocBin().from_disk(train).get_docs(spacy.blank(lang).vocab))
    for component in components:
        what = "entities" if component == "ner" else "categories"
        if any(doc.has_annotation("ENT_IOB") if component == "ner" else doc.cats for doc in docs):
            continue
        where = (
            f"neither the stored annotations nor {', '.join(map(str, with_data))} carry"
            if with_data
            else "the stored annotations carry no"
        )
        raise UserError(
            f"{where} {what}, and the served model's {component} needs them: annotate {what} "
            f"too, or pass --retrain-with FILE with training data that has {what} "
            "(e.g. corpus/train.spacy; scripts.retrain: --with FILE)"
        )


def retrain(
    *,
    data_dir: Path,
    model: str,
    run: int,
    upto: Optional[int] = None,
    settings: RetrainSettings = RetrainSettings(),
    echo: Callable[[str], None] = print,
) -> Outcome:
    """Train a candidate on DIR's annotations (journal lines up to `upto`) into DIR/runs/<run>/,
    compare it with MODEL on the same held-out data, and write result.json."""
    run_dir = data_dir / RUNS / str(run)
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        outcome = _retrain(data_dir, run_dir, model, run, upto, settings, echo)
    except UserError as err:
        outcome = Outcome("failed", one_line(err), "")
    except Exception as err:  # the server reports why; the traceback is in the run's log
        log.exception("retraining failed")
        outcome = Outcome("failed", f"{type(err).__name__}: {one_line(err)}", "")
    write_text_atomic(
        json.dumps({**outcome.as_dict(), "model": outcome.model}, indent=2) + "\n", run_dir / RESULT
    )
    return outcome


def _retrain(
    data_dir: Path,
    run_dir: Path,
    model: str,
    run: int,
    upto: Optional[int],
    settings: RetrainSettings,
    echo: Callable[[str], None],
) -> Outcome:
    from scripts.corpus.conversion import ConvertError, Settings, convert_project
    from scripts.evaluation.comparison import compare_metrics, format_table, notes
    from scripts.evaluation.run import evaluate_model
    from scripts.inference.predict import describe_pipeline
    from scripts.scoring.pipeline import load_pipeline
    from scripts.training.config import make_config
    from scripts.training.run import train

    check_data_files(settings, with_option="--with", dev_option="--dev")
    store = AnnotationStore.open(data_dir, upto=upto, repair=False)
    tasks = [task for task in store.export() if usable(task)]
    check_enough(len(tasks), fixed_test=settings.test is not None)
    train_tasks, test_tasks = split_tasks(tasks, fixed_test=settings.test is not None)
    nlp = load_pipeline(model)
    served = describe_pipeline(nlp)
    # factory -> what `spacy init labels` writes for it (the NER's moves, the categories)
    label_data = {
        nlp.get_pipe_meta(name).factory: nlp.get_pipe(name).label_data
        for name in nlp.pipe_names
        if nlp.get_pipe_meta(name).factory in TASK_COMPONENTS
    }
    components = list(label_data)
    transformer = str(nlp.config["components"]["transformer"]["model"]["name"])
    lang, name = nlp.lang, nlp.meta.get("name", "pipeline")
    version = f"{base_version(nlp.meta.get('version', '0.0.0'))}+ls{run}"
    del nlp
    dropped = keep_known_labels(
        tasks, ent_labels=set(served.ent_labels), cat_labels=set(served.cat_labels)
    )
    for split, chosen in (("train", train_tasks), ("test", test_tasks)):
        if chosen:
            write_text_atomic(
                json.dumps(chosen, ensure_ascii=False) + "\n", run_dir / f"{split}.json"
            )
    echo(
        f"Run {run}: {len(train_tasks)} tasks to train on, "
        f"{len(test_tasks) or settings.test} held out; {dropped} labels the model lacks dropped"
    )
    corpus = run_dir / "corpus"
    try:
        convert_project(
            train=[run_dir / "train.json"],
            dev=[],
            test=[settings.test or run_dir / "test.json"],
            output_dir=corpus,
            settings=Settings(lang=lang),
            echo=echo,
        )
    except ConvertError as err:
        raise UserError(f"converting the annotations failed: {err}") from None
    if settings.test is None:
        held_out_without_entities(corpus, lang=lang)
    if settings.with_data or settings.dev:
        add_data(
            corpus,
            settings=settings,
            lang=lang,
            ent_labels=set(served.ent_labels),
            cat_labels=set(served.cat_labels),
            echo=echo,
        )
    check_components(
        corpus / "train.spacy", components=components, lang=lang, with_data=settings.with_data
    )
    labels = run_dir / "labels"
    labels.mkdir(exist_ok=True)
    for component, data in label_data.items():
        write_text_atomic(json.dumps(data) + "\n", labels / f"{component}.json")
    config = run_dir / "config.cfg"
    make_config(
        base_path=PROJECT_ROOT / "configs" / "base.cfg",
        output=config,
        components=",".join(components),
        transformer=transformer,
        lang=lang,
        train=corpus / "train.spacy",
        max_epochs=settings.epochs,
        overrides={
            "paths.train": str(corpus / "train.spacy"),
            "paths.dev": str(corpus / "dev.spacy"),
            "paths.labels": str(labels),
        },
    )
    train(
        config_path=config,
        output=run_dir,
        gpu_id=settings.gpu_id,
        mixed_precision=False,
        overrides={},
    )
    candidate = run_dir / "model-best"
    meta_path = candidate / "meta.json"
    meta = json.loads(meta_path.read_text(encoding="utf8"))
    write_text_atomic(
        json.dumps({**meta, "name": name, "version": version}, indent=2) + "\n", meta_path
    )
    model_version = f"{lang}_{name}-{version}"
    metrics = {}
    for label, path in (("served", model), ("candidate", str(candidate))):
        metrics[label] = evaluate_model(
            model=path,
            data_path=corpus / "test.spacy",
            output_dir=run_dir / f"eval-{label}",
            gpu_id=settings.gpu_id,
        )
    rows = compare_metrics(a=metrics["served"], b=metrics["candidate"], margin=settings.margin)
    table = format_table(rows, margin=settings.margin)
    caveats = notes(a=metrics["served"], b=metrics["candidate"])
    write_text_atomic(
        table + "\n" + "".join(f"Note: {n}\n" for n in caveats), run_dir / "compare.txt"
    )
    echo(table)
    relative = str(candidate.relative_to(data_dir))
    worse = [row for row in rows if row.worse]
    if worse:
        figures = ", ".join(
            f"{r.figure} {r.a:.3f} -> {'none' if r.b is None else format(r.b, '.3f')}"
            for r in worse[:3]
        ) + (f" and {len(worse) - 3} more" if len(worse) > 3 else "")
        return Outcome(
            "kept",
            f"{model_version} is worse than {served.version} by more than {settings.margin} on "
            f"{len(test_tasks) or settings.test} held-out tasks: {figures}",
            model_version,
            relative,
        )
    overall = ", ".join(f"{r.figure} {r.b:.3f}" for r in rows if r.overall and r.b is not None)
    return Outcome(
        "swapped",
        f"no overall figure worse than {served.version} by more than {settings.margin} ({overall})",
        model_version,
        relative,
    )


# ---- the server's side ------------------------------------------------------------------------


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class RetrainingLoop:
    """Stores what Label Studio sends and retrains in the background; one run at a time, at most
    one more queued, predictions served throughout."""

    def __init__(
        self,
        *,
        live: LivePredictor,
        data_dir: Path,
        settings: RetrainSettings,
        load: Callable[[str], Predictor],
    ) -> None:
        self.live, self.data_dir, self.settings, self.load = live, data_dir, settings, load
        self.store = AnnotationStore.open(data_dir)
        for warning in self.store.warnings:
            log.warning(warning)
        state = read_state(data_dir)
        self.trained_upto = int(state.get("trained_upto", 0))  # seq the last finished run saw
        self.counted_from = self.trained_upto  # seq the changes to count start after
        self.last: Optional[dict[str, str]] = state.get("last")
        self.since: Optional[str] = None
        self.training: Optional[asyncio.Task] = None
        self.queued = False

    # -- routes

    async def webhook(self, payload: Any) -> dict[str, Any]:
        action = event_name(payload)
        change = parse_event(payload)
        if change is None:
            log.info("Label Studio event %s ignored: it carries no annotations", action)
            return {"status": f"ignored: {action} carries no annotations"}
        stored = await self._store(change)
        if action == "START_TRAINING":
            return {"status": "ok", "stored": stored, "training": self.request()}
        return {"status": "ok", "stored": stored, "training": self._maybe_train()}

    async def train(self, payload: Any) -> dict[str, Any]:
        """The ML backend's older /train call: {"annotations": [tasks], "project", ...}."""
        if not isinstance(payload, dict):
            raise BadEvent("the /train body is not a JSON object")
        stored = await self._store(parse_tasks(payload.get("annotations") or [], event="train"))
        return {"status": "ok", "stored": stored, "training": self.request()}

    def health(self) -> dict[str, Any]:
        return {
            "annotations": len(self.store.annotations),
            "training": {
                "state": "training" if self.training else "idle",
                "since": self.since,
                "queued": self.queued,
                "changed_since_last": self.store.changed_since(self.counted_from),
                "last": self.last,
            },
        }

    # -- storing and triggering

    async def _store(self, change: Change) -> int:
        return await asyncio.to_thread(self.store.apply, change)

    def _maybe_train(self) -> str:
        every = self.settings.every
        if every > 0 and self.store.changed_since(self.counted_from) >= every:
            return self.request()
        return "training" if self.training else "idle"

    def resume(self) -> None:
        """After a restart: train if the changes since the last finished run are due."""
        self._maybe_train()

    def request(self) -> str:
        """Start a run, or queue one (at most one) behind the running one."""
        if self.training is not None:
            self.queued = True
            return "queued"
        self.counted_from = self.store.seq
        self.since = now()
        self.training = asyncio.get_running_loop().create_task(self._run(self.store.seq))
        return "started"

    async def stop(self) -> None:
        if self.training is not None:
            self.training.cancel()

    async def _run(self, upto: int) -> None:
        try:
            outcome = await self._train(upto)
            if outcome.result == "swapped":
                source = str(self.data_dir / outcome.model)
                predictor = await asyncio.to_thread(self.load, source)
                self._write_state(outcome, upto=upto, served=predictor.version)
                self.live.swap(predictor, source=source)
            else:
                self._write_state(outcome, upto=upto)
            self.last = outcome.as_dict()
            log.warning("Retraining: %s (%s)", outcome.result, outcome.reason)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # a failed run is reported in /health; serving goes on
            log.exception("retraining failed")
            self.last = Outcome("failed", one_line(err), "").as_dict()
        finally:
            self.training, self.since = None, None
        if self.queued:
            self.queued = False
            self.request()

    async def _train(self, upto: int) -> Outcome:
        tasks = sum(usable(task) for task in self.store.export())
        try:
            check_enough(tasks, fixed_test=self.settings.test is not None)
        except UserError as err:
            return Outcome("failed", str(err), "")
        run = next_run(self.data_dir)
        run_dir = self.data_dir / RUNS / str(run)
        run_dir.mkdir(parents=True, exist_ok=True)
        settings = self.settings
        command = [
            sys.executable, "-m", "scripts.retrain", str(self.data_dir.resolve()),
            "--model", self.live.source, "--run", str(run), "--upto", str(upto),
            "--epochs", str(settings.epochs), "--margin", str(settings.margin),
            "--gpu-id", settings.gpu_id,
        ]  # fmt: skip
        if settings.test is not None:
            command += ["--test", str(settings.test.resolve())]
        for option, paths in (("--with", settings.with_data), ("--dev", settings.dev)):
            command += [part for path in paths for part in (option, str(path.resolve()))]
        with (run_dir / "train.log").open("ab") as output:
            process = await asyncio.create_subprocess_exec(
                *command,
                cwd=PROJECT_ROOT,
                stdout=output,
                stderr=output,
                preexec_fn=lambda: os.nice(10),  # predictions come first on a busy machine
            )
            try:
                code = await process.wait()
            except asyncio.CancelledError:
                process.kill()
                raise
        result = run_dir / RESULT
        if not result.is_file():
            return Outcome(
                "failed", f"the training process exited with {code}; see {run_dir}/train.log", ""
            )
        found = json.loads(result.read_text(encoding="utf8"))
        return Outcome(
            found["result"], found["reason"], found.get("model_version", ""), found.get("model", "")
        )

    def _write_state(self, outcome: Outcome, *, upto: int, served: str = "") -> None:
        state = read_state(self.data_dir)
        if served:
            state["served"] = {"model": outcome.model, "model_version": served}
        state.update(trained_upto=upto, last=outcome.as_dict())
        write_text_atomic(json.dumps(state, indent=2) + "\n", self.data_dir / STATE)
        self.trained_upto = upto


def next_run(data_dir: Path) -> int:
    runs = data_dir / RUNS
    numbers = [int(p.name) for p in runs.iterdir() if p.name.isdigit()] if runs.is_dir() else []
    return max(numbers, default=0) + 1
