"""The one way from texts to JSON records: entities (character offsets) and label scores.

    predictor = load_predictor("training/model-best")
    predict_texts(predictor, ["Python and SQL are required."])
    # -> [{"entities": [{"start": 0, "end": 6, "label": "SKILL", "text": "Python",
    #                     "score": 0.998}, ...],
    #      "cats": {"requirements": 0.981, "benefits": 0.004, ...}}]

annotate and serve predict through here, so their outputs agree; the pipeline is loaded and read
as scripts.evaluate does (scripts.scoring.pipeline), its entity scores turned on. The Label Studio
helpers turn the same records into Label Studio predictions ("result" items of type labels and
choices). Offsets are Python character offsets (code points), which is what Label Studio stores
since it stopped counting UTF-16 units; each span also carries its text, and its score where the
pipeline has the entity_confidence component (scripts/scoring/entity_confidence.py); min_score
drops the entities scored below it.
"""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from functools import lru_cache
from itertools import repeat
from pathlib import Path
from typing import Any, Iterator, NotRequired, Sequence, TypedDict

from spacy.language import Language
from spacy.tokens import Doc

from scripts.common.cats import POSITIVE
from scripts.common.device import activate, resolve_device
from scripts.common.errors import UserError
from scripts.inference.cold_start import cold_start_plan
from scripts.scoring.entity_confidence import (
    entity_confidence_names,
    entity_scores,
    has_entity_confidence,
)
from scripts.scoring.metrics import top_category
from scripts.scoring.pipeline import (
    cat_decision_rule,
    find_components,
    labels_of,
    load_pipeline,
    pipeline_name,
)
from scripts.scoring.uncertainty import MARGIN, check_rule, no_entity_probabilities, uncertainty

SCORE_DIGITS = 6  # enough for any threshold; keeps records short and byte-stable
JSONL_SUFFIXES = (".jsonl", ".ndjson")


class Entity(TypedDict):
    start: int  # character offsets into the text
    end: int
    label: str
    text: str
    score: NotRequired[float]  # confidence in [0, 1]; absent without entity_confidence


class Prediction(TypedDict):
    """One text's record: its entities and a score per category label."""

    entities: list[Entity]
    cats: dict[str, float]
    # predict_texts(parse_scores=True), a text without entities: the probability the recognizer
    # gave "no entity here" (scripts/scoring/uncertainty.py), for Label Studio's task score.
    parse_score: NotRequired[float]


@dataclass(frozen=True)
class Predictor:
    """A loaded pipeline and what it predicts."""

    nlp: Language
    version: str  # "en_job_postings-0.0.1": the model_version Label Studio shows
    ent_labels: tuple[str, ...]
    cat_labels: tuple[str, ...]
    exclusive: bool  # textcat (one label per text) rather than textcat_multilabel
    threshold: float  # textcat_multilabel: a label is predicted at >= threshold
    min_score: float = 0.0  # entities scored below it are left out
    uncertainty: str = MARGIN  # how a Label Studio prediction's score is found (its rules)


def load_predictor(
    model: str, *, gpu_id: str = "-1", min_score: float = 0.0, uncertainty: str = MARGIN
) -> Predictor:
    """Load a pipeline directory or installed package with its entity scores on (the
    entity_confidence component it ships disabled), e.g. load_predictor("en_job_postings")."""
    activate(resolve_device(gpu_id))
    nlp = load_pipeline(model, entity_scores=True)
    return describe_pipeline(nlp, min_score=min_score, uncertainty=uncertainty)


