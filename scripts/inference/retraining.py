"""Retrain on the annotations Label Studio sent, and swap the result in only when it is no worse.

One run (python -m scripts.retrain, in a subprocess of the server) writes into DIR/runs/<n>/, a
run folder of the workflow's stages (scripts/workflow/stages.py, those of `spacy project run all`):
    train.json, test.json   the stored annotations as Label Studio exports, split by task id
    corpus/                 the convert stage on them (the Label Studio reader), plus the --with
                            data (.spacy) less every text an annotation or the held-out data has,
                            and the --dev data as the dev set
    labels/, config.cfg     the served model's labels and those the annotators added; the config
                            stage (same base model, components, --epochs)
    model-best/, model-last/, curves.jsonl  the train stage
    eval-served/, eval-candidate/  the evaluate stage on both models, same held-out slice
    eval-candidate-known/   the candidate on the labels the served model has, where the held-out
                            slice has labels it lacks: what decides the swap
    result.json             {"result": "swapped" | "kept" | "failed", "reason", "model_version",
                            "skipped": {"count", "reasons", "examples"}, "labels_added"}

    outcome = retrain(data_dir=Path("ls-data"), model="training/model-best", run=1)

Records that cannot train (scripts/inference/annotation_check.py: the webhook refuses them, but a
journal may hold some from before) are skipped and counted, never fatal. A label the annotators
use that the served model lacks is added to the candidate ("labels added: TOOL"). The held-out
slice is every task whose id is a multiple of 5 (at least one task), or --test; it is never
trained on or used to pick model-best. The dev set that picks model-best is --dev, else a tenth of
the annotations to train on and of the --with data. The candidate is swapped in when
scripts.compare's check (compare_metrics) finds no overall figure worse than the served model's by
more than the margin, on the labels the served model has: a label only the candidate has is new,
not worse. The server (RetrainingLoop) runs one training at a time in a subprocess, stops it after
--retrain-timeout, queues at most one more, keeps serving meanwhile, and records in DIR/state.json
which model it serves, so that a restart serves the last one swapped in.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import re
import signal
import sys
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from spacy.language import Language
from spacy.tokens import Doc

from scripts.common.errors import UserError, one_line
from scripts.common.files import PROJECT_ROOT, write_bytes_atomic, write_text_atomic
from scripts.common.options import DEFAULT_GPU_ID
from scripts.evaluation.comparison import OVERALL, Row, compare_metrics, new_labels
from scripts.inference.annotation_check import MAX_CHARS, Rules, Tally, check_annotation
from scripts.inference.annotation_store import (
    AnnotationStore,
    BadEvent,
    Change,
    event_name,
    parse_event,
    parse_tasks,
)
from scripts.inference.cold_start import TRAINED_NAME, cold_start_plan
from scripts.inference.predict import LabelConfig, Predictor, parse_label_config
from scripts.training.config import TASK_COMPONENTS

if TYPE_CHECKING:  # imported where a run needs it: the server starts without matplotlib & co.
    from scripts.workflow.stages import RunFolder

log = logging.getLogger("scripts.serve")
STATE = "state.json"
RUNS = "runs"
RESULT = "result.json"
TEST_EVERY = 5  # tasks whose id is a multiple of this are held out
DEV_SHARE = 0.1  # of the --with data, to pick model-best with the annotations' own share
CAT_COMPONENTS = ("textcat", "textcat_multilabel")
LOCAL_VERSION = re.compile(r"\+ls\d+$")
EVALUATION = "eval-candidate"  # the candidate's evaluation in a run folder; eval-served beside it
# A CPU trains the default base model on a few thousand annotations within it; a GPU needs less.
RETRAIN_TIMEOUT_S = 7200


@dataclass(frozen=True)
class RetrainSettings:
    every: int = 0  # retrain after this many new or changed annotations; 0: only when asked
    epochs: int = 0  # 0: the config step chooses from the corpus size
    margin: float = 0.01  # largest drop of an overall figure that still swaps
    test: Optional[Path] = None  # a fixed gold file instead of the held-out slice
    gpu_id: str = DEFAULT_GPU_ID
    with_data: tuple[Path, ...] = ()  # .spacy training data trained on with the annotations
    dev: tuple[Path, ...] = ()  # .spacy data that picks model-best; default: split off training
    max_chars: int = MAX_CHARS  # a longer text is refused on arrival and skipped by a run
    timeout: float = RETRAIN_TIMEOUT_S  # seconds a run may take (the server stops it); 0: no limit


@dataclass(frozen=True)
class Outcome:
    result: str  # swapped | kept | failed
    reason: str
    model_version: str  # the candidate's ("" when none was trained)
    model: str = ""  # the candidate's folder, relative to DIR
    skipped: dict[str, Any] = field(default_factory=lambda: Tally().as_dict())
    labels_added: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "result": self.result,
            "reason": self.reason,
            "model_version": self.model_version,
            "skipped": self.skipped,
            "labels_added": list(self.labels_added),
        }

    @classmethod
    def from_dict(cls, found: dict[str, Any]) -> Outcome:
        """An Outcome from result.json (older files lack the last fields)."""
        return cls(
            str(found["result"]),
            str(found["reason"]),
            str(found.get("model_version", "")),
            str(found.get("model", "")),
            found.get("skipped") or Tally().as_dict(),
            tuple(found.get("labels_added") or ()),
        )


@dataclass
class RunFacts:
    """What a run finds out on its way, reported whatever its result."""

    skipped: Tally = field(default_factory=Tally)
    labels_added: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


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


def trainable_tasks(
    tasks: list[dict[str, Any]], *, rules: Rules, skipped: Tally
) -> list[dict[str, Any]]:
    """The tasks with their annotations that can train (annotation_check); the others are left
    out and counted in `skipped`: a journal written before the webhook checked them may hold some,
    and one bad record must not stop the loop."""
    kept = []
    for task in tasks:
        annotations = []
        for annotation in task["annotations"]:
            problem = check_annotation(task, annotation, rules=rules)
            if problem is None:
                annotations.append(annotation)
            else:
                where = f"task {task['id']}, annotation {annotation.get('id')}"
                skipped.add(problem.reason, f"{where}: {problem.detail}")
        if usable({**task, "annotations": annotations}):
            kept.append({**task, "annotations": annotations})
    return kept


def count_conversion_skips(report: dict[str, Any], skipped: Tally) -> None:
    """Records the convert step skipped all the same (it runs with --lenient as a safety net
    behind the check): counted like the others."""
    for event in report["events"]:
        if event["kind"] == "skipped":
            example = event["examples"][0] if event["examples"] else event["reason"]
            skipped.add(event["reason"], example, count=event["count"])


def write_tasks(tasks: list[dict[str, Any]], path: Path) -> None:
    """Label Studio's JSON export, one task a line, so that a conversion message's line number
    names the task."""
    lines = ",\n".join(json.dumps(task, ensure_ascii=False) for task in tasks)
    write_text_atomic(f"[\n{lines}\n]\n", path)


@dataclass(frozen=True)
class LabelSet:
    """The labels a candidate predicts: entity labels and categories."""

    ents: tuple[str, ...]
    cats: tuple[str, ...]


def corpus_labels(corpus: Path, *, lang: str) -> tuple[set[str], set[str]]:
    """The entity labels and categories of the documents to train on (train and dev)."""
    import spacy
    from spacy.tokens import DocBin

    vocab = spacy.blank(lang).vocab
    docs = [
        doc
        for name in ("train", "dev")
        for doc in DocBin().from_disk(corpus / f"{name}.spacy").get_docs(vocab)
    ]
    return {ent.label_ for doc in docs for ent in doc.ents}, {c for doc in docs for c in doc.cats}


def plan_labels(
    served: LabelSet,
    *,
    components: list[str],
    used: tuple[set[str], set[str]],
    facts: RunFacts,
) -> LabelSet:
    """The served model's labels plus those the annotators use that it lacks, each added to the
    component that predicts its kind; a kind the served model has no component for is reported
    as not learned."""
    used_ents, used_cats = used
    kinds = (
        ("entities", "ner" in components, used_ents, served.ents, "an entity recognizer"),
        (
            "categories",
            any(c in CAT_COMPONENTS for c in components),
            used_cats,
            served.cats,
            "a text classifier",
        ),
    )
    added: dict[str, tuple[str, ...]] = {}
    for kind, learned, in_use, known, component in kinds:
        added[kind] = tuple(sorted(in_use - set(known))) if learned else ()
        facts.labels_added += added[kind]
        if in_use and not learned:
            facts.notes.append(
                f"{kind} {', '.join(sorted(in_use))} not learned: the served model has no "
                f"{component}"
            )
    return LabelSet(ents=served.ents + added["entities"], cats=served.cats + added["categories"])


def write_label_data(labels_dir: Path, *, nlp: Language, labels: LabelSet) -> None:
    """labels/<factory>.json as `spacy init labels` writes them for the served pipeline's task
    components, with the added labels (add_label, as spaCy adds a label to a trained component):
    what the config's [initialize] reads, so that the candidate has every label."""
    labels_dir.mkdir(exist_ok=True)
    for name in nlp.pipe_names:
        factory = nlp.get_pipe_meta(name).factory
        if factory not in TASK_COMPONENTS:
            continue
        pipe = nlp.get_pipe(name)
        for label in labels.ents if factory == "ner" else labels.cats:
            pipe.add_label(label)  # type: ignore[attr-defined]
        data = pipe.label_data  # type: ignore[attr-defined]
        write_text_atomic(json.dumps(data) + "\n", labels_dir / f"{factory}.json")


