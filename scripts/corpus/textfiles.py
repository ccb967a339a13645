"""Annotation files as text: the encoding is decided once per file (a byte-order mark, else
--encoding, else UTF-8), then its lines are streamed, numbered, without line ends (CRLF, LF or CR).

    encoding = file_encoding(Path("export.tsv"))   # Encoding("utf-16-le", bom=2, how="...")
    for number, text in numbered_lines(Path("export.tsv"), log, encoding=encoding): ...
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from functools import partial
from itertools import islice
from pathlib import Path
from typing import AnyStr, BinaryIO, Iterator

from scripts.corpus.readers.spans import DataError, Log, shorten

# UTF-32 LE before UTF-16 LE: its mark starts with the same two bytes.
BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
SNIFF_BYTES = 4096
BLOCK_BYTES = 1 << 16
HEAD_LINES = 50
_NUL = 0
_C1_BYTES = range(0x80, 0xA0)  # where CP-1252 has characters and Latin-1 control codes


@dataclass(frozen=True)
class Encoding:
    """How a file's bytes become text."""

    codec: str  # a name Python's codecs know
    bom: int = 0  # bytes of byte-order mark before the text
    how: str = "UTF-8, the default"  # why this codec: said in the report and in errors
    named: bool = False  # given with --encoding
    binary: bool = False  # NUL bytes: not a text file at all

    @property
    def plain_utf8(self) -> bool:
        return self.codec == "utf-8" and not self.named


UTF8 = Encoding("utf-8")


def check_encoding(name: str) -> str:
    """The codec's own name for --encoding NAME; LookupError if Python has no such text encoding."""
    "\n".encode(name)  # LookupError for unknown names and for codecs that are not text encodings
    return codecs.lookup(name).name


def file_encoding(path: Path, *, named: str | None = None) -> Encoding:
    """A byte-order mark decides; else --encoding; else UTF-8. DataError for UTF-16 without one."""
    with open(path, "rb") as handle:
        sample = handle.read(SNIFF_BYTES)
    for bom, codec in BOMS:
        if sample.startswith(bom):
            return Encoding(codec, len(bom), f"{codec}, from its byte-order mark")
    if named is not None:
        return Encoding(named, 0, f"{named}, from --encoding", named=True)
    if _NUL not in sample:
        return UTF8
    wide = _wide_without_bom(sample)
    if wide is not None:
        raise DataError(
            1,
            f"the file looks like {wide} without a byte-order mark (every other byte is 0)",
            f"read it with --encoding {wide}, or save it as UTF-8",
        )
    return Encoding("utf-8", how="binary data, not text", binary=True)


def _wide_without_bom(sample: bytes) -> str | None:
    """utf-16-le or -be when NUL bytes fill one byte of each pair (ASCII text saved as UTF-16)."""
    even, odd = sample[0::2], sample[1::2]
    for codec, zeros, other in (("utf-16-le", odd, even), ("utf-16-be", even, odd)):
        if zeros and zeros.count(_NUL) > 0.4 * len(zeros) and other.count(_NUL) < 0.05 * len(other):
            return codec
    return None


def numbered_lines(
    path: Path, log: Log, *, encoding: Encoding | None = None
) -> Iterator[tuple[int, str]]:
    """The file's lines, decoded, without byte-order mark and line ends, streamed. A line ends at
    CRLF (Windows), LF (Unix) or a lone CR (Excel for Mac's "CSV (Macintosh)"), mixed or not, as
    Python's universal newlines read text; a line break inside a quoted CSV field is one too."""
    encoding = encoding or file_encoding(path)
    with open(path, "rb") as handle:
        handle.seek(encoding.bom)
        if _ascii_newlines(encoding.codec):
            yield from _byte_lines(handle, encoding, log)
        else:
            yield from _decoded_lines(handle, encoding)


def _ascii_newlines(codec: str) -> bool:
    """Whether CR and LF are the bytes 0x0D and 0x0A (UTF-8, CP-1252, Shift-JIS; not UTF-16 or
    EBCDIC): then the bytes can be cut into lines before they are decoded."""
    return "\n\r".encode(codec) == b"\n\r"


def _whole_lines(blocks: Iterator[AnyStr], cr: AnyStr, lf: AnyStr) -> Iterator[AnyStr]:
    """The blocks cut again so that each piece ends with a line end (the last one may not). A CR
    at the end of a block stays with the next piece: it may be the first half of a CRLF."""
    rest = cr[:0]
    for block in blocks:
        data = rest + block
        end = max(data.rfind(lf), data.rfind(cr, 0, len(data) - 1)) + 1
        if end:
            yield data[:end]
        rest = data[end:]
    if rest:
        yield rest


def split_lines(piece: AnyStr, cr: AnyStr, lf: AnyStr) -> list[AnyStr]:
    """A piece's lines without their ends (CRLF, CR or LF); the end after the last line adds no
    empty line. Unlike str.splitlines, form feeds and Unicode line separators stay in the line."""
    lines = piece.replace(cr + lf, lf).replace(cr, lf).split(lf)
    if not lines[-1]:
        lines.pop()
    return lines


def _byte_lines(handle: BinaryIO, encoding: Encoding, log: Log) -> Iterator[tuple[int, str]]:
    number = 0
    for piece in _whole_lines(iter(partial(handle.read, BLOCK_BYTES), b""), b"\r", b"\n"):
        try:  # a piece at once; a line end never falls inside a character of these codecs
            lines = split_lines(piece.decode(encoding.codec), "\r", "\n")
        except UnicodeDecodeError:
            cr_only = b"\r" in piece and b"\n" not in piece
            for raw in split_lines(piece, b"\r", b"\n"):
                number += 1
                decoded = _decoded(raw, number, encoding, log, cr_only=cr_only)
                if decoded is not None:
                    yield number, decoded
            continue
        for text in lines:
            number += 1
            yield number, text


