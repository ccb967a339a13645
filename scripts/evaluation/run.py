"""Run a trained pipeline on gold data and write what it scored: metrics.json, report.html and
plots/*.png in one folder (the code behind scripts/evaluate.py).

    evaluate_model(model="training/model-best", data_path=Path("corpus/test.spacy"),
                   output_dir=Path("training"))

The layout of metrics.json is documented at the top of scripts/scoring/metrics.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from spacy.language import Language
from spacy.tokens import Doc, DocBin

from scripts.common.device import activate, resolve_device
from scripts.common.errors import UserError, info, one_line
from scripts.common.files import sha256_of, write_bytes_atomic
from scripts.evaluation.explain import Explanation, explain_texts
from scripts.evaluation.report import PLOT_NAMES, Report, render_report
from scripts.scoring.bootstrap import PREDICTIONS, DocUnits, intervals
from scripts.scoring.curves import CurvePoint, from_same_run, read_curves
from scripts.scoring.metrics import (
    CatError,
    DataInfo,
    Metrics,
    ModelInfo,
    Tasks,
    TasksInfo,
    evaluate_docs,
    format_score,
    has_cat_annotation,
    has_ent_annotation,
    words_doc,
)
from scripts.scoring.pipeline import (
    Components,
    cat_decision_rule,
    find_components,
    labels_of,
    load_pipeline,
    pipeline_name,
)

TRANSFORMER_FACTORIES = ("transformer", "curated_transformer")


def evaluate_model(
    *,
    model: str,
    data_path: Path,
    output_dir: Path,
    gold_preproc: bool = False,
    batch_size: int = 64,
    gpu_id: str = "-1",
    max_examples: int = 50,
    curves_path: Optional[Path] = None,
    explain: int = 10,
    explain_max_evals: int = 100,
    bootstrap: int = 0,
    seed: int = 0,
) -> Metrics:
    """Run MODEL over DATA_PATH, score it, write metrics.json, report.html and plots/ to output_dir
    and return the metrics; the report explains the first `explain` misclassified texts
    (scripts.evaluation.explain, up to explain_max_evals texts scored each). Raises UserError for
    bad input; gpu_id is 'auto', -1 or a GPU index; curves_path: the train step's curves.jsonl,
    drawn as plots/training_curves.png and in the report; bootstrap: draws of the test documents
    for 95% intervals of the overall figures (scripts/scoring/bootstrap.py, seeded with seed;
    0: none)."""
    if output_dir.exists() and not output_dir.is_dir():
        raise UserError(
            f"--output {output_dir} is a file; pass a folder for metrics.json, report.html and "
            "plots/"
        )
    curves = read_curves(path=curves_path) if curves_path is not None else None
    device = resolve_device(gpu_id)
    info(f"Evaluating on {device.description}")
    activate(device)
    nlp = load_pipeline(model, entity_scores=True)
    tasks, components = find_tasks(nlp=nlp, model=model)
    golds = read_docs(data_path=data_path, nlp=nlp)
    check_annotation(golds=golds, tasks=tasks, components=components, data_path=data_path)
    preds = predict(
        nlp=nlp, golds=golds, tasks=tasks, gold_preproc=gold_preproc, batch_size=batch_size
    )
    evaluation = evaluate_docs(
        golds=golds, preds=preds, tasks=tasks, tokenization="gold" if gold_preproc else "model"
    )
    scores = evaluation.metrics
    metrics = Metrics(
        format=scores["format"],
        model=describe_model(nlp=nlp, model=model, components=components, tasks=tasks),
        data=DataInfo(
            path=str(data_path),
            sha256=sha256_of(data_path),
            n_docs=len(golds),
            gold_preproc=gold_preproc,
        ),
        warnings=find_warnings(metrics=scores, data_path=data_path)
        + curve_warnings(curves=curves, curves_path=curves_path, nlp=nlp),
        ents=scores["ents"],
        textcat=scores["textcat"],
    )
    if bootstrap:
        info(f"Bootstrap: {bootstrap} draws of the {len(golds)} test documents")
        tokenization = "gold" if gold_preproc else "model"
        units = DocUnits.of(golds=golds, preds=preds, tasks=tasks, tokenization=tokenization)
        metrics["bootstrap"] = intervals(units, n=bootstrap, seed=seed)
    explanations, missing = explain_errors(
        nlp=nlp,
        errors=evaluation.details.get("cat_errors", [])[:explain],
        max_evals=explain_max_evals,
    )
    report = render_report(
        metrics=metrics,
        details=evaluation.details,
        max_examples=max_examples,
        curves=curves,
        explanations=explanations,
        explanations_missing=missing,
    )
    write_outputs(output_dir=output_dir, metrics=metrics, report=report, preds=preds)
    return metrics


def explain_errors(
    *, nlp: Language, errors: Sequence[CatError], max_evals: int
) -> Tuple[List[Explanation], Optional[str]]:
    """Explanations of the predicted and the gold labels of misclassified texts, in order; none
    and the reason when shap or lime is not installed."""
    if not errors:
        return [], None
    try:  # optional: the report does without explanations
        import lime  # noqa: F401
        import shap  # noqa: F401
    except ImportError as err:
        return [], f"install {err.name} (pip install -r requirements/explain.txt) to see why"
    info(f"Explaining {len(errors)} misclassified texts")
    known = set(nlp.get_pipe(find_components(nlp).cats[-1]).labels)
    explanations = []
    for error in errors:
        labels = [label for label in dict.fromkeys(error["pred"] + error["gold"]) if label in known]
        explanations += explain_texts(nlp, [error["text"]], labels=labels, max_evals=max_evals)
    return explanations, None


def find_tasks(*, nlp: Language, model: str) -> Tuple[Tasks, Components]:
    """What the model predicts: the components that set doc.ents, and the one that sets
    doc.cats."""
    components = find_components(nlp)
    ents, cats = components.ents, components.cats
    if not ents and not cats:
        raise UserError(
            f"the model '{model}' predicts neither entities nor categories (pipeline: "
            f"{', '.join(nlp.pipe_names) or 'empty'}); evaluate a model with ner, textcat or "
            "textcat_multilabel"
        )
    if len(cats) > 1:
        raise UserError(
            f"the model '{model}' has {len(cats)} components that set categories "
            f"({', '.join(cats)}); this evaluation scores one: disable the others "
            "(nlp.disable_pipe) and save the model again"
        )
    tasks = Tasks(ent_labels=labels_of(nlp, ents) if ents else None)
    if cats:
        pipe = nlp.get_pipe(cats[0])
        exclusive, threshold = cat_decision_rule(pipe, name=cats[0])
        tasks = Tasks(
            ent_labels=tasks.ent_labels,
            cat_labels=tuple(pipe.labels),
            exclusive=exclusive,
            threshold=threshold,
        )
    return tasks, components


def read_docs(*, data_path: Path, nlp: Language) -> List[Doc]:
    if not data_path.is_file():
        raise UserError(
            f"data not found: {data_path} is not a file; convert your annotations first "
            "(python -m spacy project run convert) and pass e.g. corpus/test.spacy"
        )
    try:
        docs = list(DocBin().from_disk(data_path).get_docs(nlp.vocab))
    except Exception as err:  # msgpack/zlib/key errors all mean the same: not a DocBin
        raise UserError(
            f"cannot read {data_path} as a .spacy DocBin ({one_line(err)}); "
            "pass a file written by scripts.convert or spacy convert"
        ) from None
    if not docs:
        raise UserError(f"{data_path} holds no documents; convert annotated data into it first")
    return docs


def check_annotation(
    *, golds: Sequence[Doc], tasks: Tasks, components: Components, data_path: Path
) -> None:
    """Fail when no document is annotated for any of the model's tasks."""
    found = []
    if tasks.ent_labels is not None:
        found.append((components.ents, sum(map(has_ent_annotation, golds)), "entity annotation"))
    if tasks.cat_labels is not None:
        found.append((components.cats, sum(map(has_cat_annotation, golds)), "categories"))
    if not any(n for _, n, _ in found):
        counts = "; ".join(
            f"{', '.join(names)}: 0 of {len(golds)} docs have {what}" for names, _, what in found
        )
        raise UserError(
            f"{data_path} has no annotation for any of the model's components ({counts}); "
            "evaluate on data annotated for this model, e.g. the corpus/test.spacy it was trained "
            "with"
        )


