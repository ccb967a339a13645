"""Package the trained pipeline as a pip-installable wheel whose meta carries the test scores.

    package_pipeline(model_dir=Path("training/model-best"), output_dir=Path("packages"),
                     name="job_postings", version="0.0.1",
                     metrics_path=Path("training/metrics.json"), transformer="auto", lang="en")

The default wheel ships no code from this repository but the entity_confidence component (which
scores each entity): where the config names it, scripts/scoring/entity_confidence.py and
scripts/common/spacy_internals.py (the recognizer's action probabilities) go into the wheel as its
code, and the component is disabled in the wheel's config (`nlp.enable_pipe` turns it on).
Otherwise the config must name only components and functions that spaCy, spacy-transformers and
thinc register, or packaging stops and says which.

fast_ner: the packaged copy names the "fast_ner" factory instead of spaCy's "ner" (the same weights
and entities, its greedy decoding run holding the GIL) and ships scripts/common/spacy_internals.py,
which defines it, as the wheel's code. It relies on spaCy internals.

engine: FLOAT32 packages the trained pipeline as it is; INT8 and ONNX (scripts/packaging/engines.py)
build <lang>_<name>_int8 or <lang>_<name>_onnx from a converted copy, scored again on the test
split, shipping the engine's code and requirements.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Optional

import srsly
from spacy.util import load_config, registry

from scripts.common import spacy_internals
from scripts.common.base_model import resolve_base_model
from scripts.common.errors import UserError
from scripts.packaging.engines import FLOAT32, Engine, Splits
from scripts.packaging.meta import build_meta, fast_ner_description
from scripts.scoring import entity_confidence

# The packages whose registered functions a wheel's config may name without shipping code.
STOCK_PACKAGES = ("spacy", "spacy_transformers", "spacy_legacy", "thinc")


@dataclass
class Packaged:
    wheel: Path
    metrics: dict[str, Any]  # the test scores in its meta: metrics_path's, or int8/ONNX's own


def package_pipeline(
    *,
    model_dir: Path,
    output_dir: Path,
    name: str,
    version: str,
    metrics_path: Path,
    transformer: str,
    lang: str,
    fast_ner: bool = False,
    engine: Engine = FLOAT32,
    splits: Splits = Splits(),
) -> Packaged:
    """Stage the model with its final meta, build the wheel offline.
    fast_ner: name the fast_ner factory instead of spaCy's "ner" and ship the code that defines it.
    engine: FLOAT32, or a converted engine of scripts/packaging/engines.py (INT8, ONNX), which
    builds <lang>_<name>_<suffix> from the staged copy, scored on splits.test."""
    if not (model_dir / "config.cfg").is_file():
        raise UserError(
            f"{model_dir}: no trained pipeline here; "
            "run the train step first (spacy project run train)"
        )
    if not metrics_path.is_file():
        raise UserError(
            f"{metrics_path}: test metrics not found; "
            "run the evaluate step first (spacy project run evaluate)"
        )
    engine.check(splits)
    metrics = json.loads(metrics_path.read_text(encoding="utf8"))
    base_model = resolve_base_model(transformer, lang=lang, check_hub=False)
    name = engine.package_name(name)
    package_name = f"{lang}_{name}"
    output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output_dir) as tmp:
        staged = Path(tmp) / "pipeline"
        shutil.copytree(model_dir, staged)
        config = load_config(staged / "config.cfg", interpolate=False)
        # The weights are inside the package; record the public name, not a path on this machine.
        config["components"]["transformer"]["model"]["name"] = base_model.name
        code: list[ModuleType] = []
        if entity_confidence.ENTITY_CONFIDENCE in factories(config):
            code += [spacy_internals, entity_confidence]
            # Shipped disabled, as the train step saves it: nlp.pipe pays for the scores only
            # where they are asked for (nlp.enable_pipe("entity_confidence")).
            config["nlp"]["disabled"] = list(
                dict.fromkeys([*config["nlp"].get("disabled", []), *scorers(config)])
            )
        if fast_ner and use_fast_ner(config):
            code.append(spacy_internals)
        config.to_disk(staged / "config.cfg", interpolate=False)
        components = [c for c in config["nlp"]["pipeline"] if c != "transformer"]
        model_meta = srsly.read_json(staged / "meta.json")
        note = engine.build(staged, splits)
        code = list(dict.fromkeys([*code, *engine.code]))
        scores = engine.score(
            staged,
            splits,
            float_metrics=metrics,
            workdir=Path(tmp) / "evaluation",
            gold_preproc=bool(metrics.get("data", {}).get("gold_preproc")),
        )
        check_names_resolve(
            load_config(staged / "config.cfg", interpolate=False), shipped=code, model_dir=model_dir
        )
        meta = build_meta(
            model_meta=model_meta,
            metrics=scores,
            name=name,
            version=version,
            base_model=base_model,
            components=components,
        )
        meta["description"] = " ".join(
            part for part in (engine.describe(metrics, note), meta["description"]) if part
        )
        # spacy package adds what the config names; the engine's shipped code may need more.
        meta["requirements"] = [*(meta.get("requirements") or []), *engine.requirements]
        if spacy_internals in code and spacy_internals.FAST_NER in factories(config):
            meta["description"] += " " + fast_ner_description(spacy_version=spacy_version())
        srsly.write_json(staged / "meta.json", meta)
        built = Path(tmp) / "built"
        built.mkdir()
        paths = ",".join(str(module_file(module)) for module in code)
        run_or_stop(
            [sys.executable, "-m", "spacy", "package", str(staged), str(built)]
            + ["--build", "none", "--force"]
            + (["--code", paths] if paths else []),
            doing=f"packaging {model_dir} with spacy package",
        )
        package_dir = built / f"{package_name}-{version}"
        # Build without network: an isolated build would download setuptools.
        run_or_stop(
            [sys.executable, "-m", "build", "--wheel", "--no-isolation", str(package_dir)],
            doing=f"building the wheel in {package_dir.name}",
        )
        final_dir = output_dir / package_dir.name
        if final_dir.exists():
            shutil.rmtree(final_dir)
        shutil.move(str(package_dir), final_dir)
    wheels = sorted((final_dir / "dist").glob("*.whl"))
    return Packaged(wheel=wheels[-1], metrics=scores)


def run_or_stop(command: list[str], *, doing: str) -> None:
    """Run a command; where it fails, stop with its last line of output."""
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        lines = (result.stdout + "\n" + result.stderr).strip().splitlines() or ["no output"]
        raise UserError(f"{doing} failed ({lines[-1].strip()}); pip install -r requirements.txt")


def use_fast_ner(config: Any) -> bool:
    """Name the fast_ner factory instead of spaCy's "ner" in the config; say if there was one."""
    blocks = [
        block
        for block in config["components"].values()
        if block.get("factory") == spacy_internals.SPACY_NER
    ]
    for block in blocks:
        block["factory"] = spacy_internals.FAST_NER
    return bool(blocks)