def untrained(lang: str, components: list[str], labels: LabelSet) -> Language:
    """A blank pipeline with the task components and labels, initialized (spaCy's default
    models, untrained; the entity recognizer's moves are complete only then): what a cold-start
    model's first retraining writes its label files from."""
    import spacy

    nlp = spacy.blank(lang)
    for component in components:
        pipe = nlp.add_pipe(component)
        for label in labels.ents if component == "ner" else labels.cats:
            pipe.add_label(label)  # type: ignore[attr-defined]
    nlp.initialize()
    return nlp


def drop_unknown_labels(doc: Doc, *, ent_labels: set[str], cat_labels: set[str]) -> int:
    """Only the given labels in a Doc (of --with/--dev data, or held out): an entity of another
    label becomes missing annotation (not "no entity"), another category is removed."""
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
    facts = RunFacts()
    try:
        outcome = _retrain(data_dir, run_dir, model, run, upto, settings, facts, echo)
    except UserError as err:
        outcome = Outcome("failed", one_line(err), "")
    except Exception as err:  # the server reports why; the traceback is in the run's log
        log.exception("retraining failed")
        outcome = Outcome("failed", f"{type(err).__name__}: {one_line(err)}", "")
    outcome = with_facts(outcome, facts)
    write_result(outcome, run_dir)
    return outcome


