"""The search's report: report.html (self-contained, the plots embedded), plots/*.png drawn by
Optuna's own matplotlib plots, and trials.json (every trial: state, dev score per evaluation,
values), written into the output folder.

    write_report(study, space=space, output_dir=Path("training/tune"))

The importance of each parameter is Optuna's fANOVA estimate over the complete trials: the share
of the dev score's variance each one explains (seeded, so a report is reproducible).
"""

from __future__ import annotations

import base64
import html
import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from scripts.common.errors import one_line
from scripts.common.files import write_bytes_atomic
from scripts.evaluation.report import CSP, CSS
from scripts.tuning.space import SearchSpace

PLOTS = {
    "optimization_history.png": "Dev score of each trial and the best so far",
    "intermediate_values.png": "Dev score at each evaluation (pruned trials stop early)",
    "param_importances.png": "Importance of each parameter (fANOVA)",
}


@dataclass(frozen=True)
class TuningReport:
    html: str
    plots: dict[str, bytes]
    trials: list[dict[str, Any]]


def write_report(study: Any, *, space: SearchSpace, output_dir: Path) -> None:
    report = render_report(study, space=space)
    for name, png in report.plots.items():
        write_bytes_atomic(output_dir / "plots" / name, png)
    for name in set(PLOTS) - set(report.plots):  # e.g. no importances yet: none from a past run
        (output_dir / "plots" / name).unlink(missing_ok=True)
    text = json.dumps(report.trials, indent=2, ensure_ascii=False) + "\n"
    write_bytes_atomic(output_dir / "trials.json", text.encode("utf8"))
    write_bytes_atomic(output_dir / "report.html", report.html.encode("utf8"))


def render_report(study: Any, *, space: SearchSpace) -> TuningReport:
    import optuna

    trials = [trial_record(t) for t in study.get_trials(deepcopy=False)]
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    importances, why_none = param_importances(study, evaluator)
    plots = make_plots(study, evaluator=evaluator, with_importances=bool(importances))
    complete = [t for t in trials if t["state"] == "COMPLETE"]
    best = max(complete, key=lambda t: t["score"]) if complete else None
    counts = {s: sum(t["state"] == s for t in trials) for s in ("COMPLETE", "PRUNED", "FAIL")}
    parts = [
        f"<h1>Hyperparameter search: {esc(study.study_name)}</h1>",
        table(
            ["", ""],
            [
                (
                    "Trials",
                    f"{counts['COMPLETE']} complete, {counts['PRUNED']} pruned, "
                    f"{counts['FAIL']} failed",
                ),
                (
                    "Best",
                    f"trial {best['number']}, dev score {best['score']:.4f}" if best else "none",
                ),
                ("Search space", str(space.path)),
                ("Sampler", "Optuna TPE"),
                (
                    "Pruner",
                    f"median; after {space.pruning.startup_trials} complete trials, from "
                    f"evaluation {space.pruning.min_evaluations}",
                ),
            ],
        ),
    ]
    if best:
        parts += [
            "<h2>Best values</h2>",
            table(
                ["parameter", "value", "sets"],
                [
                    (p.name, best["values"].get(p.name, ""), ", ".join(p.settings))
                    for p in space.parameters
                ],
            ),
        ]
    parts.append("<h2>Importance</h2>")
    if importances:
        parts += [
            "<p>The share of the dev score's variance over the complete trials that each "
            "parameter explains (fANOVA).</p>",
            table(["parameter", "importance"], [(k, f"{v:.3f}") for k, v in importances.items()]),
            img(plots, "param_importances.png"),
        ]
    else:
        parts.append(f'<p class="note">Not available yet: {esc(why_none)}.</p>')
    parts += [
        "<h2>History</h2>",
        img(plots, "optimization_history.png"),
        img(plots, "intermediate_values.png"),
        "<h2>Trials</h2>",
        table(
            ["trial", "state", "dev score", "evaluations", "seconds", *space_names(space)],
            [
                (
                    t["number"],
                    t["state"].lower(),
                    "" if t["score"] is None else f"{t['score']:.4f}",
                    len(t["dev_scores"]),
                    "" if t["seconds"] is None else f"{t['seconds']:.0f}",
                    *(shown(t["values"].get(name, "")) for name in space_names(space)),
                )
                for t in trials
            ],
        ),
    ]
    page = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f"<title>Hyperparameter search: {esc(study.study_name)}</title>"
        f"<style>{CSS}</style></head>\n<body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )
    return TuningReport(html=page, plots=plots, trials=trials)


def trial_record(trial: Any) -> dict[str, Any]:
    """One trial as trials.json has it."""
    seconds = trial.duration.total_seconds() if trial.duration is not None else None
    return {
        "number": trial.number,
        "state": trial.state.name,
        "score": trial.value,
        "dev_scores": {str(k): v for k, v in sorted(trial.intermediate_values.items())},
        "values": dict(trial.params),
        "seconds": seconds,
        **({"error": trial.user_attrs["error"]} if "error" in trial.user_attrs else {}),
    }


def param_importances(study: Any, evaluator: Any) -> tuple[dict[str, float], Optional[str]]:
    """The importances, or why there are none (too few complete trials, nothing varied)."""
    import optuna

    scores = {t.value for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))}
    if len(scores) < 2:
        return {}, "it needs complete trials with at least two different dev scores"
    try:
        return dict(optuna.importance.get_param_importances(study, evaluator=evaluator)), None
    except (ValueError, RuntimeError) as err:
        return {}, one_line(err)


def make_plots(study: Any, *, evaluator: Any, with_importances: bool) -> dict[str, bytes]:
    from optuna.visualization import matplotlib as plots

    draw: dict[str, Callable[[], Any]] = {
        "optimization_history.png": lambda: plots.plot_optimization_history(
            study, target_name="dev score"
        ),
        "intermediate_values.png": lambda: labelled(
            plots.plot_intermediate_values(study), x="evaluation", y="best dev score so far"
        ),
    }
    if with_importances:
        draw["param_importances.png"] = lambda: plots.plot_param_importances(
            study, evaluator=evaluator, target_name="dev score"
        )
    return {name: png_of(make) for name, make in draw.items()}


def labelled(axes: Any, *, x: str, y: str) -> Any:
    axes.set_xlabel(x)
    axes.set_ylabel(y)
    return axes


def png_of(make: Callable[[], Any]) -> bytes:
    """Draw with one of Optuna's matplotlib plots (marked experimental) and close its figure."""
    import optuna
    from matplotlib import pyplot

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        axes = make()
    figure = axes.figure
    figure.set_size_inches(8, 4.5)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    pyplot.close(figure)
    return buffer.getvalue()


def space_names(space: SearchSpace) -> list[str]:
    return [p.name for p in space.parameters]


def shown(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def esc(value: Any) -> str:
    return html.escape(str(value))


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th class=l>{esc(h)}</th>" for h in header) if any(header) else ""
    body = "".join(
        "<tr>" + "".join(f"<td class=l>{esc(shown(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def img(plots: dict[str, bytes], name: str) -> str:
    if name not in plots:
        return ""
    data = base64.b64encode(plots[name]).decode("ascii")
    return f'<p><img src="data:image/png;base64,{data}" alt="{esc(PLOTS[name])}"></p>'
