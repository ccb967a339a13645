"""The packaged pipeline's meta: test scores in spaCy's keys and a description a user can read.

build_meta(model_meta=meta, metrics=metrics, name="job_postings", version="0.0.1",
           base_model=base_model, components=["ner", "textcat"])
"""

from __future__ import annotations

from typing import Any

from scripts.common.base_model import BaseModel

LICENSE = "MIT"
SCORES = (("ents", "f", "entity F"), ("textcat", "macro_f", "textcat macro F"))


def performance_from_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """Test-split scores in the keys spaCy's meta and model README use (ents_f, cats_macro_f...)."""
    performance: dict[str, Any] = {}
    ents = metrics.get("ents")
    if ents:
        performance.update({"ents_p": ents["p"], "ents_r": ents["r"], "ents_f": ents["f"]})
        performance["ents_per_type"] = {
            label: {"p": s["p"], "r": s["r"], "f": s["f"]} for label, s in ents["per_label"].items()
        }
        if ents.get("confidence"):  # how well entity_confidence's scores tell right from wrong
            performance["ents_confidence_auc"] = ents["confidence"]["auc"]
    cats = metrics.get("textcat")
    if cats:
        performance.update(
            {
                "cats_score": cats["macro_f"],
                "cats_macro_f": cats["macro_f"],
                "cats_micro_f": cats["micro_f"],
                "cats_macro_auc": cats.get("macro_auc"),
                "cats_f_per_type": {
                    label: {"p": s["p"], "r": s["r"], "f": s["f"]}
                    for label, s in cats["per_label"].items()
                },
            }
        )
        if "accuracy" in cats:
            performance["cats_accuracy"] = cats["accuracy"]
    return performance


def score(value: Any) -> str:
    """A score for humans: 0.853, or n/a where the test split gave nothing to compute it on."""
    return "n/a" if value is None else f"{value:.3f}"


def describe(metrics: dict[str, Any], *, base_model: str, components: list[str]) -> str:
    """One paragraph for the package meta: what the pipeline does and how well, on which data."""
    parts = [f"Transformer pipeline ({', '.join(components)}) fine-tuned from {base_model}."]
    if metrics.get("ents"):
        ents = metrics["ents"]
        parts.append(
            f"Entities on the held-out test split: P {score(ents['p'])}, R {score(ents['r'])}, "
            f"F {score(ents['f'])} ({ents['n_docs']} docs)."
        )
    if metrics.get("textcat"):
        cats = metrics["textcat"]
        parts.append(
            f"Categories ({cats['mode']}) on the held-out test split: "
            f"accuracy {score(cats.get('accuracy'))}, "
            f"macro F {score(cats['macro_f'])} ({cats['n_docs']} docs)."
        )
        threshold = next(iter((cats.get("thresholds") or {}).values()), {}).get("model")
        if threshold is not None:
            parts.append(
                f"A label counts as predicted at a score of {threshold:.2f} or more (doc.cats), "
                f"the threshold with the best macro F on the dev set."
            )
    return " ".join(parts)


def fast_ner_description(*, spacy_version: str) -> str:
    """What a wheel with the fast_ner component tells its user, and the risk it carries."""
    return (
        "Its entity recognizer is fast_ner, shipped as code in the package: spaCy's own, with its "
        "greedy decoding run holding the GIL. It relies on spaCy internals and was checked with "
        f"spaCy {spacy_version}."
    )


def build_meta(
    *,
    model_meta: dict,
    metrics: dict,
    name: str,
    version: str,
    base_model: BaseModel,
    components: list[str],
) -> dict:
    """The trained pipeline's meta with the package name, version, license, scores, description."""
    meta = dict(model_meta)
    meta.update(
        name=name,
        version=version,
        license=LICENSE,
        description=describe(metrics, base_model=base_model.name, components=components),
        performance=performance_from_metrics(metrics),
    )
    if base_model.source != "local":
        meta["sources"] = [
            {"name": base_model.name, "url": f"https://huggingface.co/{base_model.name}"}
        ]
    return meta