def with_facts(outcome: Outcome, facts: RunFacts) -> Outcome:
    """The outcome with what the run found out: skipped records, labels added, notes."""
    reason = outcome.reason
    if facts.labels_added:
        reason += f"; labels added: {', '.join(facts.labels_added)}"
    if facts.skipped.count:
        reason += f"; {facts.skipped.count} annotations skipped as they cannot train (see skipped)"
    reason += "".join(f"; {note}" for note in facts.notes)
    return replace(
        outcome,
        reason=reason,
        skipped=facts.skipped.as_dict(),
        labels_added=tuple(facts.labels_added),
    )


def write_result(outcome: Outcome, run_dir: Path) -> None:
    write_text_atomic(
        json.dumps({**outcome.as_dict(), "model": outcome.model}, indent=2, ensure_ascii=False)
        + "\n",
        run_dir / RESULT,
    )


def _retrain(
    data_dir: Path,
    run_dir: Path,
    model: str,
    run: int,
    upto: Optional[int],
    settings: RetrainSettings,
    facts: RunFacts,
    echo: Callable[[str], None],
) -> Outcome:
    from scripts.corpus.conversion import Settings
    from scripts.inference.predict import describe_pipeline
    from scripts.scoring.pipeline import load_pipeline
    from scripts.workflow import stages

    check_data_files(settings, with_option="--with", dev_option="--dev")
    nlp = load_pipeline(model)
    served = describe_pipeline(nlp)
    cold = cold_start_plan(nlp)
    if cold is not None:  # the first retraining trains what the cold-start model stands for
        components, transformer, name = list(cold.components), cold.transformer, TRAINED_NAME
        served_labels = LabelSet(cold.labels, cold.categories)
    else:
        components = [
            nlp.get_pipe_meta(name).factory
            for name in nlp.pipe_names
            if nlp.get_pipe_meta(name).factory in TASK_COMPONENTS
        ]
        transformer = str(nlp.config["components"]["transformer"]["model"]["name"])
        name = nlp.meta.get("name", "pipeline")
        served_labels = LabelSet(served.ent_labels, served.cat_labels)
    lang, served_version = nlp.lang, served.version
    version = f"{base_version(nlp.meta.get('version', '0.0.0'))}+ls{run}"
    store = AnnotationStore.open(data_dir, upto=upto, repair=False)
    rules = Rules(
        lang=lang,
        max_chars=settings.max_chars,
        one_category=served.exclusive and bool(served.cat_labels),
    )
    tasks = trainable_tasks(store.export(), rules=rules, skipped=facts.skipped)
    check_enough(len(tasks), fixed_test=settings.test is not None)
    train_tasks, test_tasks = split_tasks(tasks, fixed_test=settings.test is not None)
    for split, chosen in (("train", train_tasks), ("test", test_tasks)):
        if chosen:
            write_tasks(chosen, run_dir / f"{split}.json")
    echo(
        f"Run {run}: {len(train_tasks)} tasks to train on, "
        f"{len(test_tasks) or settings.test} held out; {facts.skipped.count} annotations skipped "
        "as they cannot train"
    )
    folder = run_folder(run_dir)
    corpus = folder.corpus
    try:
        conversion = stages.convert(
            run=folder,
            train=[run_dir / "train.json"],
            dev=[],
            test=[settings.test or run_dir / "test.json"],
            settings=Settings(lang=lang, lenient=True),
            echo=echo,
        )
    except UserError as err:
        raise UserError(f"converting the annotations failed: {err}") from None
    count_conversion_skips(dict(conversion.report), facts.skipped)
    if settings.test is None:
        held_out_without_entities(corpus, lang=lang)
    labels = plan_labels(
        served_labels, components=components, used=corpus_labels(corpus, lang=lang), facts=facts
    )
    if facts.labels_added:
        echo(f"Labels added: {', '.join(facts.labels_added)}")
    if settings.with_data or settings.dev:
        add_data(
            corpus,
            settings=settings,
            lang=lang,
            ent_labels=set(labels.ents),
            cat_labels=set(labels.cats),
            echo=echo,
        )
    check_components(
        folder.split("train"), components=components, lang=lang, with_data=settings.with_data
    )
    # The labels stage's files, from the served model and the labels added, not from the corpus
    write_label_data(
        folder.labels,
        nlp=nlp if cold is None else untrained(lang, components, labels),
        labels=labels,
    )
    del nlp, served  # not kept in memory while the candidate trains
    stages.config(
        run=folder,
        components=",".join(components),
        transformer=transformer,
        lang=lang,
        max_epochs=settings.epochs,
    )
    stages.train(run=folder, gpu_id=settings.gpu_id, name=name, version=version)
    candidate = folder.model_best
    model_version = f"{lang}_{name}-{version}"
    rows = compare_on_held_out(
        folder, served=served_labels, model=model, lang=lang, settings=settings, echo=echo
    )
    relative = str(candidate.relative_to(data_dir))
    held_out = len(test_tasks) or settings.test
    worse = [row for row in rows if row.worse]
    if worse:
        figures = ", ".join(
            f"{r.figure} {r.a:.3f} -> {'none' if r.b is None else format(r.b, '.3f')}"
            for r in worse[:3]
        ) + (f" and {len(worse) - 3} more" if len(worse) > 3 else "")
        return Outcome(
            "kept",
            f"{model_version} is worse than {served_version} by more than {settings.margin} on "
            f"{held_out} held-out tasks: {figures}",
            model_version,
            relative,
        )
    overall = ", ".join(f"{r.figure} {r.b:.3f}" for r in rows if r.overall and r.b is not None)
    return Outcome(
        "swapped",
        f"no overall figure worse than {served_version} by more than {settings.margin} ({overall})",
        model_version,
        relative,
    )


