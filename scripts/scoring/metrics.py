"""All evaluation scores from gold and predicted Docs: pure functions, no I/O, no pipeline.

    evaluation = evaluate_docs(golds=gold_docs, preds=pred_docs, tasks=Tasks(ent_labels=("PER",)))
    evaluation.metrics["ents"]["f"]  # -> 0.5

`evaluation.metrics` is what `scripts.evaluate` writes as metrics.json (layout version "format": 1),
typed by `Metrics` below. Scores are fractions 0..1; a score is null where nothing was there to
compute it on; a task the model does not have is null as a whole ("ents": null).

    {
      "format": 1,
      "model": {"name", "version", "path", "pipeline", "transformer", ...,  # by scripts.evaluate
                "tasks": {"ent_labels", "cat_labels", "exclusive", "threshold"}},
      "data": {"path", "sha256", "n_docs", "gold_preproc"},                 # by scripts.evaluate
      "warnings": ["..."],
      "ents": {
        "p", "r", "f",        # micro over known labels; a hit: the exact span with the right label
        "macro_p", "macro_r", "macro_f",           # mean over labels with gold or predictions
        "weighted_p", "weighted_r", "weighted_f",  # mean weighted by each label's gold support
        "tokenization": "model" | "gold",  # on the raw text, or on the gold words (--gold-preproc)
        "n_docs", "n_skipped",             # docs scored / skipped for having no entity annotation
        "errors": {"missed", "spurious", "wrong_label", "wrong_span"},
        "unknown_labels": {LABEL: n_gold_entities},  # not scored: the model cannot predict them
        "per_label": {LABEL: {"p", "r", "f", "support"}},
        "confidence": {       # null unless the pipeline scores its entities (entity_confidence)
          "auc",              # ROC AUC of the score telling correct predicted entities from wrong
          "ece",              # expected calibration error of the scores (10 equal-width bins)
          "n_correct", "n_wrong",
          "by_threshold": [{"threshold", "p", "r", "f", "n_kept"}],  # keeping scores >= threshold
          "reliability": [{"lower", "upper", "n", "score", "right"}],  # per bin, for the plot
        },
      },
      "textcat": {
        "mode": "exclusive" | "multilabel",
        "accuracy",           # exclusive: argmax is right; multilabel: every label is right
        "macro_f", "micro_f", "macro_auc",
        "macro_p", "macro_r", "micro_p", "micro_r",
        "weighted_p", "weighted_r", "weighted_f",  # mean weighted by each label's gold support
        "n_docs", "n_skipped", "skipped": {"no_annotation", "unknown_label", "not_one_label"},
        "unknown_labels": {LABEL: n_docs_where_positive},
        "per_label": {LABEL: {"p", "r", "f", "auc", "support", "n_docs"}},
        "confusion": {"labels": [...], "matrix": [[n gold i predicted j]]} | null,  # exclusive
        "thresholds": {LABEL: {"model", "best", "f_at_model", "f_at_best"}} | null,  # multilabel
        "ece", "reliability",  # calibration of the scores: exclusive, the top label's score against
                               # whether it is right; multilabel, every label's score against gold
      },
      "bootstrap": {          # scripts.evaluate --bootstrap N only (scripts/scoring/bootstrap.py)
        "n", "level", "seed", # draws of the test documents, 0.95, the generator's seed
        "ents": {FIGURE: [low, high] | null},     # p, r, f, the averages, confidence.auc/.ece
        "textcat": {FIGURE: [low, high] | null},  # accuracy, the averages, macro_auc, ece
      },
    }

Rules: a document without a task's annotation is not counted for that task (no entity annotation:
every token has ent_iob 0; no category annotation: doc.cats is empty). Multi-label docs are scored
only on the labels their doc.cats lists. Macro averages run over labels with gold support or
predictions; weighted averages weigh each label by its support (gold positives), as sklearn's
average="weighted" does (null where no label has support). Gold categories count as positive at
>= scripts.common.cats.POSITIVE; multi-label predictions at >= the model's threshold.
The expected calibration error (ECE) puts the scores into 10 equal-width bins and sums, weighted
by each bin's share of the scores, how far the bin's mean score is from the fraction of them that
is right: 0 when a score of 0.8 is right 80% of the time. `Evaluation.details` holds what the
report shows beyond numbers: error examples and threshold curves.
"""

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, NotRequired, Optional, Sequence, Tuple, TypedDict