def scorers(config: Any) -> list[str]:
    """The names of a pipeline config's entity_confidence components."""
    return [
        name
        for name, block in config["components"].items()
        if block.get("factory") == entity_confidence.ENTITY_CONFIDENCE
    ]


def factories(config: Any) -> list[str]:
    """The factory of each component of a pipeline config."""
    return [block["factory"] for block in config["components"].values() if "factory" in block]


def module_file(module: ModuleType) -> Path:
    """The source file of one of this project's modules, to ship as a wheel's code."""
    return Path(str(module.__file__))


def spacy_version() -> str:
    import spacy

    return spacy.__version__


def registered_names(config: Any) -> list[tuple[str, str]]:
    """(registry, name) for every factory and registered function that loading the pipeline
    resolves: those of the [nlp] and [components] sections."""
    found = [("factories", factory) for factory in factories(config)]

    def walk(block: Any) -> None:
        if isinstance(block, dict):
            for key, value in block.items():
                if key.startswith("@") and isinstance(value, str):
                    found.append((key[1:], value))
                walk(value)

    walk(config["nlp"])
    walk(config["components"])
    return found


def defined_in(registry_name: str, name: str) -> Optional[str]:
    """The module that defines a registered function, or None where nothing registers it here."""
    try:
        return registry.get(registry_name, name).__module__
    except Exception:  # catalogue's RegistryError, or spaCy's own for an unknown registry
        return None


def check_names_resolve(config: Any, *, shipped: list[ModuleType], model_dir: Path) -> None:
    """Stop where the packaged config names a function that neither spaCy, spacy-transformers and
    thinc nor a module shipped with it registers: the wheel would not load."""
    allowed = {module.__name__ for module in shipped}
    foreign = set()
    for registry_name, name in registered_names(config):
        module = defined_in(registry_name, name) or "?"
        if module.split(".")[0] not in STOCK_PACKAGES and module not in allowed:
            foreign.add(name)
    if foreign:
        raise UserError(
            f"{model_dir / 'config.cfg'}: names {', '.join(sorted(foreign))}, which only this "
            "project's code registers and the wheel does not ship; rerun the train step, which "
            "saves spaCy's own components"
        )
