"""The one way from texts to JSON records: entities (character offsets) and label scores.

    predictor = load_predictor("training/model-best")
    predict_texts(predictor, ["Python and SQL are required."])
    # -> [{"entities": [{"start": 0, "end": 6, "label": "SKILL", "text": "Python"}, ...],
    #      "cats": {"requirements": 0.981, "benefits": 0.004, ...}}]

annotate, serve and benchmark all go through here, so their outputs agree. The Label Studio helpers
turn the same records into Label Studio predictions ("result" items of type labels and choices).
Offsets are Python character offsets (code points), which is what Label Studio stores since it
stopped counting UTF-16 units; each span also carries its text.
"""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Sequence

import spacy
from spacy.language import Language
from spacy.tokens import Doc

from scripts.common.device import activate, resolve_device
from scripts.common.errors import UserError, one_line

SCORE_DIGITS = 6  # enough for any threshold; keeps records short and byte-stable
JSONL_SUFFIXES = (".jsonl", ".ndjson")


@dataclass(frozen=True)
class Predictor:
    """A loaded pipeline and what it predicts."""

    nlp: Language
    version: str  # "en_job_postings-0.0.1": the model_version Label Studio shows
    ent_labels: tuple[str, ...]
    cat_labels: tuple[str, ...]
    exclusive: bool  # textcat (one label per text) rather than textcat_multilabel
    threshold: float  # textcat_multilabel: a label is predicted at >= threshold


def load_predictor(model: str, *, gpu_id: str = "-1") -> Predictor:
    """Load a pipeline directory or installed package, e.g. load_predictor("en_job_postings")."""
    activate(resolve_device(gpu_id))
    if not Path(model).exists() and not spacy.util.is_package(model):
        raise UserError(
            f"model not found: '{model}' is neither a directory nor an installed spaCy package; "
            "pass training/model-best or the name of an installed pipeline (pip install packages/.../*.whl)"
        )
    try:
        nlp = spacy.load(model)
    except Exception as err:  # config, IO and registry errors alike: one line for the user
        raise UserError(
            f"cannot load the model '{model}' ({one_line(err)}); pass a pipeline directory or package"
        ) from None
    return describe_pipeline(nlp)


def describe_pipeline(nlp: Language) -> Predictor:
    ents = [name for name in nlp.pipe_names if "doc.ents" in nlp.get_pipe_meta(name).assigns]
    cats = [name for name in nlp.pipe_names if "doc.cats" in nlp.get_pipe_meta(name).assigns]
    ent_labels = sorted(
        {label for name in ents for label in getattr(nlp.get_pipe(name), "labels", ())}
    )
    cat_labels: list[str] = []
    exclusive, threshold = True, 0.5
    if cats:
        pipe = nlp.get_pipe(cats[-1])
        cat_labels = list(pipe.labels)
        cfg = getattr(pipe, "cfg", {}) or {}
        exclusive = nlp.get_pipe_meta(cats[-1]).factory == "textcat" or bool(
            cfg.get("exclusive_classes", False)
        )
        threshold = (
            0.5 if exclusive else float(cfg.get("threshold", 0.5))
        )  # textcat's own 0.0 is unused
    version = f"{nlp.meta.get('lang', nlp.lang)}_{nlp.meta.get('name', 'pipeline')}-{nlp.meta.get('version', '0.0.0')}"
    return Predictor(nlp, version, tuple(ent_labels), tuple(cat_labels), exclusive, threshold)


def doc_to_prediction(doc: Doc) -> dict[str, Any]:
    """{"entities": [{"start", "end", "label", "text"}], "cats": {label: score}} for one Doc."""
    return {
        "entities": [
            {"start": ent.start_char, "end": ent.end_char, "label": ent.label_, "text": ent.text}
            for ent in doc.ents
        ],
        "cats": {label: round(float(score), SCORE_DIGITS) for label, score in doc.cats.items()},
    }