from spacy.scorer import PRFScore, ROCAUCScore
from spacy.tokens import Doc, Span
from spacy.training import Example

from scripts.common.cats import POSITIVE
from scripts.scoring.entity_confidence import entity_scores

FORMAT_VERSION = 1
CURVE_GRID = tuple(round(0.05 * i, 2) for i in range(1, 20))
CALIBRATION_BINS = 10


# ---------------------------------------------------------------- metrics.json, typed


class EntErrorCounts(TypedDict):
    missed: int
    spurious: int
    wrong_label: int
    wrong_span: int


class EntLabelScores(TypedDict):
    p: Optional[float]
    r: Optional[float]
    f: Optional[float]
    support: int


class EntThresholdScores(TypedDict):
    threshold: float
    p: Optional[float]
    r: Optional[float]
    f: Optional[float]
    n_kept: int  # predicted entities scored >= threshold


class ReliabilityBin(TypedDict):
    """The scores in [lower, upper) (the last bin holds 1.0 too): how many, their mean, and the
    fraction of them that is right."""

    lower: float
    upper: float
    n: int
    score: Optional[float]  # null in an empty bin
    right: Optional[float]


class EntConfidence(TypedDict):
    auc: Optional[float]  # null unless there are both correct and wrong predicted entities
    ece: Optional[float]
    n_correct: int
    n_wrong: int
    by_threshold: List[EntThresholdScores]
    reliability: List[ReliabilityBin]


class Averages(TypedDict):
    """Macro and support-weighted P/R/F over the labels (average_prf)."""

    macro_p: Optional[float]
    macro_r: Optional[float]
    macro_f: Optional[float]
    weighted_p: Optional[float]
    weighted_r: Optional[float]
    weighted_f: Optional[float]


class EntScores(Averages):
    p: Optional[float]
    r: Optional[float]
    f: Optional[float]
    tokenization: str  # "model" or "gold"
    n_docs: int
    n_skipped: int
    errors: EntErrorCounts
    unknown_labels: Dict[str, int]
    per_label: Dict[str, EntLabelScores]
    confidence: NotRequired[Optional[EntConfidence]]


class CatLabelScores(TypedDict):
    p: Optional[float]
    r: Optional[float]
    f: Optional[float]
    auc: Optional[float]
    support: int
    n_docs: int


class Confusion(TypedDict):
    labels: List[str]
    matrix: List[List[int]]  # matrix[i][j]: docs of gold label i predicted as label j


class ThresholdScores(TypedDict):
    model: float
    best: Optional[float]
    f_at_model: Optional[float]
    f_at_best: Optional[float]


class SkippedDocs(TypedDict):
    no_annotation: int
    unknown_label: int
    not_one_label: int


class CatScores(Averages):
    mode: str  # "exclusive" or "multilabel"
    accuracy: Optional[float]
    micro_f: Optional[float]
    macro_auc: Optional[float]
    micro_p: Optional[float]
    micro_r: Optional[float]
    n_docs: int
    per_label: Dict[str, CatLabelScores]
    confusion: Optional[Confusion]  # exclusive only
    thresholds: Optional[Dict[str, ThresholdScores]]  # multilabel only
    ece: Optional[float]
    reliability: List[ReliabilityBin]
    n_skipped: int
    skipped: SkippedDocs
    unknown_labels: Dict[str, int]


class TasksInfo(TypedDict):
    """What the model predicts (Tasks), as metrics.json records it."""

    ent_labels: Optional[List[str]]
    cat_labels: Optional[List[str]]
    exclusive: bool
    threshold: float


class ModelInfo(TypedDict):
    name: str
    version: Optional[str]
    path: str
    spacy_version: Optional[str]
    pipeline: List[str]
    transformer: Optional[str]
    ents_components: List[str]
    textcat_component: Optional[str]
    tasks: NotRequired[TasksInfo]


class DataInfo(TypedDict):
    path: str
    sha256: str
    n_docs: int
    gold_preproc: bool


