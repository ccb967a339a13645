"""Conversion: annotation files through the readers into .spacy DocBins, with the report of what was
repaired or dropped (the code behind scripts/convert.py).

    convert_files(sources=[Path("a.tsv")], output=Path("corpus/all.spacy"))
    convert_project(train=[Path("a.tsv")], dev=[], test=[], output_dir=Path("corpus"), seed=0)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, NamedTuple, TypedDict, TypeGuard

from spacy.tokens import Doc

from scripts.common.cats import NEGATION_PREFIX, POSITIVE
from scripts.common.files import write_text_atomic
from scripts.corpus.docbins import DocStore, category_names, complete_cats, write_if_changed
from scripts.corpus.readers import NO_TEXT, READERS, DataError, Log, ReadOptions, detect_format
from scripts.corpus.readers.spans import MISALIGNED_POLICIES, SPAN_KEY, Misaligned, shorten
from scripts.corpus.repeats import RepeatedTexts, RepeatsReport, Where, format_repeats
from scripts.corpus.split import SplitError, assign_splits, split_sizes, stratum
from scripts.corpus.stats import (
    DocSummary,
    Stats,
    StatsReport,
    stats_json,
    summarize,
    textcat_mode,
)
from scripts.corpus.textfiles import (
    Encoding,
    check_decodes,
    check_encoding,
    file_encoding,
    head_lines,
    numbered_lines,
)

SPLITS = ("train", "dev", "test")
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)
HELD_OUT = 0.1  # the share of --train split off for an empty --dev or --test
# A label seen once among this many documents with its kind of annotation is worth a warning.
RARE_LABEL_CORPUS = 100
Echo = Callable[[str], None]


class ConvertError(Exception):
    """A problem the user can fix, said in one line: what is wrong; how to fix it."""


@dataclass(frozen=True)
class Settings:
    """How every source of a run is read: the command's reader options, one place for both modes."""

    fmt: str = "auto"
    lang: str = "en"
    tag_column: int = -1
    token_column: int = 1
    labels_file: Path | None = None
    misaligned: str = "expand"
    encoding: str | None = None
    recursive: bool = False
    lenient: bool = False
    strict: bool = False


@dataclass(frozen=True)
class Job:
    """Which sources go where: straight into an output, or into a pool split into train/dev/test."""

    targets: dict[str, Path]
    direct: dict[str, list[Path]]
    pooled: list[Path] = field(default_factory=list)
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS
    recursive: bool = False  # a folder source gives the files of its sub-folders too


# ---- the report (report.json holds a Report) -------------------------------------------------


class SourceReport(TypedDict):
    file: str
    # None: no reader fits (the run stops); "skipped": an entry of a folder that was not read
    format: str | None
    reason: str
    docs: int


class OutputReport(StatsReport):
    path: str


class TextcatReport(TypedDict):
    mode: str  # none | exclusive | multilabel
    why: str


class EventReport(TypedDict):
    kind: str
    reason: str
    count: int
    examples: list[str]


class Report(TypedDict):
    lang: str
    seed: int
    sources: list[SourceReport]
    outputs: dict[str, OutputReport]
    total: StatsReport
    entity_labels: list[str]
    categories: list[str]
    textcat: TextcatReport
    events: list[EventReport]
    notes: list[str]
    duplicates: RepeatsReport


@dataclass(frozen=True)
class Conversion:
    """What a run did: its report, and which outputs it wrote (the others held the same bytes)."""

    report: Report
    changed: dict[str, bool]


# ---- the two ways to call it -----------------------------------------------------------------


def convert_files(
    *,
    sources: list[Path],
    output: Path,
    split: tuple[float, float, float] | None = None,
    seed: int = 0,
    settings: Settings = Settings(),
    echo: Echo = print,
) -> Conversion:
    """Sources -> one .spacy file, or with split fractions OUTPUT/{train,dev,test}.spacy."""
    if not sources:
        raise ConvertError("no SOURCE given; name the files or folders to convert")
    if split is None:
        job = Job(targets={"all": output}, direct={"all": sources}, recursive=settings.recursive)
    else:
        job = Job(
            targets={name: output / f"{name}.spacy" for name in SPLITS},
            direct={},
            pooled=sources,
            fractions=split,
            recursive=settings.recursive,
        )
    return run_job(job, settings=settings, seed=seed, echo=echo)