def predict(
    *, nlp: Language, golds: Sequence[Doc], tasks: Tasks, gold_preproc: bool, batch_size: int
) -> List[Doc]:
    """Run the pipeline on the raw text, or on the gold words with --gold-preproc. Docs the model's
    tasks skip anyway are not run: they get an empty Doc."""

    def wanted(doc: Doc) -> bool:
        return bool(
            (tasks.ent_labels is not None and has_ent_annotation(doc))
            or (tasks.cat_labels is not None and has_cat_annotation(doc))
        )

    todo = [i for i, doc in enumerate(golds) if wanted(doc)]
    # fresh Docs on the gold words: the gold annotation must not leak into the prediction
    inputs = [words_doc(golds[i]) if gold_preproc else golds[i].text for i in todo]
    preds = [words_doc(doc) for doc in golds]
    for i, doc in zip(todo, nlp.pipe(inputs, batch_size=batch_size)):
        preds[i] = doc
    return preds


def describe_model(*, nlp: Language, model: str, components: Components, tasks: Tasks) -> ModelInfo:
    meta = nlp.meta
    return ModelInfo(
        name=pipeline_name(nlp),
        version=meta.get("version"),
        path=str(Path(model).resolve()) if Path(model).exists() else model,
        spacy_version=meta.get("spacy_version"),
        pipeline=list(nlp.pipe_names),
        transformer=base_transformer(config=nlp.config),
        ents_components=list(components.ents),
        textcat_component=components.cats[0] if components.cats else None,
        tasks=tasks_info(tasks),
    )