def run_folder(run_dir: Path) -> RunFolder:
    """A run's files as the workflow's stages lay them out, the candidate's evaluation in
    eval-candidate/ beside eval-served/."""
    from scripts.workflow.stages import RunFolder

    return RunFolder(corpus=run_dir / "corpus", training=run_dir, evaluation=run_dir / EVALUATION)


def compare_on_held_out(
    run: RunFolder,
    *,
    served: LabelSet,
    model: str,
    lang: str,
    settings: RetrainSettings,
    echo: Callable[[str], None],
) -> list[Row]:
    """Evaluate the candidate (run's model-best) and the served MODEL on the held-out data with
    the workflow's evaluate stage, and compare them (compare.txt). Where the held-out data has
    labels the served model lacks, the overall figures that decide the swap are the candidate's
    on the labels the served model has (a new label is new, not worse); the per-label rows show
    the new labels too."""
    from scripts.evaluation.comparison import format_table, notes
    from scripts.workflow.stages import evaluate

    gpu_id = settings.gpu_id
    a = dict(evaluate(run=run, gpu_id=gpu_id, model=model, output=run.training / "eval-served"))
    b = dict(evaluate(run=run, gpu_id=gpu_id))
    known = None
    if any(new_labels(a=a, b=b, task=task) for task in OVERALL):
        test_known = known_labels_test(run.corpus, served=served, lang=lang)
        known = dict(
            evaluate(
                run=run,
                gpu_id=gpu_id,
                data=test_known,
                output=run.training / f"{EVALUATION}-known",
            )
        )
    rows = verdict_rows(served=a, candidate=b, known=known, margin=settings.margin)
    table = format_table(rows, margin=settings.margin)
    caveats = notes(a=a, b=known or b)
    if known is not None:
        caveats.append(
            "B's overall figures are on the labels A's model has (eval-candidate-known): a label "
            "only B has is new, not worse"
        )
    write_text_atomic(
        table + "\n" + "".join(f"Note: {n}\n" for n in caveats), run.training / "compare.txt"
    )
    echo(table)
    return rows