def convert_project(
    *,
    train: list[Path],
    dev: list[Path],
    test: list[Path],
    output_dir: Path,
    seed: int = 0,
    settings: Settings = Settings(),
    echo: Echo = print,
) -> Conversion:
    """--train/--dev/--test -> OUTPUT_DIR/{train,dev,test}.spacy + report.json; an empty --dev or
    --test is split off --train (10% each, at least one document)."""
    if not train:
        raise ConvertError("--train names no file; give the training files, comma-separated")
    targets = {name: output_dir / f"{name}.spacy" for name in SPLITS}
    fractions = (0.0, HELD_OUT if not dev else 0.0, HELD_OUT if not test else 0.0)
    pooled = train if not (dev and test) else []
    direct = {
        name: paths
        for name, paths in (("train", train if not pooled else []), ("dev", dev), ("test", test))
        if paths
    }
    job = Job(
        targets=targets,
        direct=direct,
        pooled=pooled,
        fractions=(1.0 - sum(fractions), fractions[1], fractions[2]),
        recursive=settings.recursive,
    )
    return run_job(
        job, settings=settings, seed=seed, echo=echo, report_path=output_dir / "report.json"
    )


def make_options(settings: Settings) -> ReadOptions:
    """The readers' options from the run's settings; ConvertError for a value no reader takes."""
    lang, misaligned = settings.lang, settings.misaligned
    tag_column, token_column = settings.tag_column, settings.token_column
    labels_file = settings.labels_file
    try:
        from spacy.util import get_lang_class

        get_lang_class(lang)
    except Exception:
        raise ConvertError(
            f"--lang {lang!r}: spaCy has no language with that code; "
            "use a code such as en, de, fr, zh"
        ) from None
    if not is_policy(misaligned):
        raise ConvertError(
            f"--misaligned {misaligned!r} is not a policy; "
            f"use one of {', '.join(MISALIGNED_POLICIES)}"
        )
    for option, value in (("--tag-column", tag_column), ("--token-column", token_column)):
        if value == 0:
            raise ConvertError(
                f"{option} 0: columns count from 1 (negative numbers count from the end, -1 = last)"
            )
    codec = parse_encoding(settings.encoding)
    labels = read_labels_file(labels_file, encoding=codec)
    return ReadOptions(
        lang=lang,
        tag_column=tag_column,
        token_column=token_column,
        labels=labels,
        labels_path=labels_file,
        misaligned=misaligned,
        encoding=codec,
    )


def parse_encoding(name: str | None) -> str | None:
    """--encoding NAME as Python's codecs call it; None (UTF-8) when not given."""
    if not name:
        return None
    try:
        return check_encoding(name)
    except LookupError:
        raise ConvertError(
            f"--encoding {name!r}: Python knows no such text encoding; "
            "use a name such as cp1252, latin-1, utf-16, shift_jis"
        ) from None


def is_policy(value: str) -> TypeGuard[Misaligned]:
    return value in MISALIGNED_POLICIES


def read_labels_file(path: Path | None, *, encoding: str | None = None) -> tuple[str, ...] | None:
    if path is None:
        return None
    if not path.is_file():
        raise ConvertError(f"{path}: no such labels file; give a file with one class name per line")
    log = Log(file=str(path))
    try:
        lines = numbered_lines(path, log, encoding=file_encoding(path, named=encoding))
        names = tuple(text.strip() for _, text in lines if text.strip())
    except DataError as error:
        raise ConvertError(error.format(str(path))) from None
    if not names:
        raise ConvertError(f"{path}:1: the labels file is empty; write one class name per line")
    return names


def parse_split(value: str) -> tuple[float, float, float]:
    try:
        parts = [float(x) for x in value.split(",")]
    except ValueError:
        parts = []
    if len(parts) != 3 or min(parts) < 0 or parts[0] <= 0 or abs(sum(parts) - 1.0) > 1e-6:
        raise ConvertError(
            f"--split {value!r}: give three fractions for train,dev,test that sum to 1, "
            "e.g. 0.8,0.1,0.1"
        )
    train, dev, test = parts
    return train, dev, test


def parse_file_list(value: str) -> list[Path]:
    """A comma-separated list of files; weasel passes an empty string for an empty var."""
    return [Path(part.strip()) for part in value.split(",") if part.strip()]


# ---- running a job ---------------------------------------------------------------------------