def describe_pipeline(
    nlp: Language, *, min_score: float = 0.0, uncertainty: str = MARGIN
) -> Predictor:
    """What a loaded pipeline predicts, e.g. describe_pipeline(spacy.load("en_job_postings"))."""
    try:
        check_rule(uncertainty)
    except ValueError as err:
        raise UserError(str(err)) from None
    if not 0.0 <= min_score <= 1.0:
        raise UserError(f"--min-score {min_score} is not between 0 and 1; pass e.g. 0.5")
    if min_score > 0 and not has_entity_confidence(nlp):
        fix = (
            "turn it on with nlp.enable_pipe('entity_confidence')"
            if entity_confidence_names(nlp)
            else "add it with python -m scripts.add_confidence"
        )
        raise UserError(
            f"--min-score needs entity scores, and the pipeline ({', '.join(nlp.pipe_names)}) "
            f"runs no entity_confidence component; {fix}"
        )
    components = find_components(nlp)
    cat_labels: tuple[str, ...] = ()
    exclusive, threshold = True, POSITIVE
    if components.cats:
        name = components.cats[-1]  # the last one to set doc.cats has the final say
        pipe = nlp.get_pipe(name)
        cat_labels = tuple(pipe.labels)
        exclusive, threshold = cat_decision_rule(pipe, name=name)
    version = f"{pipeline_name(nlp)}-{nlp.meta.get('version', '0.0.0')}"
    ent_labels = labels_of(nlp, components.ents)
    cold = cold_start_plan(nlp)
    if cold is not None:  # its entity ruler knows only the labels that have patterns
        ent_labels = tuple(sorted({*ent_labels, *cold.labels}))
    return Predictor(
        nlp, version, ent_labels, cat_labels, exclusive, threshold, min_score, uncertainty
    )


def doc_to_prediction(doc: Doc, *, min_score: float = 0.0) -> Prediction:
    """{"entities": [{"start", "end", "label", "text", "score"}], "cats": {label: score}} for one
    Doc; entities scored below min_score are left out."""
    scores = entity_scores(doc) or [None] * len(doc.ents)
    entities = []
    for ent, score in zip(doc.ents, scores):
        entity = Entity(start=ent.start_char, end=ent.end_char, label=ent.label_, text=ent.text)
        if score is not None:
            entity["score"] = round(score, SCORE_DIGITS)
        if min_score <= 0 or entity.get("score", 0.0) >= min_score:
            entities.append(entity)
    return Prediction(
        entities=entities,
        cats={label: round(float(score), SCORE_DIGITS) for label, score in doc.cats.items()},
    )


def predict_texts(
    predictor: Predictor,
    texts: Sequence[str],
    *,
    batch_size: int | None = None,
    parse_scores: bool = False,
) -> list[Prediction]:
    """One prediction per text, in order; batch_size None is the pipeline's own [nlp] batch_size;
    entities scored below predictor.min_score are left out. parse_scores: a text without
    entities also gets its "parse_score", where the pipeline scores its entities (Label Studio's
    task scores need it; plain records leave it out, since it costs a replay of the parse)."""
    # An empty text gets no entities and zero scores without running the pipeline: spaCy's textcat
    # scores an empty doc differently depending on its batch mates, and the output must not.
    nonempty = [text for text in texts if text]
    size = batch_size or predictor.nlp.batch_size
    found: Iterator[Doc] = iter(predictor.nlp.pipe(nonempty, batch_size=size))
    parse: Iterator[float | None] = repeat(None)
    if parse_scores:
        docs = list(found)
        found, parse = iter(docs), iter(no_entity_probabilities(predictor.nlp, docs))
    predictions = []
    for text in texts:
        if not text:
            predictions.append(empty_prediction(predictor))
            continue
        prediction = doc_to_prediction(next(found), min_score=predictor.min_score)
        probability = next(parse)
        if probability is not None:
            prediction["parse_score"] = round(probability, SCORE_DIGITS)
        predictions.append(prediction)
    return predictions


def empty_prediction(predictor: Predictor) -> Prediction:
    return Prediction(entities=[], cats={label: 0.0 for label in predictor.cat_labels})


