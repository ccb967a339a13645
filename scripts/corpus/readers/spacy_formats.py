"""spaCy's own formats: v2 JSON (BILUO `ner`), v2 TRAIN_DATA JSON, .spacy DocBins (passed through).

[{"id": 0, "paragraphs": [{"raw": "...",
  "sentences": [{"tokens": [{"orth": "Chicago", "ner": "U-GPE"}]}]}]}]
[["Who is Shaka Khan?", {"entities": [[7, 17, "PERSON"]], "cats": {"Q": 1.0}}]]

TRAIN_DATA entities are character offsets: all of them go to doc.spans["sc"], overlapping ones too,
and to doc.ents those that do not overlap (the longest where they do).
"""

from __future__ import annotations

from typing import Any, Iterator

from spacy.tokens import Doc, DocBin

from .iob import NO_SPACE_LANGS, TagDecoder
from .records import Annotated, iter_json_array, make_doc, span_tuple
from .spans import STRUCTURE_ERRORS, DataError, Log, NumberedLines, ReadOptions, structure_error


def read_spacy_json(lines: NumberedLines, *, options: ReadOptions, log: Log) -> Iterator[Doc]:
    """spaCy v2 JSON: a Doc per paragraph; sentences from token lists; text from `raw` if given."""
    decoder = TagDecoder()
    for line, document in iter_json_array(lines):
        try:
            paragraphs = document.get("paragraphs") if isinstance(document, dict) else None
            if not isinstance(paragraphs, list):
                raise DataError(
                    line,
                    'document without a "paragraphs" list',
                    "check --format (this reads spaCy v2 JSON)",
                )
            for paragraph in paragraphs:
                doc = _paragraph_doc(paragraph, decoder, options, log, line)
                if doc is not None:
                    yield doc
        except DataError as error:
            log.skip(error)
        except STRUCTURE_ERRORS as error:
            log.skip(structure_error(line, error))
    log.note(f"spaCy v2 JSON, tags {decoder.scheme()}")


def _paragraph_doc(
    paragraph: Any, decoder: TagDecoder, options: ReadOptions, log: Log, line: int
) -> Doc | None:
    words: list[str] = []
    tags: list[str | None] = []
    starts: list[bool | int | None] = []
    for sentence in paragraph.get("sentences", []) if isinstance(paragraph, dict) else []:
        decoder.reset()
        for i, token in enumerate(sentence.get("tokens", [])):
            orth, ner = token.get("orth"), token.get("ner")
            if not isinstance(orth, str) or not orth:
                raise DataError(
                    line, f'token without "orth": {token}', 'every token needs its text in "orth"'
                )
            words.append(orth)
            tags.append(decoder.decode(ner, line) if ner not in (None, "-", "") else None)
            starts.append(i == 0)
    if not words:
        return None
    spaces = _spaces(paragraph.get("raw"), words, options, log, line)
    ents = None
    if any(tag is not None for tag in tags):
        if None in tags:
            log.record(
                "suspect", 'tokens without a "ner" tag kept as missing', line, " ".join(words[:12])
            )
        ents = [tag or "" for tag in tags]
    doc = Doc(options.vocab, words=words, spaces=spaces, sent_starts=starts, ents=ents)
    cats = paragraph.get("cats")
    if isinstance(cats, list):
        doc.cats = {
            str(c.get("label")): float(c.get("value", 0.0)) for c in cats if isinstance(c, dict)
        }
    elif isinstance(cats, dict):
        doc.cats = {str(k): float(v) for k, v in cats.items()}
    return doc


def _spaces(raw: Any, words: list[str], options: ReadOptions, log: Log, line: int) -> list[bool]:
    """Whitespace after each token: from `raw` when it holds the tokens in order, else a space."""
    default = [options.lang not in NO_SPACE_LANGS] * len(words)
    default[-1] = False
    if not isinstance(raw, str):
        return default
    spaces, position = [], 0
    for word in words:
        found = raw.find(word, position)
        if found < 0 or raw[position:found].strip():
            log.record("suspect", '"raw" text does not hold the tokens; spaces guessed', line, raw)
            return default
        position = found + len(word)
        spaces.append(raw[position : position + 1].isspace())
    return spaces


def read_train_data(lines: NumberedLines, *, options: ReadOptions, log: Log) -> Iterator[Doc]:
    """spaCy v2 TRAIN_DATA: [[text, {"entities": [[start, end, label]], "cats": {...}}], ...]."""
    for line, element in iter_json_array(lines):
        try:
            if not (
                isinstance(element, (list, tuple))
                and len(element) == 2
                and isinstance(element[0], str)
                and isinstance(element[1], dict)
            ):
                raise DataError(
                    line,
                    'element is not [text, {"entities": [...]}]',
                    "write each example as [text, annotations]",
                )
            text, annotations = element
            item = Annotated(text=text, line=line)
            if "entities" in annotations:
                item.spans = [span_tuple(span, line) for span in annotations["entities"]]
            if isinstance(annotations.get("cats"), dict):
                item.cats = {str(k): float(v) for k, v in annotations["cats"].items()}
            yield make_doc(item, options=options, log=log)
        except DataError as error:
            log.skip(error)
        except STRUCTURE_ERRORS as error:
            log.skip(structure_error(line, error))


def read_docbin(data: bytes, *, options: ReadOptions, log: Log) -> Iterator[Doc]:
    """A .spacy file, passed through with whatever annotation its docs carry."""
    try:
        doc_bin = DocBin().from_bytes(data)
    except Exception as error:  # zlib, msgpack and numpy each raise their own kind
        raise DataError(
            1,
            f"not a readable .spacy file ({error.__class__.__name__})",
            "write it with DocBin.to_disk, or check --format",
        ) from None
    yield from doc_bin.get_docs(options.vocab)