def _decoded(raw: bytes, number: int, encoding: Encoding, log: Log, *, cr_only: bool) -> str | None:
    """A line as text; None (with --lenient) for a line that is not in the file's encoding."""
    try:
        return raw.decode(encoding.codec)
    except UnicodeDecodeError as error:
        log.skip(
            undecodable(
                raw, error.start, error.end, line=number, encoding=encoding, cr_only=cr_only
            )
        )
        return None


def _decoded_lines(handle: BinaryIO, encoding: Encoding) -> Iterator[tuple[int, str]]:
    """Lines of a file whose line ends are not the bytes 0x0D and 0x0A (UTF-16, UTF-32), decoded
    block by block. A damaged file stops even with --lenient: past a bad byte, no line end can be
    trusted."""
    number = 0
    for piece in _whole_lines(_decoded_blocks(handle, encoding), "\r", "\n"):
        for text in split_lines(piece, "\r", "\n"):
            number += 1
            yield number, text


def _decoded_blocks(handle: BinaryIO, encoding: Encoding) -> Iterator[str]:
    decoder = codecs.getincrementaldecoder(encoding.codec)()
    ends, after_cr = 0, False  # line ends so far, to number the line of a damaged byte
    while True:
        data = handle.read(BLOCK_BYTES)
        try:
            text = decoder.decode(data, final=not data)
        except UnicodeDecodeError as error:
            before = error.object[: error.start].decode(encoding.codec, errors="replace")
            raise undecodable(
                error.object,
                error.start,
                error.end,
                line=ends + _line_ends(before, after_cr=after_cr) + 1,
                encoding=encoding,
                in_line=False,
            ) from None
        ends += _line_ends(text, after_cr=after_cr)
        after_cr = text.endswith("\r") if text else after_cr
        yield text
        if not data:
            return


def _line_ends(text: str, *, after_cr: bool) -> int:
    """How many lines the text ends (a CRLF ends one), given whether the text before ended in CR."""
    pairs = text.count("\r\n") + (after_cr and text.startswith("\n"))
    return text.count("\n") + text.count("\r") - pairs


def undecodable(
    raw: bytes,
    start: int,
    end: int,
    *,
    line: int,
    encoding: Encoding,
    in_line: bool = True,
    cr_only: bool = False,
) -> DataError:
    """The error for raw[start:end], bytes the file's encoding cannot decode (raw: the line, or a
    block of a UTF-16 file); for UTF-8, what they would read as in CP-1252/Latin-1, or in Mac Roman
    when lines end in CR alone (`cr_only`), as in Excel for Mac's "CSV (Macintosh)"."""
    bad = raw[start : min(end, start + 8)]
    name = "UTF-8" if encoding.plain_utf8 else encoding.codec
    what = f"bytes that are not {name} ({bad!r}" + (f" at byte {start + 1}" if in_line else "")
    if not encoding.plain_utf8:
        fix = (
            "check --encoding, or save the file as UTF-8"
            if encoding.named
            else "the file is damaged: save it again as UTF-8"
        )
        return DataError(line, what + ")", fix, group=f"bytes that are not {name}")
    legacy = "mac_roman" if cr_only else "cp1252"
    guess = _as_legacy(raw, start, end, legacy)
    if guess is None:
        fix = "save the file as UTF-8, or name its encoding with --encoding"
    else:
        what += f"; as {guess}"
        fix = f"save the file as UTF-8, or read it with --encoding {legacy}"
    return DataError(line, what + ")", fix, group="bytes that are not UTF-8")


def _as_legacy(raw: bytes, start: int, end: int, codec: str) -> str | None:
    """What the bytes read as in CP-1252 or Mac Roman (`CP-1252/Latin-1: 'é' in 'José B-PER'`), or
    None when they are no printable characters there."""
    try:
        chars = raw[start:end].decode(codec)
    except UnicodeDecodeError:
        return None
    if not chars.isprintable():
        return None
    line = raw.decode(codec, errors="replace")
    # One byte is one character in these codecs: byte offsets are character offsets.
    context = shorten(line[max(0, start - 20) : end + 20], 50)
    if codec == "mac_roman":
        name = "Mac Roman (lines end in CR, as on a Mac)"
    elif any(byte in _C1_BYTES for byte in raw[start:end]):
        name = "CP-1252"
    else:
        name = "CP-1252/Latin-1"
    return f"{name}: {chars!r} in {context!r}"


def check_decodes(path: Path, encoding: Encoding, *, lines: int = 1000) -> None:
    """DataError for the first line, among the first `lines`, that the encoding cannot decode."""
    for _ in islice(numbered_lines(path, Log(), encoding=encoding), lines):
        pass


def head_lines(path: Path, encoding: Encoding, *, limit: int = HEAD_LINES) -> list[str]:
    """The first non-blank lines (line ends and byte-order mark removed), for detecting the
    format; bytes the encoding cannot decode become U+FFFD here (reading reports them)."""
    lines: list[str] = []
    # Universal newlines: the line ends numbered_lines knows (CRLF, CR, LF) arrive as LF.
    with open(path, encoding=encoding.codec, errors="replace") as handle:
        for number, line in enumerate(handle):
            text = line.removesuffix("\n")
            if number == 0:
                text = text.removeprefix("\ufeff")
            if text.strip():
                lines.append(text)
                if len(lines) >= limit:
                    break
    return lines