class Metrics(TypedDict):
    """metrics.json; evaluate_docs fills format, ents and textcat, scripts.evaluate the rest."""

    format: int
    model: NotRequired[ModelInfo]
    data: NotRequired[DataInfo]
    warnings: NotRequired[List[str]]
    ents: Optional[EntScores]
    textcat: Optional[CatScores]
    bootstrap: NotRequired[Dict[str, Any]]  # scripts/scoring/bootstrap.py's intervals()


# ---------------------------------------------------------------- details, for the report


class EntMatch(TypedDict):
    """One gold or predicted entity, tagged with what happened to it."""

    label: str
    start: int  # token offsets in gold space, for matching
    end: int
    start_char: int  # characters, for display
    end_char: int
    kind: str  # correct, missed, spurious, wrong_label or wrong_span ("" until tagged)
    score: NotRequired[float]  # a predicted entity's score, where the pipeline has them
    gold_label: NotRequired[str]  # a wrong_label prediction: the gold entity's label
    pred_label: NotRequired[str]  # a wrong_label gold entity: the predicted label


class EntErrorDoc(TypedDict):
    text: str
    gold: List[EntMatch]
    pred: List[EntMatch]
    n_errors: int


class CatError(TypedDict):
    text: str
    gold: List[str]
    pred: List[str]
    scores: Dict[str, float]
    margin: float  # how far the wrong scores are from right: the sort key


class Details(TypedDict, total=False):
    ent_errors: List[EntErrorDoc]
    cat_errors: List[CatError]
    threshold_curves: Dict[str, List[Tuple[float, float]]]


@dataclass(frozen=True)
class Tasks:
    """What the model predicts: entity labels and/or category labels (None: the model lacks the
    task)."""

    ent_labels: Optional[Tuple[str, ...]] = None
    cat_labels: Optional[Tuple[str, ...]] = None
    exclusive: bool = True
    threshold: float = POSITIVE


@dataclass
class Evaluation:
    metrics: Metrics
    details: Details = field(default_factory=lambda: Details())


def has_ent_annotation(doc: Doc) -> bool:
    """True when the doc's entities are annotated (some token has ent_iob != 0)."""
    return doc.has_annotation("ENT_IOB")


def has_cat_annotation(doc: Doc) -> bool:
    return bool(doc.cats)


def words_doc(gold: Doc) -> Doc:
    """A fresh Doc on the gold words, without their annotation: what a model predicts on under the
    gold tokenization."""
    return Doc(gold.vocab, words=[t.text for t in gold], spaces=[bool(t.whitespace_) for t in gold])


def top_category(cats: Dict[str, float], labels: Sequence[str]) -> str:
    """The label with the highest value in cats (the first in `labels` on ties): the gold class of
    an exclusive document, or the predicted one from its scores, e.g.
    top_category({"bug": 0.0, "docs": 1.0}, ["bug", "docs"]) -> "docs"."""
    return max(labels, key=lambda label: cats.get(label, 0.0))


def format_score(value: Optional[float], *, signed: bool = False) -> str:
    """A score as printed and shown in the report: three decimals, or a dash where it is null."""
    if value is None:
        return "–"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def evaluate_docs(
    *, golds: Sequence[Doc], preds: Sequence[Doc], tasks: Tasks, tokenization: str = "model"
) -> Evaluation:
    """Score predicted Docs against gold Docs (same order, same texts) for the model's tasks."""
    if len(golds) != len(preds):
        raise ValueError(f"{len(golds)} gold docs but {len(preds)} predicted docs")
    metrics = Metrics(format=FORMAT_VERSION, ents=None, textcat=None)
    details = Details()
    if tasks.ent_labels is not None:
        records = [
            match_ents(gold=g, pred=p, labels=tasks.ent_labels) for g, p in zip(golds, preds)
        ]
        metrics["ents"] = score_ents(records=records, tokenization=tokenization)
        details["ent_errors"] = ent_error_docs(records=records)
    if tasks.cat_labels is not None:
        rows, skipped, unknown = collect_cats(
            golds=golds, preds=preds, labels=tasks.cat_labels, exclusive=tasks.exclusive
        )
        if tasks.exclusive:
            metrics["textcat"] = score_exclusive(
                rows=rows, labels=tasks.cat_labels, skipped=skipped, unknown=unknown
            )
        else:
            metrics["textcat"] = score_multilabel(
                rows=rows,
                labels=tasks.cat_labels,
                threshold=tasks.threshold,
                skipped=skipped,
                unknown=unknown,
            )
            details["threshold_curves"] = threshold_curves(rows=rows, labels=tasks.cat_labels)
        details["cat_errors"] = misclassified(rows=rows, tasks=tasks)
    return Evaluation(metrics=metrics, details=details)


