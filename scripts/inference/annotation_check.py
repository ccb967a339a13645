"""Whether an annotation Label Studio sends can ever train: the Label Studio reader that the
retraining converts it with (scripts/corpus/readers/labelstudio.py) decides, plus the server's
--max-chars and the labeling config's control names.

    rules = Rules(lang="en", max_chars=100_000, label_config=parse_label_config(xml))
    problem = check_annotation({"id": 7, "data": {"text": "Hi"}}, annotation, rules=rules)
    # None, or Problem(reason="a span outside its text, empty or without a label",
    #                  detail="span [0, 500) SKILL is beyond the text (length 2) or empty; ...")

The webhook refuses an annotation with a problem (422, not stored); the retraining skips one that
a journal holds from before this check (counted by reason in result.json and /health).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Optional

from scripts.corpus.readers.labelstudio import parse_annotation
from scripts.corpus.readers.records import make_doc
from scripts.corpus.readers.spans import STRUCTURE_ERRORS, DataError, Log, ReadOptions
from scripts.inference.predict import LabelConfig, unreadable_text

# The reasons a record is refused or skipped, counted under these names.
NOT_UNICODE = "not Unicode text (a lone UTF-16 surrogate)"
NO_TEXT = "no text to train on"
TOO_LONG = "a text longer than --max-chars"
UNREADABLE_RESULT = "a result of a type the backend cannot read"
UNKNOWN_CONTROL = "a result from a control the backend does not read"
BAD_SPAN = "a span outside its text, empty or without a label"
SEVERAL_CATEGORIES = "several categories for a one-category classifier"
UNCONVERTIBLE = "a record the Label Studio reader cannot convert"
MAX_EXAMPLES = 5
MAX_CHARS = 100_000  # the default of --max-chars: the longest text served or trained on


@dataclass(frozen=True)
class Rules:
    """What a trainable annotation must satisfy besides the reader: the pipeline's language (its
    tokenizer aligns the spans), the server's --max-chars, one category per text for an exclusive
    text classifier and, where Label Studio sent it, the project's labeling config (which controls
    the spans and categories come from)."""

    lang: str
    max_chars: int
    one_category: bool = False
    label_config: Optional[LabelConfig] = None


@dataclass(frozen=True)
class Problem:
    reason: str  # one of the names above
    detail: str  # what exactly, and how to fix it


def check_annotation(
    task: dict[str, Any], annotation: dict[str, Any], *, rules: Rules
) -> Optional[Problem]:
    """None when the annotation of `task` ({"id", "data"}) converts to a training document; else
    why not. A cancelled annotation is never trained on (the reader skips it): only its
    characters are checked, since the journal stores it."""
    found = first_unreadable(task.get("data"), "data") or first_unreadable(annotation, "annotation")
    if found is not None:
        return Problem(NOT_UNICODE, f"{found}; send valid Unicode text")
    if annotation.get("was_cancelled"):
        return None
    results = annotation.get("result") or []
    for i, result in enumerate(results):
        if not isinstance(result, dict):
            return Problem(
                UNREADABLE_RESULT, f"result {i} is a {type(result).__name__}, not an object"
            )
    log, ignored = Log(file=f"task {task.get('id')}"), Counter[str]()
    try:
        item = parse_annotation(task["data"], annotation, line=0, log=log, ignored=ignored)
    except DataError as err:
        return Problem(NO_TEXT, f"{err.what}; {err.fix}")
    except STRUCTURE_ERRORS as err:
        return Problem(UNCONVERTIBLE, f"{type(err).__name__}: {err}")
    if len(item.text) > rules.max_chars:
        return Problem(
            TOO_LONG,
            f"the text has {len(item.text)} characters, over --max-chars {rules.max_chars}; "
            "split long texts into several tasks",
        )
    if ignored:
        types = ", ".join(f"{name!a}" for name in sorted(ignored))
        return Problem(
            UNREADABLE_RESULT,
            f"results of type {types}: the backend trains on labels (spans) and choices "
            "(categories) only; take the other controls out of the labeling config",
        )
    problem = unknown_control(results, rules.label_config)
    if problem is not None:
        return problem
    if rules.one_category and len(item.cats) > 1:
        return Problem(
            SEVERAL_CATEGORIES,
            f"{len(item.cats)} categories chosen ({', '.join(sorted(item.cats))}), and the "
            'model\'s text classifier takes one per text: choose one (<Choices choice="single">)',
        )
    try:
        make_doc(item, options=ReadOptions(lang=rules.lang), log=log)
    except DataError as err:
        return Problem(BAD_SPAN, f"{err.what}; {err.fix}")
    except STRUCTURE_ERRORS as err:
        return Problem(UNCONVERTIBLE, f"{type(err).__name__}: {err}")
    return None


def unknown_control(
    results: list[dict[str, Any]], config: Optional[LabelConfig]
) -> Optional[Problem]:
    """A result whose from_name is not the Labels or Choices control that the labeling config
    binds to its text (the ones predictions go to); None without a config to tell."""
    if config is None:
        return None
    known = {config.ner_from: "spans", config.cats_from: "categories"}
    known.pop(None, None)
    for i, result in enumerate(results):
        name = result.get("from_name")
        if name not in known:
            controls = ", ".join(f"{k!r} ({what})" for k, what in known.items()) or "none"
            return Problem(
                UNKNOWN_CONTROL,
                f"result {i} comes from the control {name!a}; the backend trains on the first "
                f"Labels and Choices bound to <Text name={config.to_name!r}>: {controls}; "
                "take other controls out of the labeling config",
            )
    return None


def first_unreadable(value: Any, where: str) -> Optional[str]:
    """Where the first string that is not Unicode text sits in a JSON value, and why, e.g.
    "annotation.result[0].value.text: character 3 ('\\ud800') is a lone UTF-16 surrogate"."""
    if isinstance(value, str):
        problem = unreadable_text(value)
        return f"{where}: {problem}" if problem else None
    if isinstance(value, dict):
        for key, item in value.items():
            name = f"{where}.{key}" if isinstance(key, str) and not unreadable_text(key) else None
            found = (
                first_unreadable(item, name)
                if name is not None
                else f"{where}: the key {key!a} is not Unicode text"
            )
            if found:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = first_unreadable(item, f"{where}[{i}]")
            if found:
                return found
    return None


@dataclass
class Tally:
    """Records left out, by reason, with the first few of them named."""

    reasons: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def add(self, reason: str, example: str, count: int = 1) -> None:
        self.reasons[reason] += count
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(example)

    @property
    def count(self) -> int:
        return sum(self.reasons.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "reasons": dict(self.reasons.most_common()),
            "examples": list(self.examples),
        }