def predict_texts(
    predictor: Predictor, texts: Sequence[str], *, batch_size: int | None = None
) -> list[dict[str, Any]]:
    """One prediction per text, in order; batch_size None is the pipeline's own [nlp] batch_size."""
    # An empty text gets no entities and zero scores without running the pipeline: spaCy's textcat
    # scores an empty doc differently depending on its batch mates, and the output must not.
    empty = {"entities": [], "cats": {label: 0.0 for label in predictor.cat_labels}}
    nonempty = [text for text in texts if text]
    docs = iter(predictor.nlp.pipe(nonempty, batch_size=batch_size or predictor.nlp.batch_size))
    return [
        doc_to_prediction(next(docs)) if text else json.loads(json.dumps(empty)) for text in texts
    ]


# ---------------------------------------------------------------------------------------------------
# Label Studio: the labeling config's tag names, and predictions in its result format


@dataclass(frozen=True)
class LabelConfig:
    """Where predictions go in a Label Studio labeling config (the defaults match labelstudio_config())."""

    text_field: str = "text"  # task["data"] key: <Text value="$text">
    to_name: str = "text"  # <Text name="text">
    ner_from: str | None = (
        "label"  # <Labels name="label" toName="text">; None: the config has no Labels
    )
    cats_from: str | None = "category"  # <Choices name="category" toName="text">; None: no Choices
    ner_labels: frozenset[str] | None = None  # labels the config offers; None: any
    cat_labels: frozenset[str] | None = None


@lru_cache(maxsize=32)
def parse_label_config(xml: str | None) -> LabelConfig:
    """Tag names from a labeling config; the defaults when there is none, e.g. parse_label_config(None)."""
    if not xml or not xml.strip():
        return LabelConfig()
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError as err:
        raise UserError(f"the Label Studio labeling config is not valid XML ({err})") from None
    texts = [el for el in root.iter() if el.tag in ("Text", "HyperText") and el.get("name")]
    if not texts:
        raise UserError(
            'the Label Studio labeling config has no <Text name=... value="$..."/> tag to predict on'
        )
    text = texts[0]
    controls = {
        tag: [el for el in root.iter(tag) if el.get("toName", text.get("name")) == text.get("name")]
        for tag in ("Labels", "Choices")
    }
    labels, choices = controls["Labels"][:1], controls["Choices"][:1]
    return LabelConfig(
        text_field=text.get("value", "$text").lstrip("$"),
        to_name=text.get("name", "text"),
        ner_from=labels[0].get("name") if labels else None,
        cats_from=choices[0].get("name") if choices else None,
        ner_labels=frozenset(el.get("value", "") for el in labels[0].iter("Label"))
        if labels
        else None,
        cat_labels=frozenset(el.get("value", "") for el in choices[0].iter("Choice"))
        if choices
        else None,
    )


def labelstudio_prediction(
    prediction: dict[str, Any], *, predictor: Predictor, config: LabelConfig
) -> dict[str, Any]:
    """A Label Studio prediction {"model_version", "score", "result"} from one record of predict_texts."""
    result: list[dict[str, Any]] = []
    if config.ner_from:
        for i, ent in enumerate(prediction["entities"]):
            if config.ner_labels is None or ent["label"] in config.ner_labels:
                result.append(
                    {
                        "id": f"ent{i}",
                        "from_name": config.ner_from,
                        "to_name": config.to_name,
                        "type": "labels",
                        "value": {
                            "start": ent["start"],
                            "end": ent["end"],
                            "text": ent["text"],
                            "labels": [ent["label"]],
                        },
                    }
                )
    cats = prediction["cats"]
    chosen = predicted_labels(cats, exclusive=predictor.exclusive, threshold=predictor.threshold)
    if config.cats_from and config.cat_labels is not None:
        chosen = [label for label in chosen if label in config.cat_labels]
    if config.cats_from and chosen:
        result.append(
            {
                "id": "cats",
                "from_name": config.cats_from,
                "to_name": config.to_name,
                "type": "choices",
                "value": {"choices": chosen},
            }
        )
    output: dict[str, Any] = {"model_version": predictor.version, "result": result}
    score = confidence(cats, exclusive=predictor.exclusive)
    if score is not None:
        output["score"] = score
    return output


def confidence(cats: dict[str, float], *, exclusive: bool) -> float | None:
    """What Label Studio sorts tasks by: the top probability, or the least sure yes/no of a multi-label
    model; None without categories (the NER has no calibrated score)."""
    if not cats:
        return None
    if exclusive:
        return max(cats.values())
    return min(max(score, round(1 - score, SCORE_DIGITS)) for score in cats.values())