# ---------------------------------------------------------------- entities


@dataclass
class EntRecord:
    """One doc's entities in gold token space, each tagged with what happened to it."""

    text: str
    annotated: bool
    gold: List[EntMatch] = field(default_factory=list)
    pred: List[EntMatch] = field(default_factory=list)
    unknown: Counter[str] = field(default_factory=Counter)


def match_ents(*, gold: Doc, pred: Doc, labels: Iterable[str]) -> EntRecord:
    """Tag gold entities (correct/missed/wrong_label/wrong_span) and predicted ones
    (correct/spurious/wrong_label/wrong_span), aligning the predicted tokens to the gold ones
    the way spaCy's own NER scorer does."""
    record = EntRecord(text=gold.text, annotated=has_ent_annotation(gold))
    if not record.annotated:
        return record
    known = set(labels)
    # tokens with no annotation: predictions there are not scored
    blocked = [not t.ent_iob for t in gold]
    for ent in gold.ents:
        if ent.label_ not in known:
            record.unknown[ent.label_] += 1
            blocked[ent.start : ent.end] = [True] * len(ent)
        else:
            record.gold.append(_ent_match(ent, ent.start, ent.end))
    x2y = Example(pred, gold).alignment.x2y
    scores = entity_scores(pred) or [None] * len(pred.ents)
    for ent, score in zip(pred.ents, scores):
        indices = x2y[ent.start : ent.end]
        if len(indices) and not any(blocked[indices[0] : indices[-1] + 1]):
            match = _ent_match(ent, int(indices[0]), int(indices[-1]) + 1)
            if score is not None:
                match["score"] = score
            record.pred.append(match)
    _tag_ents(record)
    return record


def _ent_match(ent: Span, start: int, end: int) -> EntMatch:
    return EntMatch(
        label=ent.label_,
        start=start,
        end=end,
        start_char=ent.start_char,
        end_char=ent.end_char,
        kind="",
    )


def _tag_ents(record: EntRecord) -> None:
    gold_by_span = {(g["start"], g["end"]): g for g in record.gold}
    for p in record.pred:
        g = gold_by_span.get((p["start"], p["end"]))
        if g is not None and not g["kind"]:
            p["kind"] = g["kind"] = "correct" if g["label"] == p["label"] else "wrong_label"
            if p["kind"] == "wrong_label":
                p["gold_label"], g["pred_label"] = g["label"], p["label"]
    for p in record.pred:
        if not p["kind"]:
            overlaps = [g for g in record.gold if g["start"] < p["end"] and p["start"] < g["end"]]
            p["kind"] = "wrong_span" if overlaps else "spurious"
            for g in overlaps:
                g["kind"] = g["kind"] or "wrong_span"
    for g in record.gold:
        g["kind"] = g["kind"] or "missed"


def score_ents(*, records: Sequence[EntRecord], tokenization: str) -> EntScores:
    per_label: Dict[str, PRFScore] = {}
    errors: Counter[str] = Counter()
    unknown: Counter[str] = Counter()
    support: Counter[str] = Counter()
    for record in records:
        unknown.update(record.unknown)
        for g in record.gold:
            support[g["label"]] += 1
            if g["kind"] != "correct":
                per_label.setdefault(g["label"], PRFScore()).fn += 1
            if g["kind"] == "missed":
                errors["missed"] += 1
        for p in record.pred:
            score = per_label.setdefault(p["label"], PRFScore())
            if p["kind"] == "correct":
                score.tp += 1
            else:
                score.fp += 1
                errors[p["kind"]] += 1
    p, r, f = _prf(sum(per_label.values(), PRFScore()))
    n_docs = sum(r.annotated for r in records)
    averages = average_prf(counts=per_label, support=support)
    predicted = [ent for record in records for ent in record.pred]
    return EntScores(
        p=p,
        r=r,
        f=f,
        macro_p=averages["macro_p"],
        macro_r=averages["macro_r"],
        macro_f=averages["macro_f"],
        weighted_p=averages["weighted_p"],
        weighted_r=averages["weighted_r"],
        weighted_f=averages["weighted_f"],
        tokenization=tokenization,
        n_docs=n_docs,
        n_skipped=len(records) - n_docs,
        errors=EntErrorCounts(
            missed=errors["missed"],
            spurious=errors["spurious"],
            wrong_label=errors["wrong_label"],
            wrong_span=errors["wrong_span"],
        ),
        unknown_labels=dict(sorted(unknown.items())),
        per_label={
            label: _ent_label_scores(per_label[label], support[label])
            for label in sorted(per_label)
        },
        confidence=ent_confidence(
            correct=[ent["kind"] == "correct" for ent in predicted],
            scores=[ent.get("score") for ent in predicted],
            n_gold=sum(support.values()),
        ),
    )


