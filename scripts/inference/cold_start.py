"""A model to serve before anything is annotated: entities from spaCy's entity ruler patterns,
categories by zero-shot similarity (scripts/scoring/zero_shot.py, the embedded sentence encoder,
offline). `serve --cold-start` serves it and `python -m scripts.cold_start` writes it; the first
retraining of the Label Studio loop trains the real pipeline (ner and/or textcat on the base
model) from the annotations and swaps it in when it does no worse on held-out tasks.

    spec = ColdStart(labels=("BRAND",), categories=("BUG", "DOCS"),
                     descriptions={"DOCS": "a problem with the documentation"},
                     patterns=Path("patterns.jsonl"))
    build_cold_start(spec, output=Path("ls-data/cold-start"))

Its meta says what it stands for (meta["cold_start"]: the components and labels to train, the
base model), and its name, cold_start, is the model version Label Studio shows beside its
predictions: en_cold_start-0.0.0.

Patterns are the JSONL that spaCy's entity ruler and Prodigy read, one per line:
    {"label": "BRAND", "pattern": "Levi's"}
    {"label": "BRAND", "pattern": [{"LOWER": "calvin"}, {"LOWER": "klein"}]}
"""

from __future__ import annotations

import json
import re
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import spacy
from spacy.errors import MatchPatternError
from spacy.language import Language
from spacy.vocab import Vocab

from scripts.common.base_model import resolve_base_model
from scripts.common.errors import UserError, one_line
from scripts.common.files import replace_dir
from scripts.scoring.zero_shot import ENCODER, ZERO_SHOT

COLD_START = "cold_start"  # the pipeline's name and its meta key
RULER = "entity_ruler"
TRAINED_NAME = "pipeline"  # the name of the pipeline the first retraining trains
COLD_START_DIR = "cold-start"  # the folder under the server's --data-dir
VOCAB = Vocab()  # what token patterns are checked with


@dataclass(frozen=True)
class ColdStart:
    labels: tuple[str, ...] = ()  # entity labels
    categories: tuple[str, ...] = ()  # one per text
    descriptions: dict[str, str] = field(default_factory=dict)  # category -> what it means
    patterns: Optional[Path] = None
    lang: str = "en"
    transformer: str = "auto"  # the base model the first retraining trains on
    encoder: str = ENCODER  # the sentence encoder of the zero-shot categories


@dataclass(frozen=True)
class Plan:
    """What a cold-start pipeline stands for: the components and labels to train."""

    components: tuple[str, ...]  # "ner", "textcat"
    labels: tuple[str, ...]
    categories: tuple[str, ...]
    transformer: str


def parse_categories(values: Sequence[str]) -> tuple[tuple[str, ...], dict[str, str]]:
    """--categories values as (categories, descriptions): "BUG,DOCS" is two categories; a value
    with "=" is one category and its description, commas included:
    "DOCS=a problem with the documentation, or a typo"."""
    categories: list[str] = []
    descriptions: dict[str, str] = {}
    for value in values:
        if "=" in value:
            name, description = (part.strip() for part in value.split("=", 1))
            entries = [(name, description)]
        else:
            entries = [(part.strip(), "") for part in value.split(",")]
        for name, description in entries:
            if not name:
                if value.strip():
                    raise UserError(
                        f"--categories {value!r}: a category without a name; pass NAME or "
                        "NAME=description"
                    )
                continue
            if name in categories:
                raise UserError(f"--categories: {name} is given twice; give each category once")
            categories.append(name)
            if description:
                descriptions[name] = description
    return tuple(categories), descriptions


def parse_labels(values: Sequence[str]) -> tuple[str, ...]:
    """--labels values, comma-separated or repeated, in order, each once."""
    labels: list[str] = []
    for value in values:
        for label in (part.strip() for part in value.split(",")):
            if label and label not in labels:
                labels.append(label)
    return tuple(labels)


def read_patterns(path: Path, *, labels: Sequence[str]) -> list[dict[str, Any]]:
    """The entity ruler patterns of a JSONL file, each checked: a one-line UserError with the
    file and line for a line that is not a pattern, or whose label is not one of labels (where
    labels are given)."""
    try:
        lines = path.read_text(encoding="utf8").splitlines()
    except (OSError, UnicodeError) as err:
        raise UserError(f"--patterns {path}: cannot read it ({err}); pass a JSONL file") from None
    patterns = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            pattern = json.loads(line)
        except json.JSONDecodeError as err:
            raise UserError(f"{where}: not a JSON line ({err.msg}); {PATTERN_SHAPE}") from None
        if not isinstance(pattern, dict) or not isinstance(pattern.get("label"), str):
            raise UserError(f'{where}: no "label"; {PATTERN_SHAPE}')
        shape = pattern.get("pattern")
        if not (
            (isinstance(shape, str) and shape.strip())
            or (isinstance(shape, list) and shape and all(isinstance(t, dict) for t in shape))
        ):
            raise UserError(
                f'{where}: "pattern" is neither a phrase nor token dicts; {PATTERN_SHAPE}'
            )
        if isinstance(shape, list):
            check_token_pattern(shape, where=where)
        if labels and pattern["label"] not in labels:
            raise UserError(
                f"{where}: label {pattern['label']} is not one of --labels "
                f"{','.join(labels)}; add it to --labels or remove the line"
            )
        patterns.append({key: pattern[key] for key in ("label", "pattern", "id") if key in pattern})
    return patterns