@dataclass
class Progress:
    log: Log
    sources: list[SourceReport] = field(default_factory=list)
    repeats: RepeatedTexts = field(default_factory=RepeatedTexts)
    # ("entity" | "category", label) -> where it was first seen, for the rare-label warnings
    first_seen: dict[tuple[str, str], str] = field(default_factory=dict)


class ReadDoc(NamedTuple):
    """A document read, with what the report and the split need of it."""

    doc: Doc
    summary: DocSummary
    where: Where


@dataclass
class Pool:
    """Documents whose split is decided once all are read, with what the split needs of them."""

    docs: DocStore
    summaries: list[DocSummary] = field(default_factory=list)
    wheres: list[Where] = field(default_factory=list)


def run_job(
    job: Job,
    *,
    settings: Settings,
    seed: int,
    echo: Echo = print,
    report_path: Path | None = None,
) -> Conversion:
    options = make_options(settings)
    fmt, lenient, strict = settings.fmt, settings.lenient, settings.strict
    if fmt != "auto" and fmt not in READERS:
        raise ConvertError(
            f"--format {fmt!r} is not a reader; use auto or one of: {', '.join(READERS)}"
        )
    if lenient and strict:
        raise ConvertError(
            "--lenient skips bad lines, --strict stops at suspicious ones; give one of them"
        )
    outputs = [*job.targets.values(), *([report_path] if report_path else [])]
    exclude = {path: "an output of this run" for path in outputs}
    if options.labels_path:
        exclude[options.labels_path] = "the --labels-file"
    direct = {
        name: expand_sources(paths, exclude=exclude, recursive=job.recursive)
        for name, paths in job.direct.items()
    }
    pooled = expand_sources(job.pooled, exclude=exclude, recursive=job.recursive)
    refuse_overwriting_sources(
        outputs, [s.path for sources in [*direct.values(), pooled] for s in sources if s.readable]
    )
    progress = Progress(Log(lenient=lenient, strict=strict))
    outputs_docs = {name: DocStore(options.vocab) for name in job.targets}
    stats = {name: Stats() for name in job.targets}
    pool = Pool(DocStore(options.vocab))
    for source in pooled:
        for read in read_docs(source, fmt=fmt, options=options, progress=progress):
            pool.docs.add(read.doc)
            pool.summaries.append(read.summary)
            pool.wheres.append(read.where)
    for name, sources in direct.items():
        for source in sources:
            for read in read_docs(source, fmt=fmt, options=options, progress=progress):
                outputs_docs[name].add(read.doc)
                stats[name].add_summary(read.summary)
                progress.repeats.place(read.doc, read.summary, where=read.where, output=name)
    labels = sorted(
        {label for docs in outputs_docs.values() for label in docs.labels} | pool.docs.labels
    )
    if len(pool.docs):
        _route(pool, job.fractions, seed, labels, outputs_docs, stats, progress)
    total = Stats()
    for one in stats.values():
        total.merge(one)
    if total.docs == 0:
        names = [
            str(s.path)
            for s in [*pooled, *[s for sources in direct.values() for s in sources]]
            if s.readable
        ]
        raise ConvertError(
            f"{', '.join(names)}: no documents were read; check the files and --format"
        )
    # Every output is built before any is written, so that a failure leaves the old set in place;
    # each output's documents are let go once its bytes are built.
    data = {name: outputs_docs.pop(name).pop_bytes(labels=labels) for name in job.targets}
    changed = {name: write_if_changed(path, data[name]) for name, path in job.targets.items()}
    report = build_report(job, stats, total, labels, progress, options, seed)
    if report_path is not None:
        # The report leaves `changed` out, so that a re-run with the same data rewrites nothing.
        write_text_atomic(json.dumps(report, indent=2, ensure_ascii=False) + "\n", report_path)
    echo(format_report(report, changed))
    return Conversion(report, changed)


@dataclass(frozen=True)
class Source:
    path: Path
    in_folder: bool  # found in a folder: skipped (and said) when no reader knows it
    skipped: str = ""  # why a folder's entry is not read at all (said in the report)

    @property
    def readable(self) -> bool:
        return not self.skipped