def tasks_info(tasks: Tasks) -> TasksInfo:
    return TasksInfo(
        ent_labels=None if tasks.ent_labels is None else list(tasks.ent_labels),
        cat_labels=None if tasks.cat_labels is None else list(tasks.cat_labels),
        exclusive=tasks.exclusive,
        threshold=tasks.threshold,
    )


def base_transformer(*, config: Mapping[str, Any]) -> Optional[str]:
    """components.<transformer>.model.name from the model's config, or None without a
    transformer."""
    for component in config.get("components", {}).values():
        if component.get("factory") in TRANSFORMER_FACTORIES:
            return component.get("model", {}).get("name")
    return None


def find_warnings(*, metrics: Metrics, data_path: Path) -> List[str]:
    """One line per problem the user should know about; scoring went on without the offending
    items."""
    warnings = []
    ents, textcat = metrics["ents"], metrics["textcat"]
    unknown = [
        f"{task}: " + ", ".join(f"{label} ({n})" for label, n in labels.items())
        for task, labels in (
            ("ents", ents["unknown_labels"] if ents else {}),
            ("textcat", textcat["unknown_labels"] if textcat else {}),
        )
        if labels
    ]
    if unknown:
        warnings.append(
            f"labels in {data_path} that the model does not know, not scored: "
            f"{'; '.join(unknown)}; fix their names in the data or retrain the model with them"
        )
    for task, n_docs, what in (
        ("ents", ents["n_docs"] if ents else None, "entity annotation"),
        ("textcat", textcat["n_docs"] if textcat else None, "categories"),
    ):
        if n_docs == 0:
            warnings.append(
                f"no document in {data_path} has {what}, so the {task} scores are empty"
            )
    if textcat and textcat["skipped"]["not_one_label"]:
        warnings.append(
            f"{textcat['skipped']['not_one_label']} documents in {data_path} skipped for textcat: "
            "the model is exclusive but their gold categories do not have exactly one positive "
            "label"
        )
    return warnings


def curve_warnings(
    *, curves: Optional[List[CurvePoint]], curves_path: Optional[Path], nlp: Language
) -> List[str]:
    """A line when the curves are empty or come from another training run than the model's."""
    if curves is None:
        return []
    if not curves:
        return [f"{curves_path} holds no evaluation yet: no training curves to draw"]
    if not from_same_run(curves, nlp.meta.get("performance") or {}):
        return [
            f"the training curves in {curves_path} do not include the dev scores this model was "
            "saved with: they come from another training run (train again, or pass its own "
            "curves.jsonl)"
        ]
    return []