def ent_confidence(
    *, correct: Sequence[bool], scores: Sequence[Optional[float]], n_gold: int
) -> Optional[EntConfidence]:
    """How well the entity scores tell correct predictions from wrong ones (ROC AUC), and the
    precision, recall and F left when only entities scored >= each threshold are kept; None unless
    every predicted entity has a score. Example: correct [1, 0], scores [0.9, 0.4], 2 gold -> AUC
    1.0; at 0.5, P 1.0 and R 0.5."""
    if not scores or any(score is None for score in scores):
        return None
    known = [float(score) for score in scores if score is not None]
    by_threshold = []
    for threshold in (0.0,) + CURVE_GRID:
        kept = [c for c, score in zip(correct, known) if score >= threshold]
        tp = sum(kept)
        p, r, f = _prf(PRFScore(tp=tp, fp=len(kept) - tp, fn=n_gold - tp))
        by_threshold.append(
            EntThresholdScores(threshold=threshold, p=p, r=r, f=f, n_kept=len(kept))
        )
    bins = reliability(right=correct, scores=known)
    return EntConfidence(
        auc=roc_auc(golds=correct, scores=known),
        ece=calibration_error(bins),
        n_correct=sum(correct),
        n_wrong=len(correct) - sum(correct),
        by_threshold=by_threshold,
        reliability=bins,
    )


def reliability(
    *, right: Sequence[bool], scores: Sequence[float], n_bins: int = CALIBRATION_BINS
) -> List[ReliabilityBin]:
    """The scores in n_bins equal-width bins over [0, 1], each with its mean score and the
    fraction of them that is right. Example: right [1, 0], scores [0.95, 0.91] -> the last bin
    holds 2 with mean score 0.93, right 0.5."""
    members: List[List[Tuple[float, bool]]] = [[] for _ in range(n_bins)]
    for score, ok in zip(scores, right):
        members[min(max(int(score * n_bins), 0), n_bins - 1)].append((score, bool(ok)))
    return [
        ReliabilityBin(
            lower=round(i / n_bins, 6),
            upper=round((i + 1) / n_bins, 6),
            n=len(held),
            score=sum(s for s, _ in held) / len(held) if held else None,
            right=sum(ok for _, ok in held) / len(held) if held else None,
        )
        for i, held in enumerate(members)
    ]


def calibration_error(bins: Sequence[ReliabilityBin]) -> Optional[float]:
    """The expected calibration error of reliability() bins: the mean over all scores of the
    distance between their bin's mean score and its fraction right; None without scores."""
    total = sum(b["n"] for b in bins)
    if not total:
        return None
    return sum(b["n"] * abs((b["score"] or 0.0) - (b["right"] or 0.0)) for b in bins) / total


def average_prf(*, counts: Dict[str, PRFScore], support: Dict[str, int]) -> Averages:
    """Macro (labels with gold or predictions count alike) and support-weighted (each label by
    its gold count, sklearn's average="weighted") precision, recall and F over per-label counts.

    average_prf(counts={"A": PRFScore(tp=1, fn=1), "B": PRFScore(tp=2)}, support={"A": 2, "B": 2})
    # -> weighted_r 0.75 = (0.5 * 2 + 1.0 * 2) / 4
    """
    active = [(label, score) for label, score in counts.items() if len(score)]
    total = sum(support.get(label, 0) for label, _ in active)

    def macro(values: List[float]) -> Optional[float]:
        return sum(values) / len(values) if values else None

    def weighted(values: List[float]) -> Optional[float]:
        if not total:
            return None
        return sum(v * support.get(label, 0) for v, (label, _) in zip(values, active)) / total

    ps = [score.precision for _, score in active]
    rs = [score.recall for _, score in active]
    fs = [score.fscore for _, score in active]
    return Averages(
        macro_p=macro(ps),
        macro_r=macro(rs),
        macro_f=macro(fs),
        weighted_p=weighted(ps),
        weighted_r=weighted(rs),
        weighted_f=weighted(fs),
    )