def expand_sources(
    paths: list[Path], *, exclude: dict[Path, str] | None = None, recursive: bool = False
) -> list[Source]:
    """Files as given; a folder gives its entries, sorted: its files to read, and what it holds
    that is not read (hidden entries, sub-folders unless recursive, `exclude`), with why."""
    skip = {path.resolve(): why for path, why in (exclude or {}).items()}
    sources: list[Source] = []
    for path in paths:
        if path.is_dir():
            found = list(_folder_entries(path, skip=skip, recursive=recursive, seen=set()))
            if not any(source.readable for source in found):
                raise ConvertError(_no_files_in(path, found))
            sources.extend(found)
        elif path.is_file():
            sources.append(Source(path, False))
        else:
            raise ConvertError(f"{path}: no such file or folder; check the path")
    return sources


SUB_FOLDER = "a sub-folder; add --recursive to read sub-folders"


def _folder_entries(
    folder: Path, *, skip: dict[Path, str], recursive: bool, seen: set[Path]
) -> Iterator[Source]:
    seen.add(folder.resolve())
    for entry in sorted(folder.iterdir()):
        kind = "folder" if entry.is_dir() else "file"
        if entry.name.startswith("."):
            yield Source(entry, True, f"a hidden {kind}; name it as a source to read it")
        elif entry.is_dir() and not recursive:
            yield Source(entry, True, SUB_FOLDER)
        elif entry.is_dir() and entry.resolve() in seen:
            yield Source(entry, True, "a link to a folder read already")
        elif entry.is_dir():
            inside = list(_folder_entries(entry, skip=skip, recursive=recursive, seen=seen))
            yield from inside or [Source(entry, True, "an empty folder")]
        elif not entry.is_file():
            yield Source(entry, True, "not a regular file")
        elif entry.resolve() in skip:
            yield Source(entry, True, skip[entry.resolve()])
        else:
            yield Source(entry, True)


def _no_files_in(folder: Path, found: list[Source]) -> str:
    if not found:
        return f"{folder}: the folder holds no files; put the annotation files in it"
    listed = ", ".join(f"{s.path.name} ({s.skipped.partition(';')[0]})" for s in found[:3])
    more = f" and {len(found) - 3} more" if len(found) > 3 else ""
    hint = (
        "add --recursive to read sub-folders"
        if any(s.skipped == SUB_FOLDER for s in found)
        else "put the annotation files in it"
    )
    return f"{folder}: nothing to read in the folder, only {listed}{more}; {hint}"


def refuse_overwriting_sources(outputs: list[Path], sources: list[Path]) -> None:
    resolved = {p.resolve() for p in sources}
    for output in outputs:
        if output.resolve() in resolved:
            raise ConvertError(
                f"{output}: the output is one of the sources; write the output somewhere else"
            )
        if output.is_dir():
            raise ConvertError(
                f"{output}: is a folder, a file is expected here; "
                "choose a file name ending in .spacy"
            )


def read_docs(
    source: Source, *, fmt: str, options: ReadOptions, progress: Progress
) -> Iterator[ReadDoc]:
    """Read one source: each doc with its summary and where it was read."""
    count = 0
    path = source.path
    try:
        for doc in read_source(source, fmt=fmt, options=options, progress=progress):
            count += 1
            summary = summarize(doc)
            remember_labels(progress.first_seen, doc, summary, f"{path}: doc {count}")
            yield ReadDoc(doc, summary, (str(path), count))
    except DataError as error:
        raise ConvertError(error.format(str(path))) from None
    progress.sources[-1]["docs"] = count


def remember_labels(
    first_seen: dict[tuple[str, str], str], doc: Doc, summary: DocSummary, where: str
) -> None:
    """Where each entity label and positive category is first seen (few labels: rarely new)."""
    if summary.entities:
        for label in set(summary.entities):
            if ("entity", label) not in first_seen:
                text = next(ent.text for ent in doc.ents if ent.label_ == label)
                first_seen["entity", label] = f"{where}: {shorten(text, 40)!r}"
    for label, value in summary.cats.items():
        if value >= POSITIVE and ("category", label) not in first_seen:
            first_seen["category", label] = f"{where}: {shorten(doc.text, 60)}"