def write_outputs(
    *, output_dir: Path, metrics: Metrics, report: Report, preds: Sequence[Doc] = ()
) -> None:
    """Each file atomically; metrics.json last, so its presence means the whole run was written.
    preds: the predicted Docs, in the test split's order, as predictions.spacy (scripts.compare
    --bootstrap pairs two runs' predictions)."""
    try:
        (output_dir / "plots").mkdir(parents=True, exist_ok=True)
        for name in PLOT_NAMES:
            if name in report.plots:
                write_bytes_atomic(output_dir / "plots" / name, report.plots[name])
            else:  # a plot from an earlier run of another model would be stale
                (output_dir / "plots" / name).unlink(missing_ok=True)
        write_bytes_atomic(output_dir / "report.html", report.html.encode("utf8"))
        if preds:
            predictions = DocBin(store_user_data=True, docs=preds).to_bytes()
            write_bytes_atomic(output_dir / PREDICTIONS, predictions)
        text = json.dumps(metrics, indent=2, ensure_ascii=False) + "\n"
        write_bytes_atomic(output_dir / "metrics.json", text.encode("utf8"))
    except OSError as err:
        raise UserError(
            f"cannot write to {output_dir} ({err.strerror or err}); pass a writable "
            "folder with --output"
        ) from None


def summary(metrics: Metrics, output_dir: Path) -> List[str]:
    """The lines the command prints: key figures, documents counted, where the files went."""
    fmt = format_score
    lines = []
    if metrics["ents"]:
        e = metrics["ents"]
        lines.append(
            f"Entities: P {fmt(e['p'])}  R {fmt(e['r'])}  F {fmt(e['f'])}  on {e['n_docs']} docs "
            f"({e['n_skipped']} skipped: no entity annotation), {e['tokenization']} tokenization; "
            f"macro F {fmt(e['macro_f'])}  weighted F {fmt(e['weighted_f'])}"
        )
        if e.get("confidence"):
            c = e["confidence"]
            lines.append(
                f"Entity scores: AUC {fmt(c['auc'])} telling the {c['n_correct']} correct from "
                f"the {c['n_wrong']} wrong predicted entities, calibration error (ECE) "
                f"{fmt(c.get('ece'))} (plots/ents_confidence.png, plots/reliability.png)"
            )
    if metrics["textcat"]:
        t = metrics["textcat"]
        lines.append(
            f"Textcat ({t['mode']}): accuracy {fmt(t['accuracy'])}  macro F {fmt(t['macro_f'])}  "
            f"micro F {fmt(t['micro_f'])}  weighted F {fmt(t['weighted_f'])}  "
            f"macro AUC {fmt(t['macro_auc'])}  score ECE {fmt(t.get('ece'))}  on {t['n_docs']} "
            f"docs ({t['n_skipped']} skipped)"
        )
    if metrics.get("bootstrap"):
        lines.extend(interval_lines(metrics))
    lines.append(
        f"Wrote {output_dir / 'metrics.json'}, {output_dir / 'report.html'} and "
        f"{output_dir / 'plots'}/"
    )
    return lines


def interval_lines(metrics: Metrics) -> List[str]:
    """The headline figures with their bootstrap intervals, one line per task."""
    drawn = metrics["bootstrap"]
    lines = []
    for task, title, keys in (
        ("ents", "Entities", ("f", "macro_f")),
        ("textcat", "Textcat", ("accuracy", "macro_f")),
    ):
        section: Dict[str, Any] = dict(metrics.get(task) or {})
        ranges = drawn.get(task)
        if not section or not ranges:
            continue
        figures = [
            f"{key} {format_score(section[key])} [{low:.3f}, {high:.3f}]"
            for key in keys
            if ranges.get(key) is not None
            for low, high in [ranges[key]]
        ]
        lines.append(
            f"{title}, {100 * drawn['level']:.0f}% intervals ({drawn['n']} bootstrap draws of "
            f"the documents): {'  '.join(figures)}"
        )
    return lines