def unreadable_text(text: str) -> str | None:
    """Why spaCy cannot take this text, or None: a lone surrogate ("\\ud800", which JSON escapes
    allow) is not Unicode text and fails the tokenizers, e.g. unreadable_text("ok") is None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        return (
            f"character {err.start} ({text[err.start]!a}) is a lone UTF-16 surrogate, not "
            "Unicode text"
        )
    return None


# --------------------------------------------------------------------------------------------------
# Label Studio: the labeling config's tag names, and predictions in its result format


@dataclass(frozen=True)
class LabelConfig:
    """Where predictions go in a Label Studio labeling config (the defaults match
    labelstudio_config())."""

    text_field: str = "text"  # task["data"] key: <Text value="$text">
    to_name: str = "text"  # <Text name="text">
    ner_from: str | None = "label"  # <Labels name="label" toName="text">; None: no Labels
    cats_from: str | None = "category"  # <Choices name="category" toName="text">; None: no Choices
    ner_labels: frozenset[str] | None = None  # labels the config offers; None: any
    cat_labels: frozenset[str] | None = None


def parse_label_config(xml: Any) -> LabelConfig:
    """Tag names from a labeling config; the defaults when there is none, e.g.
    parse_label_config(None). UserError for anything but XML text."""
    if xml is not None and not isinstance(xml, str):
        raise UserError(f"the Label Studio labeling config is a JSON {type(xml).__name__}, not XML")
    if xml is not None and unreadable_text(xml):
        raise UserError(f"the Label Studio labeling config: {unreadable_text(xml)}")
    return _parse_label_config(xml)


@lru_cache(maxsize=32)  # Label Studio sends the same config with every request
def _parse_label_config(xml: str | None) -> LabelConfig:
    if not xml or not xml.strip():
        return LabelConfig()
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError as err:
        raise UserError(f"the Label Studio labeling config is not valid XML ({err})") from None
    texts = [el for el in root.iter() if el.tag in ("Text", "HyperText") and el.get("name")]
    if not texts:
        raise UserError(
            'the Label Studio labeling config has no <Text name=... value="$..."/> tag to '
            "predict on"
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


class LabelsValue(TypedDict):
    start: int
    end: int
    text: str
    labels: list[str]


class ChoicesValue(TypedDict):
    choices: list[str]


class ResultItem(TypedDict):
    """One Label Studio "result" item: a labelled span, or the chosen categories."""

    id: str
    from_name: str
    to_name: str
    type: str  # "labels" or "choices"
    value: LabelsValue | ChoicesValue
    score: NotRequired[float]  # a labelled span's entity score, where the pipeline has them


class LabelStudioPrediction(TypedDict):
    model_version: str
    result: list[ResultItem]
    score: NotRequired[float]  # absent without categories and entity scores


def labelstudio_prediction(
    prediction: Prediction, *, predictor: Predictor, config: LabelConfig
) -> LabelStudioPrediction:
    """A Label Studio prediction {"model_version", "result", "score"} from one record of
    predict_texts."""
    result: list[ResultItem] = []
    ent_scores = []
    if config.ner_from:
        for i, ent in enumerate(prediction["entities"]):
            if config.ner_labels is None or ent["label"] in config.ner_labels:
                value = LabelsValue(
                    start=ent["start"], end=ent["end"], text=ent["text"], labels=[ent["label"]]
                )
                item = ResultItem(
                    id=f"ent{i}",
                    from_name=config.ner_from,
                    to_name=config.to_name,
                    type="labels",
                    value=value,
                )
                if "score" in ent:
                    item["score"] = ent["score"]
                    ent_scores.append(ent["score"])
                result.append(item)
    cats = prediction["cats"]
    chosen = predicted_labels(cats, exclusive=predictor.exclusive, threshold=predictor.threshold)
    if config.cats_from and config.cat_labels is not None:
        chosen = [label for label in chosen if label in config.cat_labels]
    if config.cats_from and chosen:
        result.append(
            ResultItem(
                id="cats",
                from_name=config.cats_from,
                to_name=config.to_name,
                type="choices",
                value=ChoicesValue(choices=chosen),
            )
        )
    output = LabelStudioPrediction(model_version=predictor.version, result=result)
    # Only what the project labels counts: its config may leave the entities or the categories out.
    score = task_score(
        {**prediction, "cats": prediction["cats"] if config.cats_from else {}},
        predictor=predictor,
        entity_scores=ent_scores,
        with_entities=bool(config.ner_from),
    )
    if score is not None:
        output["score"] = score
    return output


def task_score(
    prediction: Prediction,
    *,
    predictor: Predictor,
    entity_scores: Sequence[float] | None = None,
    with_entities: bool = True,
) -> float | None:
    """What Label Studio sorts tasks by and its uncertainty sampling serves lowest first: the
    certainty, 1 - the text's uncertainty by predictor.uncertainty's rule
    (scripts/scoring/uncertainty.py); with_entities False leaves the entities out. None with
    neither categories nor entity scores."""
    if entity_scores is None:
        entity_scores = [ent["score"] for ent in prediction["entities"] if "score" in ent]
    found = uncertainty(
        prediction["cats"],
        exclusive=predictor.exclusive,
        threshold=predictor.threshold,
        entity_scores=entity_scores if with_entities else None,
        parse_probability=prediction.get("parse_score") if with_entities else None,
        rule=predictor.uncertainty,
    )
    return None if found is None else round(1.0 - found, SCORE_DIGITS)


def predicted_labels(cats: dict[str, float], *, exclusive: bool, threshold: float) -> list[str]:
    """The category of an exclusive textcat (argmax), or every label at or over the threshold."""
    if not cats:
        return []
    if exclusive:
        return [top_category(cats, list(cats))]
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


# --------------------------------------------------------------------------------------------------
# Inputs: JSONL / JSON array (a text field), CSV (a text column) or plain text (one text per line)


def read_records(path: Path, *, text_field: str = "text") -> Iterator[dict[str, Any]]:
    """Records with a string under text_field, in file order; blank lines are skipped.

    JSON lines: {"id": 7, "text": "..."}; CSV: a header with a text column; anything else: a text
    per line.
    """
    return (record for _, record in read_located_records(path, text_field=text_field))


def read_located_records(
    path: Path, *, text_field: str = "text"
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The records of read_records, each with where it is ("texts.jsonl:7"), for messages."""
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
            for number, line in enumerate(file, 1):
                if line.strip():
                    yield f"{path}:{number}", {text_field: line.rstrip("\r\n")}


