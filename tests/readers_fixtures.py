"""Helpers shared by the reader tests: read an inline string, look at what came out."""

from __future__ import annotations

from spacy.tokens import Doc

from scripts.corpus.readers import READERS, Log, ReadOptions


def read(text: str, fmt: str, *, lenient: bool = False, **options: object) -> tuple[list[Doc], Log]:
    """Docs and the log from reading `text` (lines split on \\n) with the named reader."""
    log = Log(file="f", lenient=lenient)
    lines = enumerate(text.split("\n"), 1)
    docs = list(READERS[fmt].read(lines, options=ReadOptions(**options), log=log))  # type: ignore[arg-type]
    return docs, log


def ents(doc: Doc) -> list[tuple[str, str]]:
    return [(ent.text, ent.label_) for ent in doc.ents]


def reasons(log: Log) -> dict[str, int]:
    return {f"{e.kind}: {e.reason}": e.count for e in log.events.values()}