def predicted_labels(cats: dict[str, float], *, exclusive: bool, threshold: float) -> list[str]:
    """The category of an exclusive textcat (argmax), or every label at or over the threshold."""
    if not cats:
        return []
    if exclusive:
        return [max(cats, key=lambda label: cats[label])]
    return [label for label, score in cats.items() if score >= threshold]


def labelstudio_config(predictor: Predictor) -> str:
    """A labeling config for the model's labels, to paste into the Label Studio project settings."""
    lines = ["<View>"]
    if predictor.ent_labels:
        lines.append('  <Labels name="label" toName="text">')
        lines += [f'    <Label value="{escape(label)}"/>' for label in predictor.ent_labels]
        lines.append("  </Labels>")
    lines.append('  <Text name="text" value="$text"/>')
    if predictor.cat_labels:
        choice = "single" if predictor.exclusive else "multiple"
        lines.append(f'  <Choices name="category" toName="text" choice="{choice}">')
        lines += [f'    <Choice value="{escape(label)}"/>' for label in predictor.cat_labels]
        lines.append("  </Choices>")
    lines.append("</View>")
    return "\n".join(lines) + "\n"


def escape(value: str) -> str:
    return (
        value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")
    )


# ---------------------------------------------------------------------------------------------------
# Inputs: JSONL / JSON array (a text field), CSV (a text column) or plain text (one text per line)


def read_records(path: Path, *, text_field: str = "text") -> Iterator[dict[str, Any]]:
    """Records with a string under text_field, in file order; blank lines are skipped.

    JSON lines: {"id": 7, "text": "..."}; CSV: a header with a text column; anything else: a text per line.
    """
    if not path.is_file():
        raise UserError(f"{path}: input file not found; pass a .jsonl, .json, .csv or text file")
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        yield from _read_jsonl(path, text_field=text_field)
    elif suffix == ".json":
        yield from _read_json_array(path, text_field=text_field)
    elif suffix in (".csv", ".tsv"):
        yield from _read_table(
            path, text_field=text_field, delimiter="\t" if suffix == ".tsv" else ","
        )
    else:
        with path.open(encoding="utf8") as file:
            for line in file:
                if line.strip():
                    yield {text_field: line.rstrip("\r\n")}


def _read_jsonl(path: Path, *, text_field: str) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf8") as file:
        for number, line in enumerate(file, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise UserError(
                    f"{path}:{number}: not valid JSON ({err.msg}); fix or remove the line"
                ) from None
            yield check_record(record, text_field=text_field, where=f"{path}:{number}")


def _read_json_array(path: Path, *, text_field: str) -> Iterator[dict[str, Any]]:
    try:
        records = json.loads(path.read_text(encoding="utf8"))
    except json.JSONDecodeError as err:
        raise UserError(
            f"{path}: not valid JSON ({err.msg} at line {err.lineno}); pass a JSON array or JSON lines (.jsonl)"
        ) from None
    if not isinstance(records, list):
        raise UserError(
            f'{path}: the JSON is a {type(records).__name__}, not an array of records; pass [{{"{text_field}": ...}}, ...]'
        )
    for number, record in enumerate(records, 1):
        yield check_record(record, text_field=text_field, where=f"{path}: record {number}")


def _read_table(path: Path, *, text_field: str, delimiter: str) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf8", newline="") as file:
        reader = csv.DictReader(file, delimiter=delimiter)
        if text_field not in (reader.fieldnames or []):
            columns = ", ".join(reader.fieldnames or []) or "none"
            raise UserError(
                f"{path}: no '{text_field}' column (columns: {columns}); pass the text column with --text-field"
            )
        for row in reader:
            yield {key: value for key, value in row.items() if key is not None}


def check_record(record: Any, *, text_field: str, where: str) -> dict[str, Any]:
    if not isinstance(record, dict) or not isinstance(record.get(text_field), str):
        raise UserError(
            f"{where}: the record has no string field '{text_field}'; pass the text field's name with --text-field"
        )
    return record
