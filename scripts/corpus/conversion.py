"""Conversion: annotation files through the readers into .spacy DocBins, with the report of what was
repaired or dropped (the code behind scripts/convert.py).

    convert_files(sources=[Path("a.tsv")], output=Path("corpus/all.spacy"))
    convert_project(train=[Path("a.tsv")], dev=[], test=[], output_dir=Path("corpus"), seed=0)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, NamedTuple, TypedDict, TypeGuard

from spacy.tokens import Doc

from scripts.common.cats import NEGATION_PREFIX, POSITIVE
from scripts.common.files import write_text_atomic
from scripts.corpus.docbins import DocStore, category_names, complete_cats, write_if_changed
from scripts.corpus.readers import READERS, DataError, Log, ReadOptions, detect_format, head_of
from scripts.corpus.readers.spans import MISALIGNED_POLICIES, Misaligned, shorten
from scripts.corpus.split import SplitError, assign_splits, split_sizes, stratum
from scripts.corpus.stats import (
    DocSummary,
    Stats,
    StatsReport,
    stats_json,
    summarize,
    textcat_mode,
)

SPLITS = ("train", "dev", "test")
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)
HELD_OUT = 0.1  # the share of --train split off for an empty --dev or --test
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
Echo = Callable[[str], None]


class ConvertError(Exception):
    """A problem the user can fix, said in one line: what is wrong; how to fix it."""


@dataclass(frozen=True)
class Job:
    """Which sources go where: straight into an output, or into a pool split into train/dev/test."""

    targets: dict[str, Path]
    direct: dict[str, list[Path]]
    pooled: list[Path] = field(default_factory=list)
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS


# ---- the report (report.json holds a Report) -------------------------------------------------


class SourceReport(TypedDict):
    file: str
    format: str | None  # None: no reader fits (the run stops, or "skipped" in a folder)
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


class DuplicatesReport(TypedDict):
    texts: int
    in_several_outputs: int
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
    duplicates: DuplicatesReport


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
    fmt: str = "auto",
    lang: str = "en",
    split: tuple[float, float, float] | None = None,
    seed: int = 0,
    tag_column: int = -1,
    token_column: int = 1,
    labels_file: Path | None = None,
    misaligned: str = "expand",
    lenient: bool = False,
    echo: Echo = print,
) -> Conversion:
    """Sources -> one .spacy file, or with split fractions OUTPUT/{train,dev,test}.spacy."""
    if not sources:
        raise ConvertError("no SOURCE given; name the files or folders to convert")
    if split is None:
        job = Job(targets={"all": output}, direct={"all": sources})
    else:
        job = Job(
            targets={name: output / f"{name}.spacy" for name in SPLITS},
            direct={},
            pooled=sources,
            fractions=split,
        )
    options = make_options(
        lang=lang,
        tag_column=tag_column,
        token_column=token_column,
        labels_file=labels_file,
        misaligned=misaligned,
    )
    return run_job(job, fmt=fmt, options=options, lenient=lenient, seed=seed, echo=echo)


def convert_project(
    *,
    train: list[Path],
    dev: list[Path],
    test: list[Path],
    output_dir: Path,
    fmt: str = "auto",
    lang: str = "en",
    seed: int = 0,
    tag_column: int = -1,
    token_column: int = 1,
    labels_file: Path | None = None,
    misaligned: str = "expand",
    lenient: bool = False,
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
    )
    options = make_options(
        lang=lang,
        tag_column=tag_column,
        token_column=token_column,
        labels_file=labels_file,
        misaligned=misaligned,
    )
    return run_job(
        job,
        fmt=fmt,
        options=options,
        lenient=lenient,
        seed=seed,
        echo=echo,
        report_path=output_dir / "report.json",
    )


def make_options(
    *, lang: str, tag_column: int, token_column: int, labels_file: Path | None, misaligned: str
) -> ReadOptions:
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
    labels = read_labels_file(labels_file)
    return ReadOptions(
        lang=lang,
        tag_column=tag_column,
        token_column=token_column,
        labels=labels,
        labels_path=labels_file,
        misaligned=misaligned,
    )


def is_policy(value: str) -> TypeGuard[Misaligned]:
    return value in MISALIGNED_POLICIES


def read_labels_file(path: Path | None) -> tuple[str, ...] | None:
    if path is None:
        return None
    if not path.is_file():
        raise ConvertError(f"{path}: no such labels file; give a file with one class name per line")
    names = tuple(
        line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()
    )
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
    seen: dict[bytes, set[str]] = field(default_factory=dict)  # text hash -> outputs holding it
    duplicates: int = 0
    duplicate_examples: list[str] = field(default_factory=list)


class ReadDoc(NamedTuple):
    """A document read, with what the report and the split need of it."""

    doc: Doc
    summary: DocSummary
    text_hash: bytes


@dataclass
class Pool:
    """Documents whose split is decided once all are read, with what the split needs of them."""

    docs: DocStore
    summaries: list[DocSummary] = field(default_factory=list)
    text_hashes: list[bytes] = field(default_factory=list)


def run_job(
    job: Job,
    *,
    fmt: str,
    options: ReadOptions,
    lenient: bool,
    seed: int,
    echo: Echo = print,
    report_path: Path | None = None,
) -> Conversion:
    if fmt != "auto" and fmt not in READERS:
        raise ConvertError(
            f"--format {fmt!r} is not a reader; use auto or one of: {', '.join(READERS)}"
        )
    outputs = [*job.targets.values(), *([report_path] if report_path else [])]
    exclude = (*outputs, *([options.labels_path] if options.labels_path else []))
    direct = {name: expand_sources(paths, exclude=exclude) for name, paths in job.direct.items()}
    pooled = expand_sources(job.pooled, exclude=exclude)
    refuse_overwriting_sources(
        outputs, [s.path for sources in [*direct.values(), pooled] for s in sources]
    )
    progress = Progress(Log(lenient=lenient))
    outputs_docs = {name: DocStore(options.vocab) for name in job.targets}
    stats = {name: Stats() for name in job.targets}
    pool = Pool(DocStore(options.vocab))
    for source in pooled:
        for read in read_docs(source, fmt=fmt, options=options, progress=progress):
            pool.docs.add(read.doc)
            pool.summaries.append(read.summary)
            pool.text_hashes.append(read.text_hash)
    for name, sources in direct.items():
        for source in sources:
            for read in read_docs(source, fmt=fmt, options=options, progress=progress):
                outputs_docs[name].add(read.doc)
                stats[name].add_summary(read.summary)
                progress.seen[read.text_hash].add(name)
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
            str(s.path) for s in [*pooled, *[s for sources in direct.values() for s in sources]]
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


def expand_sources(paths: list[Path], *, exclude: tuple[Path, ...] = ()) -> list[Source]:
    """Files as given; a folder gives its files, sorted (hidden files, subfolders and `exclude`
    left out)."""
    skip = {p.resolve() for p in exclude}
    files: list[Source] = []
    for path in paths:
        if path.is_dir():
            found = sorted(
                p
                for p in path.iterdir()
                if p.is_file() and not p.name.startswith(".") and p.resolve() not in skip
            )
            if not found:
                raise ConvertError(
                    f"{path}: the folder holds no files; put the annotation files in it"
                )
            files.extend(Source(p, True) for p in found)
        elif path.is_file():
            files.append(Source(path, False))
        else:
            raise ConvertError(f"{path}: no such file or folder; check the path")
    return files


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
    """Read one source: each doc with its summary and text hash; repeated texts are counted."""
    count = 0
    path = source.path
    try:
        for doc in read_source(source, fmt=fmt, options=options, progress=progress):
            count += 1
            text_hash = hashlib.blake2b(doc.text.encode("utf8"), digest_size=8).digest()
            if text_hash in progress.seen:
                progress.duplicates += 1
                if len(progress.duplicate_examples) < 3:
                    progress.duplicate_examples.append(f"{path}: doc {count}: {shorten(doc.text)}")
            else:
                progress.seen[text_hash] = set()
            yield ReadDoc(doc, summarize(doc), text_hash)
    except DataError as error:
        raise ConvertError(error.format(str(path))) from None
    progress.sources[-1]["docs"] = count


def read_source(
    source: Source, *, fmt: str, options: ReadOptions, progress: Progress
) -> Iterator[Doc]:
    path, log = source.path, progress.log
    log.file = str(path)
    name, reason = (fmt, "--format") if fmt != "auto" else detect_format(path, head_of(path))
    progress.sources.append({"file": str(path), "format": name, "reason": reason, "docs": 0})
    if name is None and source.in_folder:
        progress.sources[-1]["format"] = "skipped"
        progress.sources[-1]["reason"] = f"{reason}; name it with --format to read it"
        return
    if path.stat().st_size == 0 or (name is None and reason == "the file is empty"):
        raise DataError(1, "the file is empty", "remove it from the sources or fill it in")
    if name is None:
        raise DataError(
            1,
            f"cannot tell the format ({reason})",
            f"choose one with --format: {', '.join(READERS)}",
        )
    reader = READERS[name]
    if reader.binary:
        yield from reader.read(path.read_bytes(), options=options, log=log)
    else:
        yield from reader.read(numbered_lines(path, log), options=options, log=log)


def numbered_lines(path: Path, log: Log) -> Iterator[tuple[int, str]]:
    """The file's lines, decoded as UTF-8 without BOM and line ends (CRLF too), streamed."""
    number = 0
    with open(path, "rb") as handle:
        first = handle.readline()
        if first.startswith(UTF16_BOMS):
            raise DataError(1, "the file is UTF-16", "save it as UTF-8")
        block = [first.removeprefix(b"\xef\xbb\xbf")] if first else []
        while block:
            try:  # a block at once; a line ending never falls inside a UTF-8 character
                lines: list[str] | None = b"".join(block).decode("utf-8").split("\n")
            except UnicodeDecodeError:
                lines = None
            if lines is not None:
                if block[-1].endswith(b"\n"):  # nothing follows the last line's ending
                    lines.pop()
                for text in lines:
                    number += 1
                    yield number, text.removesuffix("\r")
            else:
                for raw in block:
                    number += 1
                    decoded = _decoded(raw, number, log)
                    if decoded is not None:
                        yield number, decoded.removesuffix("\n").removesuffix("\r")
            block = handle.readlines(_BLOCK_BYTES)