def _read_jsonl(path: Path, *, text_field: str) -> Iterator[tuple[str, dict[str, Any]]]:
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
            where = f"{path}:{number}"
            yield where, check_record(record, text_field=text_field, where=where)


def _read_json_array(path: Path, *, text_field: str) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        records = json.loads(path.read_text(encoding="utf8"))
    except json.JSONDecodeError as err:
        raise UserError(
            f"{path}: not valid JSON ({err.msg} at line {err.lineno}); pass a JSON array or "
            "JSON lines (.jsonl)"
        ) from None
    if not isinstance(records, list):
        raise UserError(
            f"{path}: the JSON is a {type(records).__name__}, not an array of records; "
            f'pass [{{"{text_field}": ...}}, ...]'
        )
    for number, record in enumerate(records, 1):
        where = f"{path}: record {number}"
        yield where, check_record(record, text_field=text_field, where=where)


def _read_table(
    path: Path, *, text_field: str, delimiter: str
) -> Iterator[tuple[str, dict[str, Any]]]:
    with path.open(encoding="utf8", newline="") as file:
        reader = csv.DictReader(file, delimiter=delimiter)
        if text_field not in (reader.fieldnames or []):
            columns = ", ".join(reader.fieldnames or []) or "none"
            raise UserError(
                f"{path}: no '{text_field}' column (columns: {columns}); pass the text column "
                "with --text-field"
            )
        for row in reader:
            where = f"{path}:{reader.line_num}"
            yield where, {key: value for key, value in row.items() if key is not None}


def check_record(record: Any, *, text_field: str, where: str) -> dict[str, Any]:
    if not isinstance(record, dict) or not isinstance(record.get(text_field), str):
        raise UserError(
            f"{where}: the record has no string field '{text_field}'; pass the text field's "
            "name with --text-field"
        )
    return record
