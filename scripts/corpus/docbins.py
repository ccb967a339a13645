"""Writing DocBins: atomically and deterministically, with every document's categories completed.

write_docbin(docs, Path("corpus/train.spacy"))   # -> True if the file changed
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterable, Iterator

import srsly
from spacy.tokens import Doc, DocBin

from scripts.common.cats import NEGATION_PREFIX

_CHUNK = 1 << 20


@dataclass
class DocRecord:
    """One Doc in DocBin form (what DocBin.add stores), small enough to keep or route to a split."""

    tokens: bytes
    spaces: bytes
    length: int
    cats: dict[str, float]
    flags: dict[str, bool]
    span_groups: bytes
    strings: set[str]
    text_hash: bytes


def to_record(doc: Doc, scratch: DocBin | None = None) -> DocRecord:
    """DocBin.add, taken apart: the same arrays and strings, for one doc."""
    scratch = scratch if scratch is not None else DocBin()
    scratch.add(doc)
    strings, scratch.strings = scratch.strings, set()
    return DocRecord(
        tokens=scratch.tokens.pop().tobytes("C"),
        spaces=scratch.spaces.pop().tobytes("C"),
        length=len(doc),
        cats=dict(scratch.cats.pop()),
        flags=scratch.flags.pop(),
        span_groups=scratch.span_groups.pop(),
        strings=strings,
        text_hash=hashlib.blake2b(doc.text.encode("utf8"), digest_size=8).digest(),
    )


def complete_cats(cats: dict[str, float], labels: list[str]) -> dict[str, float]:
    """Every label of the data set, 1.0/0.0 (sorted); NOT_<LABEL> for one-label data; {} stays {}."""
    if not cats:
        return {}
    if len(labels) == 1:
        value = float(cats.get(labels[0], 0.0))
        return {labels[0]: value, NEGATION_PREFIX + labels[0]: 1.0 - value}
    return {label: float(cats.get(label, 0.0)) for label in labels}


class DocBinWriter:
    """Writes a .spacy file doc by doc. Token arrays go to a scratch file, so memory stays flat; the
    output is the bytes DocBin.to_bytes would give, with the strings sorted (deterministic), written
    to a temp file beside the target and moved into place by commit()."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.attrs = DocBin().attrs
        self._scratch = DocBin()
        self._tokens: IO[bytes] = tempfile.TemporaryFile()
        self._spaces: IO[bytes] = tempfile.TemporaryFile()
        self.lengths: list[int] = []
        self.cats: list[dict[str, float]] = []
        self.flags: list[dict[str, bool]] = []
        self.span_groups: list[bytes] = []
        self.strings: set[str] = set()
        self._temp: Path | None = None

    def __len__(self) -> int:
        return len(self.lengths)

    def add(self, doc: Doc) -> DocRecord:
        record = to_record(doc, self._scratch)
        self.add_record(record)
        return record

    def add_record(self, record: DocRecord) -> None:
        self._tokens.write(record.tokens)
        self._spaces.write(record.spaces)
        self.lengths.append(record.length)
        self.cats.append(record.cats)
        self.flags.append(record.flags)
        self.span_groups.append(record.span_groups)
        self.strings |= record.strings

    def labels(self) -> set[str]:
        return {label for cats in self.cats for label in cats}

    def finish(self, *, labels: list[str] | None = None) -> None:
        """Write everything to a temp file beside the target; labels complete every doc's cats."""
        labels = sorted(self.labels()) if labels is None else labels
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
        )
        self._temp = Path(name)
        try:
            with os.fdopen(handle, "wb") as out:
                compressor = zlib.compressobj()
                for chunk in self._msgpack_chunks(labels):
                    out.write(compressor.compress(chunk))
                out.write(compressor.flush())
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            self.discard()
            raise

    def _msgpack_chunks(self, labels: list[str]) -> Iterator[bytes]:
        # The same msgpack map as DocBin.to_bytes, key by key, with the token arrays streamed.
        pack = srsly.msgpack.Packer(use_bin_type=True).pack  # what msgpack_dumps does, built once
        yield b"\x89"  # a map of 9 entries
        yield pack("version") + pack("0.1")
        yield pack("attrs") + pack(self.attrs)
        for key, store in (("tokens", self._tokens), ("spaces", self._spaces)):
            yield pack(key) + _bin_header(store.tell())
            store.seek(0)
            yield from iter(lambda store=store: store.read(_CHUNK), b"")
        lengths = b"".join(n.to_bytes(4, "little", signed=True) for n in self.lengths)
        yield pack("lengths") + pack(lengths)
        # Sorted, so the same docs give the same bytes whatever PYTHONHASHSEED orders the set in.
        yield pack("strings") + pack(sorted(self.strings))
        yield pack("cats") + _array_header(len(self.cats))
        for cats in self.cats:
            yield pack(complete_cats(cats, labels))
        yield pack("flags") + pack(self.flags)
        yield pack("span_groups") + pack(self.span_groups)

    def commit(self) -> bool:
        """Move the finished file into place; a target with the same bytes is left untouched."""
        assert self._temp is not None, "finish() first"
        temp, self._temp = self._temp, None
        if self.path.exists() and _same_bytes(self.path, temp):
            temp.unlink()
            return False
        os.replace(temp, self.path)
        return True

    def discard(self) -> None:
        if self._temp is not None:
            self._temp.unlink(missing_ok=True)
            self._temp = None

    def close(self) -> None:
        self.discard()
        self._tokens.close()
        self._spaces.close()


def _bin_header(n: int) -> bytes:
    if n < 1 << 8:
        return b"\xc4" + n.to_bytes(1, "big")
    if n < 1 << 16:
        return b"\xc5" + n.to_bytes(2, "big")
    return b"\xc6" + n.to_bytes(4, "big")


def _array_header(n: int) -> bytes:
    if n < 16:
        return bytes([0x90 | n])
    if n < 1 << 16:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


def _same_bytes(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            chunk = fa.read(_CHUNK)
            if chunk != fb.read(_CHUNK):
                return False
            if not chunk:
                return True


def write_docbin(docs: Iterable[Doc], path: Path, *, labels: list[str] | None = None) -> bool:
    """Write docs to a .spacy file atomically and deterministically; True if the file changed."""
    writer = DocBinWriter(path)
    try:
        for doc in docs:
            writer.add(doc)
        writer.finish(labels=labels)
        return writer.commit()
    finally:
        writer.close()