def check_token_pattern(tokens: list[dict[str, Any]], *, where: str) -> None:
    """A one-line UserError where spaCy's Matcher refuses a token pattern (an unknown attribute,
    a wrong operator), which the entity ruler would refuse without saying which line."""
    from spacy.matcher import Matcher

    try:
        Matcher(VOCAB, validate=True).add("pattern", [tokens])
    except (MatchPatternError, ValueError) as err:
        # "- [pattern -> 0 -> LOWERR] extra fields not permitted" -> "token 1, LOWERR: extra ..."
        problems = [
            re.sub(
                r"^\[pattern -> (\d+)(?: -> )?([^\]]*)\] ",
                lambda m: f"token {int(m[1]) + 1}{', ' + m[2] if m[2] else ''}: ",
                line.strip().removeprefix("- "),
            )
            for line in str(err).splitlines()
            if line.strip().startswith("- [pattern")
        ] or [one_line(err)]
        raise UserError(
            f"{where}: spaCy's Matcher refuses the token pattern ({'; '.join(problems)}); fix "
            "the line (token attributes: https://spacy.io/usage/rule-based-matching)"
        ) from None


PATTERN_SHAPE = (
    'each line is {"label": "BRAND", "pattern": "Levi\'s"} or {"label": "BRAND", "pattern": '
    '[{"LOWER": "calvin"}, {"LOWER": "klein"}]}'
)


def cold_start_spec(
    *,
    labels: Optional[Sequence[str]],
    categories: Optional[Sequence[str]],
    patterns: Optional[Path],
    lang: str = "en",
    transformer: str = "auto",
) -> ColdStart:
    """The spec from the command line's --labels, --categories and --patterns."""
    names, descriptions = parse_categories(categories or ())
    if patterns is not None and not patterns.is_file():
        raise UserError(f"--patterns {patterns}: no such file; pass a JSONL file of patterns")
    return ColdStart(
        labels=parse_labels(labels or ()),
        categories=names,
        descriptions=descriptions,
        patterns=patterns,
        lang=lang,
        transformer=transformer,
    )


def build_cold_start(spec: ColdStart, *, output: Path) -> Path:
    """Write the cold-start pipeline to output (replaced whole, never half-written)."""
    patterns = read_patterns(spec.patterns, labels=spec.labels) if spec.patterns else []
    labels = spec.labels or tuple(sorted({p["label"] for p in patterns}))
    if not labels and not spec.categories:
        raise UserError(
            "--cold-start needs something to predict: --labels A,B (entities, with --patterns "
            "FILE to find some) and/or --categories x,y"
        )
    try:
        nlp = spacy.blank(spec.lang)
    except Exception as err:
        raise UserError(f"--lang {spec.lang}: not a language spaCy has ({err})") from None
    if labels:
        ruler = nlp.add_pipe(RULER)
        ruler.add_patterns(patterns)  # type: ignore[attr-defined]
    if spec.categories:
        nlp.add_pipe(
            ZERO_SHOT,
            name="zero_shot",
            config={
                "labels": list(spec.categories),
                "descriptions": dict(spec.descriptions),
                "encoder": spec.encoder,
            },
        )
        # a missing or corrupt encoder fails now; the served copy loads it at its first text
        resolve_base_model(spec.encoder, lang=spec.lang, check_hub=False)
    components = (("ner",) if labels else ()) + (("textcat",) if spec.categories else ())
    nlp.meta.update(
        name=COLD_START,
        version="0.0.0",
        description="Cold start: entity ruler patterns and zero-shot categories, untrained",
    )
    nlp.meta[COLD_START] = {
        "components": list(components),
        "labels": list(labels),
        "categories": list(spec.categories),
        "transformer": spec.transformer,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=f".{output.name}.") as tmp:
        nlp.to_disk(Path(tmp) / "pipeline")
        replace_dir(Path(tmp) / "pipeline", output)
    return output


@contextmanager
def served_model_path(
    model: Optional[str], *, cold_start: bool, spec: ColdStart, data_dir: Optional[Path]
) -> Iterator[str]:
    """What the server loads: MODEL, or with cold_start the model spec describes, written to
    DATA_DIR/cold-start (rewritten at each start; the retraining reads it there), or to a
    temporary folder without --data-dir."""
    if not cold_start:
        if spec.labels or spec.categories or spec.patterns:
            raise UserError(
                "--labels, --categories and --patterns describe a cold-start model: add "
                "--cold-start (and leave MODEL out)"
            )
        if not model:
            raise UserError(
                "no model to serve: pass MODEL (training/model-best or an installed package), "
                "or --cold-start --labels A,B --categories x,y to start before any annotation"
            )
        yield model
        return
    if model:
        raise UserError(
            f"MODEL {model} and --cold-start: pass one; --cold-start serves a model made from "
            "--labels, --patterns and --categories"
        )
    if data_dir is not None:
        yield str(build_cold_start(spec, output=data_dir / COLD_START_DIR))
        return
    with tempfile.TemporaryDirectory(prefix="cold-start-") as tmp:
        yield str(build_cold_start(spec, output=Path(tmp) / COLD_START_DIR))


def cold_start_plan(nlp: Language) -> Optional[Plan]:
    """What a cold-start pipeline stands for; None for a trained one."""
    found = nlp.meta.get(COLD_START)
    if not isinstance(found, dict):
        return None
    return Plan(
        components=tuple(found.get("components") or ()),
        labels=tuple(found.get("labels") or ()),
        categories=tuple(found.get("categories") or ()),
        transformer=str(found.get("transformer") or "auto"),
    )