def _ent_label_scores(score: PRFScore, support: int) -> EntLabelScores:
    p, r, f = _prf(score, empty=0.0)
    return EntLabelScores(p=p, r=r, f=f, support=support)


def _prf(
    score: PRFScore, *, empty: Optional[float] = None
) -> Tuple[Optional[float], Optional[float], Optional[float]]:
    """(precision, recall, F), or `empty` three times where nothing was counted."""
    if len(score) == 0:
        return empty, empty, empty
    return score.precision, score.recall, score.fscore


def ent_error_docs(*, records: Sequence[EntRecord]) -> List[EntErrorDoc]:
    """Docs with at least one entity error, most errors first."""
    docs = []
    for record in records:
        n_errors = sum(g["kind"] == "missed" for g in record.gold) + sum(
            p["kind"] != "correct" for p in record.pred
        )
        if n_errors:
            docs.append(
                EntErrorDoc(text=record.text, gold=record.gold, pred=record.pred, n_errors=n_errors)
            )
    return sorted(docs, key=lambda d: -d["n_errors"])


# ---------------------------------------------------------------- categories


@dataclass(frozen=True)
class CatRow:
    """One scored doc: gold values for the known labels it is annotated with, and the model's
    scores."""

    text: str
    gold: Dict[str, bool]
    scores: Dict[str, float]


def no_skipped_docs() -> SkippedDocs:
    return SkippedDocs(no_annotation=0, unknown_label=0, not_one_label=0)


def collect_cats(
    *, golds: Sequence[Doc], preds: Sequence[Doc], labels: Sequence[str], exclusive: bool
) -> Tuple[List[CatRow], SkippedDocs, Counter[str]]:
    """Keep the docs that can be scored; count the skipped ones by reason and the unknown labels."""
    rows: List[CatRow] = []
    skipped = no_skipped_docs()
    unknown: Counter[str] = Counter()
    for gold, pred in zip(golds, preds):
        if not has_cat_annotation(gold):
            skipped["no_annotation"] += 1
            continue
        extra = [label for label in gold.cats if label not in labels]
        unknown.update({label: int(gold.cats[label] >= POSITIVE) for label in extra})
        positives = [label for label, value in gold.cats.items() if value >= POSITIVE]
        if exclusive and len(positives) != 1:
            skipped["not_one_label"] += 1
            continue
        if exclusive and positives[0] not in labels:
            skipped["unknown_label"] += 1
            continue
        scored = list(labels) if exclusive else [label for label in labels if label in gold.cats]
        if not scored:
            skipped["unknown_label"] += 1
            continue
        rows.append(
            CatRow(
                text=gold.text,
                gold={label: gold.cats.get(label, 0.0) >= POSITIVE for label in scored},
                scores={label: float(pred.cats.get(label, 0.0)) for label in labels},
            )
        )
    return rows, skipped, unknown


def predicted_label(row: CatRow, labels: Sequence[str]) -> str:
    # ties go to the first label in the model's order, as numpy's argmax does
    return top_category(row.scores, labels)


def gold_label(row: CatRow) -> str:
    return next(label for label, value in row.gold.items() if value)


def score_exclusive(
    *,
    rows: Sequence[CatRow],
    labels: Sequence[str],
    skipped: Optional[SkippedDocs] = None,
    unknown: Optional[Dict[str, int]] = None,
) -> CatScores:
    """The textcat section of an exclusive classifier: the top score is the prediction.
    skipped and unknown: the counts from collect_cats, reported as they are."""
    labels = list(labels)
    matrix = [[0] * len(labels) for _ in labels]
    for row in rows:
        matrix[labels.index(gold_label(row))][labels.index(predicted_label(row, labels))] += 1
    counts = {}
    for i, label in enumerate(labels):
        tp = matrix[i][i]
        counts[label] = PRFScore(tp=tp, fp=sum(r[i] for r in matrix) - tp, fn=sum(matrix[i]) - tp)
    correct = sum(matrix[i][i] for i in range(len(labels)))
    return _cat_scores(
        mode="exclusive",
        accuracy=correct / len(rows) if rows else None,
        counts=counts,
        rows=rows,
        confusion=Confusion(labels=labels, matrix=matrix),
        thresholds=None,
        skipped=skipped,
        unknown=unknown,
    )