def verdict_rows(
    *,
    served: dict[str, Any],
    candidate: dict[str, Any],
    known: Optional[dict[str, Any]],
    margin: float,
) -> list[Row]:
    """The comparison that decides the swap: overall figures of the candidate on the labels the
    served model has (`known`, where the held-out data has others), per-label figures of its whole
    evaluation, a label only it has marked new."""
    rows = compare_metrics(a=served, b=candidate, margin=margin)
    if known is None:
        return rows
    overall = [row for row in compare_metrics(a=served, b=known, margin=margin) if row.overall]
    return overall + [row for row in rows if not row.overall]


def known_labels_test(corpus: Path, *, served: LabelSet, lang: str) -> Path:
    """corpus/test-known.spacy: the held-out data with only the served model's labels (the
    others missing, as drop_unknown_labels makes them)."""
    import spacy
    from spacy.tokens import DocBin

    docs = list(DocBin().from_disk(corpus / "test.spacy").get_docs(spacy.blank(lang).vocab))
    for doc in docs:
        drop_unknown_labels(doc, ent_labels=set(served.ents), cat_labels=set(served.cats))
    path = corpus / "test-known.spacy"
    write_bytes_atomic(path, DocBin(docs=docs).to_bytes())
    return path


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
        self.last: Optional[dict[str, Any]] = state.get("last")
        self.since: Optional[str] = None
        self.training: Optional[asyncio.Task] = None
        self.queued = False
        self.refused = 0  # annotations refused since the server started
        self.on_swap: Optional[Callable[[], None]] = None  # called after a model is swapped in
        self.last_refused: Optional[str] = None
        # The first check builds the tokenizer, a second or more: at start, not in a webhook,
        # which Label Studio gives up on after 1 s (WEBHOOK_TIMEOUT)
        check_annotation({"id": 0, "data": {"text": "Ready."}}, {"id": 0}, rules=self.rules({}))

    # -- routes

    async def webhook(self, payload: Any) -> dict[str, Any]:
        """A Label Studio event: annotations stored (those that cannot train refused: Refused),
        deletions applied, training started when due or asked for."""
        action = event_name(payload)
        change = parse_event(payload)
        if change is None:
            log.info("Label Studio event %s ignored: it carries no annotations", action)
            return {"status": f"ignored: {action} carries no annotations"}
        stored, refused = await self._store(change, self.rules(payload))
        training = self.request() if action == "START_TRAINING" else self._maybe_train()
        answer = {"status": "ok", "stored": stored, "training": training}
        return self._answer(action, answer, refused=refused, sent=len(change.put))

    async def train(self, payload: Any) -> dict[str, Any]:
        """The ML backend's older /train call: {"annotations": [tasks], "label_config", ...}."""
        if not isinstance(payload, dict):
            raise BadEvent("the /train body is not a JSON object")
        change = parse_tasks(payload.get("annotations") or [], event="train")
        stored, refused = await self._store(change, self.rules(payload))
        answer = {"status": "ok", "stored": stored, "training": self.request()}
        return self._answer("train", answer, refused=refused, sent=len(change.put))

    def rules(self, payload: dict[str, Any]) -> Rules:
        """What an annotation must satisfy to be stored: the served pipeline's language,
        --max-chars, and the project's labeling config where Label Studio sent it."""
        return Rules(
            lang=self.live.nlp.lang,
            max_chars=self.settings.max_chars,
            one_category=self.live.exclusive and bool(self.live.cat_labels),
            label_config=label_config_of(payload),
        )

    def _answer(
        self, event: str, answer: dict[str, Any], *, refused: list[str], sent: int
    ) -> dict[str, Any]:
        """The answer, or Refused (422) naming the annotations that were not stored (of `sent`
        in the event)."""
        if not refused:
            return answer
        self.refused += len(refused)
        self.last_refused = refused[-1]
        for line in refused:
            log.warning("Label Studio %s: not stored: %s", event, line)
        message = (
            f"{event}: {refused[0]}; not stored"
            if sent == 1
            else f"{event}: {len(refused)} of {sent} annotations not stored, the first: "
            f"{refused[0]}" + (f" (all {len(refused)} under 'refused')" if len(refused) > 1 else "")
        )
        raise Refused(message, answer={**answer, "refused": refused})

    def health(self) -> dict[str, Any]:
        return {
            "annotations": len(self.store.annotations),
            "refused": {"count": self.refused, "last": self.last_refused},
            "training": {
                "state": "training" if self.training else "idle",
                "since": self.since,
                "queued": self.queued,
                "changed_since_last": self.store.changed_since(self.counted_from),
                "last": self.last,
            },
        }

    # -- storing and triggering

    async def _store(self, change: Change, rules: Rules) -> tuple[int, list[str]]:
        return await asyncio.to_thread(self._store_trainable, change, rules)

    def _store_trainable(self, change: Change, rules: Rules) -> tuple[int, list[str]]:
        """Store the annotations that can train; (how many it added or changed, one line for
        each refused). A refused update leaves the annotation's stored version as it was."""
        change = self.store.resolve(change)
        kept, refused = [], []
        for item in change.put:
            problem = check_annotation(item["task"], item["annotation"], rules=rules)
            if problem is None:
                kept.append(item)
            else:
                where = f"task {item['task']['id']}, annotation {item['annotation']['id']}"
                refused.append(f"{where}: {problem.detail}")
        return self.store.apply(replace(change, put=tuple(kept))), refused

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
                if self.on_swap is not None:
                    self.on_swap()
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
        command += ["--max-chars", str(settings.max_chars)]
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
                start_new_session=True,  # its own process group: stopped as a whole
            )
            try:
                code = await asyncio.wait_for(process.wait(), timeout=settings.timeout or None)
            except (asyncio.TimeoutError, asyncio.CancelledError) as stopped:
                await stop_process(process)
                if isinstance(stopped, asyncio.CancelledError):
                    raise
                outcome = Outcome(
                    "failed",
                    f"the run took longer than --retrain-timeout {settings.timeout:g} s and was "
                    f"stopped; {self.live.version} is still served: raise --retrain-timeout or "
                    "lower --retrain-epochs",
                    "",
                )
                write_result(outcome, run_dir)
                return outcome
        result = run_dir / RESULT
        if not result.is_file():
            return Outcome(
                "failed", f"the training process exited with {code}; see {run_dir}/train.log", ""
            )
        return Outcome.from_dict(json.loads(result.read_text(encoding="utf8")))

    def _write_state(self, outcome: Outcome, *, upto: int, served: str = "") -> None:
        state = read_state(self.data_dir)
        if served:
            state["served"] = {"model": outcome.model, "model_version": served}
        state.update(trained_upto=upto, last=outcome.as_dict())
        write_text_atomic(json.dumps(state, indent=2) + "\n", self.data_dir / STATE)
        self.trained_upto = upto


async def stop_process(process: asyncio.subprocess.Process) -> None:
    """Kill a run's process group (the run and anything it started) and reap it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:  # it ended meanwhile
        pass
    await process.wait()


class Refused(BadEvent):
    """Annotations that cannot train, not stored: answered 422 with the one-line message and
    `answer` (what was stored meanwhile, the refused ones one line each)."""

    def __init__(self, message: str, *, answer: dict[str, Any]) -> None:
        super().__init__(message)
        self.answer = answer


def label_config_of(payload: dict[str, Any]) -> Optional[LabelConfig]:
    """The project's labeling config Label Studio sends: project.label_config with a webhook,
    label_config with /train; None when it sent none."""
    project = payload.get("project")
    xml = project.get("label_config") if isinstance(project, dict) else payload.get("label_config")
    return None if xml is None or xml == "" else parse_label_config(xml)


def next_run(data_dir: Path) -> int:
    runs = data_dir / RUNS
    numbers = [int(p.name) for p in runs.iterdir() if p.name.isdigit()] if runs.is_dir() else []
    return max(numbers, default=0) + 1