def read_source(
    source: Source, *, fmt: str, options: ReadOptions, progress: Progress
) -> Iterator[Doc]:
    path, log = source.path, progress.log
    log.file = str(path)
    report: SourceReport = {"file": str(path), "format": None, "reason": "", "docs": 0}
    progress.sources.append(report)
    if source.skipped:
        report["format"], report["reason"] = "skipped", source.skipped
        return
    name, reason, encoding = choose_reader(path, fmt=fmt, options=options)
    report["format"], report["reason"] = name, reason
    if name is None and not source.in_folder:
        if encoding is not None and not encoding.binary:
            check_decodes(path, encoding)  # bytes of another encoding say more than "no format"
        raise _unreadable(reason)
    if name is None:  # a file of a folder that no reader knows: listed, not read
        report["format"] = "skipped"
        if reason not in _NOT_ANNOTATIONS:
            report["reason"] = f"{reason}; name it with --format to read it"
        return
    reader = READERS[name]
    if reader.binary:
        yield from reader.read(path.read_bytes(), options=options, log=log)
        return
    encoding = encoding or file_encoding(path, named=options.encoding)
    if encoding.codec != "utf-8":
        log.note(f"read as {encoding.how}")
    yield from reader.read(numbered_lines(path, log, encoding=encoding), options=options, log=log)


EMPTY = "the file is empty"
BINARY = "binary data, not text (a spreadsheet or a document?)"
_NOT_ANNOTATIONS = (EMPTY, NO_TEXT, BINARY)  # said as they are when a folder's file is skipped


def choose_reader(
    path: Path, *, fmt: str, options: ReadOptions
) -> tuple[str | None, str, Encoding | None]:
    """The reader's name (None: none fits), why, and the file's encoding if it was worked out."""
    if path.stat().st_size == 0:
        return None, EMPTY, None
    if fmt != "auto":
        return fmt, "--format", None
    if path.suffix == ".spacy":
        name, reason = detect_format(path, [])
        return name, reason, None
    encoding = file_encoding(path, named=options.encoding)
    if encoding.binary:
        return None, BINARY, encoding
    name, reason = detect_format(path, head_lines(path, encoding))
    return name, reason, encoding


def _unreadable(reason: str) -> DataError:
    """The error for a file named as a source that no reader fits."""
    if reason == EMPTY:
        return DataError(1, EMPTY, "remove it from the sources or fill it in")
    if reason == NO_TEXT:
        return DataError(
            1,
            "the file holds no text, only blank lines (or a byte-order mark)",
            "remove it from the sources or fill it in",
        )
    if reason == BINARY:
        return DataError(1, BINARY, "export it as CSV, TSV or JSON")
    return DataError(
        1,
        f"cannot tell the format ({reason})",
        f"choose one with --format: {', '.join(READERS)}",
    )


def _route(
    pool: Pool,
    fractions: tuple[float, float, float],
    seed: int,
    labels: list[str],
    outputs_docs: dict[str, DocStore],
    stats: dict[str, Stats],
    progress: Progress,
) -> None:
    """Split the pooled documents (stratified by rarest positive category) among the outputs."""
    try:
        sizes = split_sizes(len(pool.summaries), fractions)
    except SplitError as error:
        raise ConvertError(
            f"too few documents to split: {error}; add documents, or give --dev and --test files"
        ) from None
    frequency = Stats()
    for summary in pool.summaries:
        frequency.add_summary(summary)
    keys = [stratum(summary.cats, frequency.categories) for summary in pool.summaries]
    assignment = assign_splits(keys, sizes=sizes, seed=seed)
    for doc, index, summary, where in zip(
        pool.docs.pop_docs(), assignment, pool.summaries, pool.wheres
    ):
        name = SPLITS[index]
        progress.repeats.place(doc, summary, where=where, output=name)
        doc.cats = complete_cats(doc.cats, labels)  # complete now, not in a second pass at the end
        outputs_docs[name].add(doc)
        stats[name].add_summary(summary)


# ---- the report ------------------------------------------------------------------------------


def build_report(
    job: Job,
    stats: dict[str, Stats],
    total: Stats,
    labels: list[str],
    progress: Progress,
    options: ReadOptions,
    seed: int,
) -> Report:
    mode = textcat_mode(labels, total.positives)
    log = progress.log
    return {
        "lang": options.lang,
        "seed": seed,
        "sources": progress.sources,
        "outputs": {
            name: {"path": str(path), **stats_json(stats[name], labels)}
            for name, path in job.targets.items()
        },
        "total": stats_json(total, labels),
        "entity_labels": sorted(total.entities),
        "categories": category_names(labels),
        "textcat": {"mode": mode, "why": _textcat_why(mode, labels, total)},
        "events": _events(log, rare_label_warnings(total, progress.first_seen)),
        "notes": log.notes,
        "duplicates": progress.repeats.report(),
    }