def score_multilabel(
    *,
    rows: Sequence[CatRow],
    labels: Sequence[str],
    threshold: float,
    skipped: Optional[SkippedDocs] = None,
    unknown: Optional[Dict[str, int]] = None,
) -> CatScores:
    """The textcat section of a multi-label classifier: every label scored >= threshold is
    predicted. skipped and unknown: the counts from collect_cats, reported as they are."""
    counts = {}
    thresholds = {}
    for label in labels:
        golds, scores = _label_column(rows, label)
        counts[label] = binary_prf(golds=golds, scores=scores, threshold=threshold)
        thresholds[label] = find_threshold(golds=golds, scores=scores, model_threshold=threshold)
    exact = sum(all((row.scores[k] >= threshold) == v for k, v in row.gold.items()) for row in rows)
    return _cat_scores(
        mode="multilabel",
        accuracy=exact / len(rows) if rows else None,
        counts=counts,
        rows=rows,
        confusion=None,
        thresholds=thresholds,
        skipped=skipped,
        unknown=unknown,
    )


def _label_column(rows: Sequence[CatRow], label: str) -> Tuple[List[bool], List[float]]:
    scored = [row for row in rows if label in row.gold]
    return [row.gold[label] for row in scored], [row.scores[label] for row in scored]


def _cat_scores(
    *,
    mode: str,
    accuracy: Optional[float],
    counts: Dict[str, PRFScore],
    rows: Sequence[CatRow],
    confusion: Optional[Confusion],
    thresholds: Optional[Dict[str, ThresholdScores]],
    skipped: Optional[SkippedDocs],
    unknown: Optional[Dict[str, int]],
) -> CatScores:
    """The textcat section: macro/micro F, macro AUC and the per-label table from per-label
    counts, next to the mode's own figures."""
    per_label = {}
    for label, score in counts.items():
        golds, scores = _label_column(rows, label)
        p, r, f = _prf(score, empty=0.0)
        per_label[label] = CatLabelScores(
            p=p,
            r=r,
            f=f,
            auc=roc_auc(golds=golds, scores=scores),
            support=sum(golds),
            n_docs=len(golds),
        )
    aucs = [values["auc"] for values in per_label.values() if values["auc"] is not None]
    micro_p, micro_r, micro_f = _prf(sum(counts.values(), PRFScore()))
    bins = cat_reliability(rows=rows, labels=list(counts), exclusive=mode == "exclusive")
    averages = average_prf(
        counts=counts, support={label: v["support"] for label, v in per_label.items()}
    )
    skipped = skipped or no_skipped_docs()
    return CatScores(
        mode=mode,
        accuracy=accuracy,
        macro_f=averages["macro_f"],
        micro_f=micro_f,
        macro_auc=sum(aucs) / len(aucs) if aucs else None,
        macro_p=averages["macro_p"],
        macro_r=averages["macro_r"],
        micro_p=micro_p,
        micro_r=micro_r,
        weighted_p=averages["weighted_p"],
        weighted_r=averages["weighted_r"],
        weighted_f=averages["weighted_f"],
        n_docs=len(rows),
        per_label=per_label,
        confusion=confusion,
        thresholds=thresholds,
        ece=calibration_error(bins),
        reliability=bins,
        n_skipped=sum(skipped.values()),
        skipped=skipped,
        unknown_labels=dict(sorted((unknown or {}).items())),
    )


def cat_reliability(
    *, rows: Sequence[CatRow], labels: Sequence[str], exclusive: bool
) -> List[ReliabilityBin]:
    """reliability() of the category scores: exclusive, each document's top score against whether
    its label is right (what a user reads as "how sure"); multi-label, each scored label's
    probability against its gold yes/no."""
    if exclusive:
        right = [predicted_label(row, labels) == gold_label(row) for row in rows]
        scores = [row.scores[predicted_label(row, labels)] for row in rows]
        return reliability(right=right, scores=scores)
    pairs = [(row.gold[label], row.scores[label]) for row in rows for label in row.gold]
    return reliability(right=[g for g, _ in pairs], scores=[s for _, s in pairs])