_BLOCK_BYTES = 1 << 16


def _decoded(raw: bytes, number: int, log: Log) -> str | None:
    """A line as text; None (with --lenient) for a line that is not UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        bad = raw[error.start : error.start + 4]
        log.skip(
            DataError(
                number,
                f"bytes that are not UTF-8 ({bad!r} at byte {error.start + 1})",
                "save the file as UTF-8",
            )
        )
        return None


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
    for doc, index, summary, text_hash in zip(
        pool.docs.pop_docs(), assignment, pool.summaries, pool.text_hashes
    ):
        name = SPLITS[index]
        doc.cats = complete_cats(doc.cats, labels)  # complete now, not in a second pass at the end
        outputs_docs[name].add(doc)
        stats[name].add_summary(summary)
        progress.seen[text_hash].add(name)


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
        "events": [
            {"kind": e.kind, "reason": e.reason, "count": e.count, "examples": e.examples}
            for e in sorted(
                log.events.values(),
                key=lambda e: (_KIND_ORDER.index(e.kind) if e.kind in _KIND_ORDER else 9, -e.count),
            )
        ],
        "notes": log.notes,
        "duplicates": {
            "texts": progress.duplicates,
            "in_several_outputs": sum(1 for names in progress.seen.values() if len(names) > 1),
            "examples": progress.duplicate_examples,
        },
    }


_KIND_ORDER = ("skipped", "dropped", "repaired", "suspect", "merged", "segmented")


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
    duplicates = report["duplicates"]
    if duplicates["texts"] or duplicates["in_several_outputs"]:
        lines.append(
            f"Duplicate texts: {duplicates['texts']} repeated, "
            f"{duplicates['in_several_outputs']} in more than one output"
        )
        lines.extend(f"    {example}" for example in duplicates["examples"])
    return "\n".join(lines)


def _counts(out: OutputReport) -> str:
    return (
        f"{out['docs']} docs, {out['sentences']} sentences, {out['tokens']} tokens; "
        f"{out['docs_with_ner']} with NER ({out['docs_with_entities']} with entities), "
        f"{out['docs_with_cats']} with categories"
    )
