"""Render an evaluation (scripts.scoring.metrics) as one self-contained HTML page and PNG plots.

    report = render_report(metrics=evaluation.metrics, details=evaluation.details)
    report.html   # str: no scripts, fonts or images by URL; the plots are embedded as data URIs
    report.plots  # {"ents_per_label.png": b"\\x89PNG...", ...}

Pure: nothing is written here; scripts.evaluate does the I/O.
"""

import base64
import html
import io
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from matplotlib.figure import Figure
from spacy import displacy

from scripts.evaluation.explain import CSS as EXPLAIN_CSS
from scripts.evaluation.explain import Explanation, explanation_html, legend_html
from scripts.scoring.bootstrap import lookup
from scripts.scoring.curves import CurvePoint, best_point, plotted_scores
from scripts.scoring.metrics import (
    CatError,
    CatLabelScores,
    CatScores,
    Confusion,
    Details,
    EntConfidence,
    EntErrorDoc,
    EntLabelScores,
    EntMatch,
    EntScores,
    Metrics,
    ReliabilityBin,
    ThresholdScores,
    format_score,
)

PLOT_NAMES = (
    "ents_per_label.png",
    "textcat_per_label.png",
    "textcat_confusion.png",
    "textcat_thresholds.png",
    "training_curves.png",
    "ents_confidence.png",
    "reliability.png",
)
GOLD_COLOURS = {"correct": "#d6e6ff", "error": "#7fb0ff"}
PRED_COLOURS = {"correct": "#ffe6c7", "error": "#ffab57"}
BAR_COLOURS = ("#4c78a8", "#f58518", "#54a24b")
KIND_NOTES = {
    "gold": {"missed": "missed", "wrong_label": "predicted {other}", "wrong_span": "span differs"},
    "pred": {"spurious": "spurious", "wrong_label": "gold {other}", "wrong_span": "wrong span"},
}
CSS = (
    """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:2em auto;
max-width:70em;padding:0 1em;color:#222;line-height:1.4}h1{font-size:1.6em;margin-bottom:.2em}
h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}table{border-collapse:collapse;
margin:.6em 0 1.2em}th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#f4f4f4}td.l,th.l{text-align:left}.meta td{text-align:left}.cards{display:flex;
flex-wrap:wrap;gap:.8em;margin:1em 0}.card{border:1px solid #ddd;border-radius:.4em;
padding:.5em 1em;min-width:8em}.card b{display:block;font-size:1.5em}.card span{color:#666;
font-size:.85em}.warn{background:#fff4d6;border-left:4px solid #e0a800;padding:.5em 1em;
margin:.5em 0}.note{color:#555}.example{border:1px solid #e4e4e4;border-radius:.4em;
padding:.3em .8em;margin:.8em 0}.row{display:flex;gap:.6em;align-items:baseline}
.row>.tag{flex:0 0 5.5em;font-size:.8em;color:#555;font-weight:bold;text-transform:uppercase}
.row>.entities{flex:1}img{max-width:100%;height:auto}td.text{text-align:left;max-width:40em}
.legend mark{padding:.1em .4em;border-radius:.3em;margin-right:.3em}
"""
    + EXPLAIN_CSS
)
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


@dataclass(frozen=True)
class Report:
    html: str
    plots: Dict[str, bytes]


def render_report(
    *,
    metrics: Metrics,
    details: Details,
    max_examples: int = 50,
    curves: Optional[List[CurvePoint]] = None,
    explanations: Sequence[Explanation] = (),
    explanations_missing: Optional[str] = None,
) -> Report:
    """The HTML page and the PNG plots for an evaluation; at most max_examples error examples per
    task; explanations of the first misclassified texts, in order (or why there are none);
    curves: the training curves (scripts/scoring/curves.py), for their own section."""
    plots = make_plots(metrics=metrics, details=details)
    if curves:
        plots["training_curves.png"] = plot_training_curves(points=curves)
    parts = [_header(metrics)]
    if metrics.get("ents") is not None:
        parts.append(
            _ents_section(metrics["ents"], details.get("ent_errors", []), plots, max_examples)
        )
    if metrics.get("textcat") is not None:
        parts.append(
            _textcat_section(metrics["textcat"], details.get("cat_errors", []), plots, max_examples)
            + _explained(details.get("cat_errors", []), explanations, explanations_missing)
        )
    parts.append(_calibration_section(metrics, plots))
    parts.append(_intervals_section(metrics))
    if curves:
        parts.append(_curves_section(curves, plots))
    title = html.escape(f"Evaluation: {metrics.get('model', {}).get('name', 'model')}")
    page = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{CSS}</style></head>\n<body>\n"
        + "\n".join(parts)
        + "\n</body></html>\n"
    )
    return Report(html=page, plots=plots)