def roc_auc(*, golds: Sequence[bool], scores: Sequence[float]) -> Optional[float]:
    """ROC AUC of scores for binary golds; None unless both classes occur."""
    auc = ROCAUCScore()
    for gold, score in zip(golds, scores):
        auc.score_set(score, int(gold))
    return float(auc.score) if auc.is_binary() else None


def binary_prf(*, golds: Sequence[bool], scores: Sequence[float], threshold: float) -> PRFScore:
    """Counts for one label: a score >= threshold predicts the label."""
    return PRFScore(
        tp=sum(g and s >= threshold for g, s in zip(golds, scores)),
        fp=sum(not g and s >= threshold for g, s in zip(golds, scores)),
        fn=sum(g and s < threshold for g, s in zip(golds, scores)),
    )


def f_at(*, golds: Sequence[bool], scores: Sequence[float], threshold: float) -> float:
    return binary_prf(golds=golds, scores=scores, threshold=threshold).fscore


def find_threshold(
    *, golds: Sequence[bool], scores: Sequence[float], model_threshold: float
) -> ThresholdScores:
    """The threshold with the best F on this data (midway between the scores it separates; ties go
    to the one nearest the model's), next to the F at the model's own threshold. Example: golds
    [1, 0], scores [0.4, 0.2] -> best 0.3."""
    if not any(golds):
        return ThresholdScores(model=model_threshold, best=None, f_at_model=None, f_at_best=None)
    cuts = f_by_cut(golds=golds, scores=scores)
    best, f_best = max(cuts, key=lambda cut: (cut[1], -abs(cut[0] - model_threshold)))
    return ThresholdScores(
        model=model_threshold,
        best=best,
        f_at_model=f_at(golds=golds, scores=scores, threshold=model_threshold),
        f_at_best=f_best,
    )


def f_by_cut(*, golds: Sequence[bool], scores: Sequence[float]) -> List[Tuple[float, float]]:
    """(threshold, F) for every distinct score, in one sweep from the highest: the threshold lies
    midway to the next lower score (the lowest score is its own threshold)."""
    pairs = sorted(zip(scores, golds), reverse=True)
    n_pos = sum(golds)
    cuts: List[Tuple[float, float]] = []
    tp = fp = 0
    for i, (score, gold) in enumerate(pairs):
        tp, fp = tp + bool(gold), fp + (not gold)
        if i + 1 < len(pairs) and pairs[i + 1][0] == score:
            continue  # all docs with this score fall on the same side
        lower = pairs[i + 1][0] if i + 1 < len(pairs) else score
        cuts.append(((score + lower) / 2, 2 * tp / (tp + fp + n_pos)))
    return cuts


def threshold_curves(
    *, rows: Sequence[CatRow], labels: Sequence[str]
) -> Dict[str, List[Tuple[float, float]]]:
    """F by threshold on a fixed grid, per label with positive examples (for the report's plot)."""
    curves = {}
    for label in labels:
        golds, scores = _label_column(rows, label)
        if any(golds):
            curves[label] = [(t, f_at(golds=golds, scores=scores, threshold=t)) for t in CURVE_GRID]
    return curves


def misclassified(*, rows: Sequence[CatRow], tasks: Tasks) -> List[CatError]:
    """Wrongly classified docs, most confidently wrong first."""
    labels = list(tasks.cat_labels or ())
    errors = []
    for row in rows:
        if tasks.exclusive:
            gold, pred = [gold_label(row)], [predicted_label(row, labels)]
            margin = row.scores[pred[0]] - row.scores[gold[0]]
        else:
            gold = [k for k, v in row.gold.items() if v]
            pred = [k for k in row.gold if row.scores[k] >= tasks.threshold]
            wrong = [k for k, v in row.gold.items() if (row.scores[k] >= tasks.threshold) != v]
            margin = max((abs(row.scores[k] - tasks.threshold) for k in wrong), default=0.0)
        if gold != pred:
            errors.append(
                CatError(text=row.text, gold=gold, pred=pred, scores=row.scores, margin=margin)
            )
    return sorted(errors, key=lambda e: -e["margin"])