def _events(log: Log, warnings: list[EventReport]) -> list[EventReport]:
    """The log's events and the corpus warnings, warnings first, then by kind and count."""
    events: list[EventReport] = [
        {"kind": e.kind, "reason": e.reason, "count": e.count, "examples": e.examples}
        for e in log.events.values()
    ]
    return sorted(
        [*events, *warnings],
        key=lambda e: (
            _KIND_ORDER.index(e["kind"]) if e["kind"] in _KIND_ORDER else 9,
            -e["count"],
        ),
    )


_KIND_ORDER = (
    "warning",
    "skipped",
    "dropped",
    "kept",
    "repaired",
    "suspect",
    "merged",
    "segmented",
)


def rare_label_warnings(total: Stats, first_seen: dict[tuple[str, str], str]) -> list[EventReport]:
    """A warning for each entity label or category seen once in a corpus of RARE_LABEL_CORPUS
    documents or more with that annotation: a typo, or a label too rare to learn."""
    warnings: list[EventReport] = []
    for kind, counts, docs, what in (
        ("entity", total.entities, total.docs_with_ner, "documents with entities"),
        ("category", total.categories, total.docs_with_cats, "documents with categories"),
    ):
        if docs < RARE_LABEL_CORPUS:
            continue
        for label, count in sorted(counts.items()):
            if count == 1:
                warnings.append(
                    {
                        "kind": "warning",
                        "reason": f"{kind} label {label!r} occurs once in {docs} {what} "
                        "(a typo, or too rare to learn?)",
                        "count": 1,
                        "examples": [first_seen.get((kind, label), "")],
                    }
                )
    return warnings


def _textcat_why(mode: str, labels: list[str], total: Stats) -> str:
    if mode == "none":
        return "no document has categories"
    if len(labels) == 1:
        return (
            f"one category in the data: every document also gets "
            f"{NEGATION_PREFIX}{labels[0]} = 1 - {labels[0]}, so the two are exclusive"
        )
    if mode == "exclusive":
        return f"every document has exactly one positive category (of {len(labels)})"
    spread = ", ".join(f"{n} positive: {docs}" for n, docs in sorted(total.positives.items()))
    return (
        f"documents have other than exactly one positive category (value >= {POSITIVE}): {spread}"
    )


def format_report(report: Report, changed: dict[str, bool]) -> str:
    lines = ["Sources:"]
    for source in report["sources"]:
        if source["format"] == "skipped":
            lines.append(f"  {source['file']}: skipped ({source['reason']})")
            continue
        lines.append(
            f"  {source['file']}: {source['format']} ({source['reason']}), {source['docs']} docs"
        )
        prefix = f"{source['file']}: "
        lines.extend(
            f"    {note.removeprefix(prefix)}"
            for note in report["notes"]
            if note.startswith(prefix)
        )
    lines.append("Outputs:")
    for name, out in report["outputs"].items():
        state = "written" if changed[name] else "unchanged"
        lines.append(f"  {out['path']} ({state}): {_counts(out)}")
        if out["entities_per_label"]:
            lines.append(
                "    entities: "
                + ", ".join(f"{k} {v}" for k, v in out["entities_per_label"].items())
            )
        if out["spans_only"]:
            lines.append(
                f"    spans in doc.spans[{SPAN_KEY!r}] only, not entities: {out['spans_only']}"
            )
        if out["docs_per_category"]:
            lines.append(
                "    docs per category: "
                + ", ".join(f"{k} {v}" for k, v in out["docs_per_category"].items())
            )
    textcat = report["textcat"]
    if textcat["mode"] != "none":
        lines.append(f"Text classification: {textcat['mode']} ({textcat['why']})")
    for event in report["events"]:
        lines.append(f"{event['kind'].capitalize()}: {event['count']} x {event['reason']}")
        lines.extend(f"    {example}" for example in event["examples"])
    lines.extend(format_repeats(report["duplicates"]))
    return "\n".join(lines)


def _counts(out: OutputReport) -> str:
    return (
        f"{out['docs']} docs, {out['sentences']} sentences, {out['tokens']} tokens; "
        f"{out['docs_with_ner']} with NER ({out['docs_with_entities']} with entities), "
        f"{out['docs_with_cats']} with categories"
    )