# ---------------------------------------------------------------- HTML pieces


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _table(
    header: Sequence[str], rows: Sequence[Sequence[Any]], *, left: int = 1, cls: str = ""
) -> str:
    """A table whose first `left` columns are left-aligned text; cells are escaped unless
    pre-rendered (a 1-tuple holding markup)."""

    def cell(tag: str, i: int, value: Any) -> str:
        text = value[0] if isinstance(value, tuple) else _esc(value)
        return f"<{tag}{' class=l' if i < left else ''}>{text}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>" for row in rows
    )
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _card(label: str, value: Optional[float]) -> str:
    return f'<div class="card"><b>{format_score(value)}</b><span>{_esc(label)}</span></div>'


def _img(plots: Dict[str, bytes], name: str, alt: str) -> str:
    if name not in plots:
        return ""
    data = base64.b64encode(plots[name]).decode("ascii")
    return f'<p><img src="data:image/png;base64,{data}" alt="{_esc(alt)}"></p>'


def _header(metrics: Metrics) -> str:
    model, data = metrics.get("model", {}), metrics.get("data", {})
    # <lang>_<name>-<version>, as the wheel, the server and the demo page name it
    name = model.get("name", "?")
    rows = [
        ("Model", f"{name}-{model['version']}" if model.get("version") else name),
        ("Loaded from", model.get("path", "?")),
        ("Pipeline", ", ".join(model.get("pipeline", []))),
        ("Base transformer", model.get("transformer") or "none"),
        ("Data", data.get("path", "?")),
        ("Data sha256", data.get("sha256", "?")),
        ("Documents", data.get("n_docs", "?")),
    ]
    meta = "".join(f"<tr><th class=l>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in rows)
    warnings = "".join(f'<div class="warn">{_esc(w)}</div>' for w in metrics.get("warnings", []))
    cards = []
    if metrics.get("ents"):
        cards += [_card(f"entities {k.upper()}", metrics["ents"][k]) for k in ("p", "r", "f")]
    if metrics.get("textcat"):
        tc = metrics["textcat"]
        cards += [
            _card("textcat accuracy", tc["accuracy"]),
            _card("textcat macro F", tc["macro_f"]),
            _card("textcat micro F", tc["micro_f"]),
            _card("textcat macro AUC", tc["macro_auc"]),
        ]
    return (
        f"<h1>{_esc('Evaluation of ' + model.get('name', 'model'))}</h1>{warnings}"
        f'<div class="cards">{"".join(cards)}</div><table class="meta">{meta}</table>'
    )


def _counted(section: EntScores | CatScores, skipped: str) -> str:
    return (
        f'<p class="note">Scored on {section["n_docs"]} documents; {section["n_skipped"]} skipped '
        f"({_esc(skipped)}).</p>"
    )


def _unknown(section: EntScores | CatScores, what: str) -> str:
    if not section["unknown_labels"]:
        return ""
    items = ", ".join(f"{_esc(k)} ({v})" for k, v in section["unknown_labels"].items())
    return (
        '<div class="warn">Labels in the data that the model does not know, not scored '
        f"({what}): {items}</div>"
    )


def _ents_section(
    ents: EntScores, errors: List[EntErrorDoc], plots: Dict[str, bytes], cap: int
) -> str:
    how = (
        "the model's own tokenization of the raw text, aligned to the gold tokens"
        if ents["tokenization"] == "model"
        else "the gold tokenization (--gold-preproc: the pipeline ran on the gold words)"
    )
    rows = [
        (label, format_score(v["p"]), format_score(v["r"]), format_score(v["f"]), v["support"])
        for label, v in sorted(ents["per_label"].items(), key=lambda kv: -kv[1]["support"])
    ]
    support = sum(v["support"] for v in ents["per_label"].values())
    rows += [
        [name, *scores, support]
        for name, scores in _averages(
            ents, micro=(ents["p"], ents["r"], ents["f"]), micro_name="all (micro average)"
        )
    ]
    err = ents["errors"]
    shown = errors[:cap]
    examples = (
        (_legend() + "".join(_ent_example(doc) for doc in shown)) if shown else "<p>None.</p>"
    )
    return (
        f"<h2>Entities</h2><p>Scored on {how}. A hit is the exact span with the right label.</p>"
        + _counted(ents, "no entity annotation")
        + _unknown(ents, "gold entities")
        + _table(["label", "precision", "recall", "F", "support"], rows)
        + _table(
            ["missed", "spurious", "wrong label", "wrong span"],
            [(err["missed"], err["spurious"], err["wrong_label"], err["wrong_span"])],
            left=0,
        )
        + _img(plots, "ents_per_label.png", "entity scores per label")
        + _confidence_section(ents.get("confidence"), plots)
        + f"<h3>Errors in context ({len(shown)} of {len(errors)} documents with errors, "
        "most errors first)</h3>" + examples
    )


def _confidence_section(confidence: Optional[EntConfidence], plots: Dict[str, bytes]) -> str:
    """How well the entity scores separate right from wrong, and what --min-score trades."""
    if not confidence:
        return ""
    return (
        "<h3>Entity scores</h3><p>Each predicted entity has a score (entity_confidence). ROC AUC "
        f"of the score telling the {confidence['n_correct']} correct predicted entities from the "
        f"{confidence['n_wrong']} wrong ones: <b>{format_score(confidence['auc'])}</b> (0.5: no "
        "better than chance); expected calibration error "
        f"<b>{format_score(confidence.get('ece'))}</b> (see Calibration below). Keeping only the "
        "entities scored at or above a threshold (--min-score of scripts.annotate and "
        "scripts.serve) gives:</p>"
        + _img(plots, "ents_confidence.png", "entity precision, recall and F by --min-score")
        + _table(
            ["--min-score", "precision", "recall", "F", "entities kept"],
            [
                (
                    f"{row['threshold']:.2f}",
                    format_score(row["p"]),
                    format_score(row["r"]),
                    format_score(row["f"]),
                    row["n_kept"],
                )
                for row in confidence["by_threshold"]
            ],
            left=0,
        )
    )


def _calibration_section(metrics: Metrics, plots: Dict[str, bytes]) -> str:
    """How far the scores are from how often they are right: ECE and the reliability plot."""
    rows = [(name, format_score(ece), n) for name, _, ece, n in _calibrated_scores(metrics)]
    if not rows:
        return ""
    return (
        "<h2>Calibration</h2><p>Does a score of 0.8 come true 80% of the time? The scores are put "
        "into ten bins of width 0.1; the expected calibration error (ECE) is the mean distance, "
        "over all scores, between their bin's mean score and the fraction of it that is right "
        "(0: calibrated). Entity scores: each predicted entity, right or wrong. Category scores: "
        "the top label's score of each text (exclusive), or every label's score against its gold "
        "yes/no (multi-label).</p>"
        + _table(["scores", "ECE", "scores counted"], rows)
        + _img(plots, "reliability.png", "fraction right against the score, per bin")
    )


def _intervals_section(metrics: Metrics) -> str:
    """Each overall figure with its bootstrap interval (scripts.evaluate --bootstrap N)."""
    drawn = metrics.get("bootstrap")
    if not drawn:
        return ""
    rows = []
    for task, title in (("ents", "entities"), ("textcat", "categories")):
        section = metrics.get(task)
        for key, interval in (drawn.get(task) or {}).items():
            value = lookup(section, key) if section else None
            shown = "n/a" if interval is None else f"{interval[0]:.3f} to {interval[1]:.3f}"
            rows.append((title, key, format_score(value), shown))
    return (
        f"<h2>How sure are these figures?</h2><p>{100 * drawn['level']:.0f}% intervals from "
        f"{drawn['n']} bootstrap draws of the test documents (drawn with replacement, seed "
        f"{drawn['seed']}): another test set of the same size and kind would most likely score "
        "within them. Two runs whose intervals overlap may still differ: python -m "
        "scripts.compare A B --bootstrap 1000 tests the difference on the same documents.</p>"
        + _table(["task", "figure", "score", "interval"], rows, left=2)
    )


def _calibrated_scores(
    metrics: Metrics,
) -> List[Tuple[str, List[ReliabilityBin], Optional[float], int]]:
    """(name, reliability bins, ECE, number of scores) of the entity and category scores."""
    found = []
    confidence = (metrics.get("ents") or {}).get("confidence")
    textcat = metrics.get("textcat")
    for name, section in (("entity scores", confidence), ("category scores", textcat)):
        bins = (section or {}).get("reliability") or []
        n = sum(b["n"] for b in bins)
        if n:
            found.append((name, bins, (section or {}).get("ece"), n))
    return found


def _legend() -> str:
    return (
        '<p class="legend">'
        f'<mark style="background:{GOLD_COLOURS["correct"]}">gold</mark>'
        f'<mark style="background:{GOLD_COLOURS["error"]}">gold, not matched</mark>'
        f'<mark style="background:{PRED_COLOURS["correct"]}">predicted</mark>'
        f'<mark style="background:{PRED_COLOURS["error"]}">predicted, not matched</mark></p>'
    )


def _ent_example(doc: EntErrorDoc, *, context: int = 200) -> str:
    text = doc["text"]
    wrong = [e for e in doc["gold"] + doc["pred"] if e["kind"] != "correct"]
    start = max(0, min(e["start_char"] for e in wrong) - context)
    end = min(len(text), max(e["end_char"] for e in wrong) + context)
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    while end < len(text) and not text[end].isspace():
        end += 1
    rows = [
        _ent_row("gold", doc["gold"], text, start, end),
        _ent_row("pred", doc["pred"], text, start, end),
    ]
    n = doc["n_errors"]
    more = f'<span class="note">{n} error{"s" if n != 1 else ""}</span>'
    return f'<div class="example">{"".join(rows)}{more}</div>'


def _ent_row(side: str, ents: List[EntMatch], text: str, start: int, end: int) -> str:
    colours = GOLD_COLOURS if side == "gold" else PRED_COLOURS
    offset = start - (1 if start > 0 else 0)  # the leading "…" takes one character
    spans, palette = [], {}
    for e in ents:
        if e["start_char"] < start or e["end_char"] > end:
            continue
        note = KIND_NOTES[side].get(e["kind"], "")
        other = e.get("pred_label") if side == "gold" else e.get("gold_label")
        label = e["label"] + (" · " + note.format(other=other) if note else "")
        label = html.escape(label)  # displaCy puts labels into the markup as they are
        palette[label] = colours["error" if note else "correct"]
        spans.append(
            {"start": e["start_char"] - offset, "end": e["end_char"] - offset, "label": label}
        )
    snippet = ("…" if start > 0 else "") + text[start:end] + ("…" if end < len(text) else "")
    markup = displacy.render(
        {"text": snippet, "ents": sorted(spans, key=lambda s: s["start"]), "title": None},
        style="ent",
        manual=True,
        page=False,
        jupyter=False,
        options={"colors": palette},
    )
    tag = "gold" if side == "gold" else "predicted"
    return f'<div class="row"><span class="tag">{tag}</span>{markup}</div>'


def _textcat_section(
    tc: CatScores, errors: List[CatError], plots: Dict[str, bytes], cap: int
) -> str:
    multi = tc["mode"] == "multilabel"
    mode = (
        "multi-label: each label is predicted when its score reaches the model's threshold"
        if multi
        else "exclusive: the label with the highest score is the prediction"
    )
    reasons = {
        "no_annotation": "no categories",
        "unknown_label": "only labels the model does not know",
        "not_one_label": "not exactly one positive label",
    }
    skipped = ", ".join(f"{reasons[k]}: {v}" for k, v in tc["skipped"].items() if v) or "none"
    header = ["label", "precision", "recall", "F", "ROC AUC", "support", "docs"]
    rows = []
    for label, v in tc["per_label"].items():
        row: List[Any] = [
            label,
            format_score(v["p"]),
            format_score(v["r"]),
            format_score(v["f"]),
            format_score(v["auc"]),
            v["support"],
            v["n_docs"],
        ]
        if tc["thresholds"] is not None:
            t = tc["thresholds"][label]
            row += [format_score(t["model"]), format_score(t["best"]), format_score(t["f_at_best"])]
        rows.append(row)
    if multi:
        header += ["threshold", "best threshold", "F at best"]
    support = sum(v["support"] for v in tc["per_label"].values())
    for name, scores in _averages(tc, micro=(tc["micro_p"], tc["micro_r"], tc["micro_f"])):
        auc = format_score(tc["macro_auc"]) if "macro" in name[0] else ""
        rows.append([name, *scores, auc, support, ""] + [""] * (len(header) - 7))
    summary = [
        (
            format_score(tc["accuracy"]),
            format_score(tc["macro_f"]),
            format_score(tc["micro_f"]),
            format_score(tc["macro_auc"]),
        )
    ]
    parts = [
        f"<h2>Text classification</h2><p>Mode: {mode}.</p>",
        _counted(tc, skipped),
        _unknown(tc, "documents where positive"),
        _table(["accuracy", "macro F", "micro F", "macro ROC AUC"], summary, left=0),
        _table(header, rows),
        _img(plots, "textcat_per_label.png", "textcat scores per label"),
    ]
    if tc.get("confusion"):
        parts += [
            "<h3>Confusion matrix (rows: gold, columns: predicted)</h3>",
            _confusion_table(tc["confusion"]),
            _img(plots, "textcat_confusion.png", "confusion matrix"),
        ]
    if multi:
        parts += [
            "<h3>F by threshold</h3><p class=note>Scored with the model's threshold; the best one "
            "on this data is a hint for tuning, not used in the scores.</p>",
            _img(plots, "textcat_thresholds.png", "F by threshold per label"),
        ]
    parts.append(_misclassified(errors, cap, multi))
    return "".join(parts)


def _averages(
    section: EntScores | CatScores,
    *,
    micro: Tuple[Optional[float], ...],
    micro_name: str = "micro average",
) -> List[Tuple[Tuple[str], List[str]]]:
    """The rows under a per-label table: micro, macro and support-weighted precision, recall, F."""
    figures = {
        micro_name: micro,
        "macro average": (section["macro_p"], section["macro_r"], section["macro_f"]),
        "weighted average": (section["weighted_p"], section["weighted_r"], section["weighted_f"]),
    }
    return [
        ((f"<b>{_esc(name)}</b>",), [format_score(v) for v in values])
        for name, values in figures.items()
    ]


def _confusion_table(confusion: Confusion) -> str:
    labels, matrix = confusion["labels"], confusion["matrix"]
    rows = []
    for i, (label, counts) in enumerate(zip(labels, matrix)):
        total = sum(counts) or 1
        cells = []
        for j, n in enumerate(counts):
            alpha = round(0.85 * n / total, 3)
            rgb = "84,162,75" if i == j else "228,87,86"
            cells.append(
                (
                    f'<div title="{n / total:.0%} of gold {_esc(label)}" '
                    f'style="background:rgba({rgb},{alpha});'
                    f'margin:-.25em -.6em;padding:.25em .6em">{n}</div>',
                )
            )
        rows.append([label] + cells)
    return _table(["gold \\ predicted"] + list(labels), rows)


def _misclassified(errors: List[CatError], cap: int, multi: bool) -> str:
    shown = errors[:cap]
    rows = []
    for e in shown:
        top = sorted(e["scores"].items(), key=lambda kv: -kv[1])[:5]
        scores = ", ".join(f"{k} {v:.3f}" for k, v in top)
        text = e["text"] if len(e["text"]) <= 400 else e["text"][:400] + "…"
        rows.append(
            (
                (f'<div class="text">{_esc(text)}</div>',),
                ", ".join(e["gold"]) or "none",
                ", ".join(e["pred"]) or "none",
                scores,
            )
        )
    order = "furthest from the threshold first" if multi else "most confident first"
    if not errors:
        return "<h3>Misclassified texts</h3><p>None.</p>"
    return f"<h3>Misclassified texts ({len(shown)} of {len(errors)}, {order})</h3>" + _table(
        ["text", "gold", "predicted", "top scores"], rows, left=4
    )


def _curves_section(points: List[CurvePoint], plots: Dict[str, bytes]) -> str:
    best = best_point(points)
    last = points[-1]
    line = (
        f"{len(points)} evaluations on the dev set, the last at step {last['step']} "
        f"(epoch {last['epoch']}, {last.get('seconds', 0):.0f} s into training)"
    )
    if best is not None:
        line += f"; best dev score {format_score(best['score'])} at step {best['step']}"
    return (
        "<h2>Training curves</h2><p>Losses (per component, the mean per step since the previous "
        "evaluation) and dev scores against the training step, from the train step's curves "
        f"file. {_esc(line)}.</p>"
        + _img(plots, "training_curves.png", "training losses and dev scores by step")
    )


def _explained(
    errors: List[CatError], explanations: Sequence[Explanation], missing: Optional[str]
) -> str:
    """The misclassified texts with their words highlighted for the predicted and gold labels."""
    if not errors:
        return ""
    if missing:
        return f'<h3>Why: words behind the errors</h3><p class="note">{_esc(missing)}.</p>'
    if not explanations:
        return ""
    parts = [
        f"<h3>Why: words behind the errors (the first {len(explanations)} misclassified texts)"
        "</h3><p class=note>The weight of each word for the predicted and the gold label (LIME: "
        "how much the word moves that label's score where the text stands; python -m "
        "scripts.explain explains any text, --method shap for SHAP values)."
        f"</p>{legend_html()}"
    ]
    for error, explanation in zip(errors, explanations):
        notes = {
            label: " and ".join(
                side
                for side, labels in (("predicted", error["pred"]), ("gold", error["gold"]))
                if label in labels
            )
            for label in explanation["labels"]
        }
        parts.append(f'<div class="example why">{explanation_html(explanation, notes=notes)}</div>')
    return "".join(parts)


# ---------------------------------------------------------------- PNG plots


def make_plots(*, metrics: Metrics, details: Details) -> Dict[str, bytes]:
    """PNG bytes by file name (a subset of PLOT_NAMES, depending on the tasks)."""
    plots = {}
    if metrics.get("ents") and metrics["ents"]["per_label"]:
        plots["ents_per_label.png"] = plot_per_label(
            per_label=metrics["ents"]["per_label"], title="Entities"
        )
    confidence = (metrics.get("ents") or {}).get("confidence")
    if confidence:
        plots["ents_confidence.png"] = plot_min_score(confidence=confidence)
    calibrated = _calibrated_scores(metrics)
    if calibrated:
        plots["reliability.png"] = plot_reliability(
            series=[(name, bins, ece) for name, bins, ece, _ in calibrated]
        )
    tc = metrics.get("textcat")
    if tc and tc["per_label"]:
        plots["textcat_per_label.png"] = plot_per_label(
            per_label=tc["per_label"], title="Text classification"
        )
        if tc.get("confusion"):
            plots["textcat_confusion.png"] = plot_confusion(**tc["confusion"])
        curves = details.get("threshold_curves")
        if curves and tc["thresholds"] is not None:
            plots["textcat_thresholds.png"] = plot_thresholds(
                curves=curves, thresholds=tc["thresholds"]
            )
    return plots


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    return buffer.getvalue()


def _height(n: int) -> float:
    return min(40.0, max(2.5, 0.45 * n + 1.2))


def plot_per_label(
    *, per_label: Dict[str, EntLabelScores] | Dict[str, CatLabelScores], title: str
) -> bytes:
    """Horizontal bars of precision, recall and F per label."""
    labels = list(per_label)[::-1]
    fig = Figure(figsize=(7, _height(len(labels))))
    ax = fig.subplots()
    width = 0.27
    for k, (key, name) in enumerate((("p", "precision"), ("r", "recall"), ("f", "F"))):
        values = [per_label[label][key] or 0.0 for label in labels]
        ax.barh(
            [i + (1 - k) * width for i in range(len(labels))],
            values,
            height=width,
            color=BAR_COLOURS[k],
            label=name,
        )
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlim(0, 1)
    ax.set_title(f"{title}: scores per label")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def plot_confusion(*, labels: Sequence[str], matrix: Sequence[Sequence[int]]) -> bytes:
    """Heatmap of the confusion matrix, coloured by the share of each gold label, with the
    counts."""
    n = len(labels)
    shares = [[c / (sum(row) or 1) for c in row] for row in matrix]
    size = min(30.0, max(3.5, 0.6 * n + 2))
    fig = Figure(figsize=(size + 1, size))
    ax = fig.subplots()
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            ax.text(
                j,
                i,
                str(matrix[i][j]),
                ha="center",
                va="center",
                color="white" if shares[i][j] > 0.5 else "black",
                fontsize="small",
            )
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title("Confusion matrix (colour: share of the gold label)")
    fig.colorbar(image, ax=ax, fraction=0.046)
    return _png(fig)


def plot_training_curves(*, points: List[CurvePoint]) -> bytes:
    """Losses per component (top: mean per step since the previous evaluation, log scale) and dev
    scores (bottom) against the step, the best dev score marked with a dotted line."""
    steps = [p["step"] for p in points]
    fig = Figure(figsize=(8, 6.5))
    losses_ax, scores_ax = fig.subplots(2, 1, sharex=True)
    # spaCy sums each loss since the previous evaluation: divide by the steps in between
    spans = [max(1, step - before) for step, before in zip(steps, [-1, *steps[:-1]])]
    components = sorted({name for p in points for name in p["losses"]})
    for name in components:
        values = [p["losses"].get(name) for p in points]
        means = [v / n if v is not None else float("nan") for v, n in zip(values, spans)]
        losses_ax.plot(steps, means, marker=".", label=name)
    if any(v > 0 for p in points for v in p["losses"].values() if v is not None):
        # losses span orders of magnitude between components; zeros are left out
        losses_ax.set_yscale("log", nonpositive="mask")
    losses_ax.set_ylabel("loss per step")
    losses_ax.set_title("Training losses and dev scores by step")
    scored = [p for p in points if p.get("score") is not None]
    if scored:
        scores_ax.plot(
            [p["step"] for p in scored],
            [p["score"] for p in scored],
            color="black",
            linewidth=2,
            label="score (weighted)",
        )
        best_step = best_point(points)["step"]  # type: ignore[index]
        for ax in (losses_ax, scores_ax):
            ax.axvline(best_step, color="grey", linestyle=":")
    for key in plotted_scores(points):
        pairs = [(p["step"], p["scores"][key]) for p in points if p["scores"].get(key) is not None]
        scores_ax.plot([s for s, _ in pairs], [v for _, v in pairs], marker=".", label=key)
    scores_ax.set_ylim(0, 1.02)
    scores_ax.set_xlabel("step")
    scores_ax.set_ylabel("dev score")
    for ax in (losses_ax, scores_ax):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    return _png(fig)


def plot_thresholds(
    *, curves: Dict[str, List[Tuple[float, float]]], thresholds: Dict[str, ThresholdScores]
) -> bytes:
    """F against the decision threshold per label, the model's threshold as a dashed line."""
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    for label, curve in curves.items():
        ax.plot([t for t, _ in curve], [f for _, f in curve], marker=".", label=label)
    model = next(iter(thresholds.values()))["model"] if thresholds else None
    if model is not None:
        ax.axvline(model, color="grey", linestyle="--", label="model threshold")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("threshold")
    ax.set_ylabel("F")
    ax.set_title("F by threshold per label")
    ax.legend(
        loc="upper left",
        bbox_to_anchor=(1.01, 1),
        fontsize="x-small",
        ncol=2 if len(curves) > 12 else 1,
    )
    ax.grid(alpha=0.3)
    return _png(fig)


def plot_min_score(*, confidence: EntConfidence) -> bytes:
    """Entity precision, recall and F against the score threshold (--min-score)."""
    rows = confidence["by_threshold"]
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    thresholds = [row["threshold"] for row in rows]
    for k, (key, name) in enumerate((("p", "precision"), ("r", "recall"), ("f", "F"))):
        values = [row[key] or 0.0 for row in rows]
        ax.plot(thresholds, values, marker=".", color=BAR_COLOURS[k], label=name)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("--min-score (entities scored below it are left out)")
    ax.set_ylabel("score")
    ax.set_title(f"Entities by score threshold (score AUC {format_score(confidence['auc'])})")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    ax.grid(alpha=0.3)
    return _png(fig)


def plot_reliability(series: Sequence[Tuple[str, List[ReliabilityBin], Optional[float]]]) -> bytes:
    """Fraction right against the mean score of each bin, one line per kind of score, the
    diagonal (calibrated) dashed; the bars below count the scores in each bin."""
    fig = Figure(figsize=(7, 5.5))
    ax, counts = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="calibrated")
    width = 0.1 / max(1, len(series))
    for k, (name, bins, ece) in enumerate(series):
        filled = [b for b in bins if b["n"]]
        ax.plot(
            [b["score"] for b in filled],
            [b["right"] for b in filled],
            marker="o",
            color=BAR_COLOURS[k % len(BAR_COLOURS)],
            label=f"{name} (ECE {format_score(ece)})",
        )
        counts.bar(
            [b["lower"] + width * (k + 0.5) for b in bins],
            [b["n"] for b in bins],
            width=width,
            color=BAR_COLOURS[k % len(BAR_COLOURS)],
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("fraction right")
    ax.set_title("Reliability: fraction right by score (10 bins)")
    ax.legend(loc="upper left", fontsize="small")
    ax.grid(alpha=0.3)
    counts.set_xlabel("score")
    counts.set_ylabel("scores")
    counts.grid(alpha=0.3)
    return _png(fig)
