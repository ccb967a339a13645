"""Train with `spacy train`, on the GPU when there is one, saying which device in one line.

    train(config_path=Path("training/config.cfg"), output=Path("training"), gpu_id="auto",
          mixed_precision=False, overrides={})

After training, each saved pipeline's config names spaCy's own text classifiers instead of this
project's training ones (scripts/training/textcat.py), so it loads with spaCy alone; then
multi-label classifiers get their decision threshold tuned on the dev set
(scripts/training/thresholds.py), the entity recognizer its entity_confidence component,
calibrated on the dev set and disabled by default (scripts/training/confidence.py), and both
pipelines the package name and version the wheel will have, before model-best and model-last
replace the previous ones.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, List, Optional

from thinc.api import Config

from scripts.common.device import activate, resolve_device
from scripts.common.errors import UserError, info
from scripts.common.files import replace_dir, write_bytes_atomic
from scripts.common.spacy_internals import parse_config_overrides

TRAINED_PIPELINES = ("model-best", "model-last")


def parse_bool(value: str, *, var: str) -> bool:
    """A true/false var as the project passes it, e.g. parse_bool("true", var="x") -> True."""
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no", ""):
        return False
    raise UserError(f"{var} '{value}' is not true or false", setting=var)


def parse_overrides(args: List[str]) -> dict[str, Any]:
    """spaCy-style config overrides, e.g. ["--training.max_epochs", "2"]."""
    return parse_config_overrides(args)


def check_package_name(*, name: Optional[str], version: Optional[str]) -> None:
    """Refuse, before training, a name or version the package step could not build: the name
    becomes the module <lang>_<name> (an identifier), the version a wheel's (PEP 440)."""
    from packaging.version import InvalidVersion, Version

    if name is not None and not (name.isidentifier() and name.isascii()):
        raise UserError(
            f"name '{name}' cannot name a Python package: use ASCII letters, digits and "
            "underscores, not starting with a digit, e.g. my_pipeline",
            setting="name",
        )
    if version is not None:
        try:
            Version(version)
        except InvalidVersion:
            raise UserError(
                f"version '{version}' is not a package version (PEP 440); e.g. 0.0.1",
                setting="version",
            ) from None


def train(
    *,
    config_path: Path,
    output: Path,
    gpu_id: str,
    mixed_precision: bool,
    overrides: dict,
    entity_confidence: bool = True,
    name: Optional[str] = None,
    version: Optional[str] = None,
) -> None:
    """Train into output/model-best and output/model-last, replacing them only on success;
    entity_confidence: add the component that scores each entity after "ner" (disabled); name
    and version: the package's (job_postings, 0.0.1), into both pipelines' meta (spaCy's own
    otherwise: pipeline, 0.0.0)."""
    from spacy.cli.train import train as spacy_train
    from spacy.util import load_config

    import scripts.training.registry  # noqa: F401  registers what the config names
    from scripts.training.confidence import add_confidence, calibrated
    from scripts.training.thresholds import tune_thresholds

    if not config_path.is_file():
        raise UserError(
            f"{config_path}: config not found; run the config step first (spacy project run config)"
        )
    check_package_name(name=name, version=version)
    device = resolve_device(gpu_id)
    if mixed_precision and device.gpu_id < 0:
        raise UserError(
            "mixed_precision true needs a GPU and the device is the CPU; "
            "set mixed_precision false, or gpu_id 0 on a GPU machine",
            setting="mixed_precision",
        )
    info(f"Training on {device.description}{', mixed precision' if mixed_precision else ''}")
    activate(device)
    overrides = {"components.transformer.model.mixed_precision": mixed_precision, **overrides}
    output.mkdir(parents=True, exist_ok=True)
    # Train into a scratch folder so a failed run leaves the previous models untouched.
    run_dir = Path(tempfile.mkdtemp(prefix=".run-", dir=output))
    try:
        spacy_train(config_path, run_dir, use_gpu=device.gpu_id, overrides=overrides)
        config = load_config(config_path, overrides=overrides, interpolate=True)
        dev_path = Path(config["paths"]["dev"])
        for pipeline in TRAINED_PIPELINES:
            use_stock_components(run_dir / pipeline)
        for pipeline in TRAINED_PIPELINES:
            for tuned in tune_thresholds(run_dir / pipeline, dev_path):
                info(
                    f"{pipeline}: {tuned.component} threshold {tuned.threshold:.2f} "
                    f"(was {tuned.previous:.2f}), dev macro F {tuned.macro_f:.3f} "
                    f"(was {tuned.macro_f_before:.3f}) on {tuned.n_docs} docs"
                )
        if entity_confidence and "ner" in config["nlp"]["pipeline"]:
            for pipeline in TRAINED_PIPELINES:
                added = add_confidence(
                    model_dir=run_dir / pipeline, output_dir=run_dir / pipeline, dev_path=dev_path
                )
                info(
                    f"{pipeline}: {added.name} after ner, disabled by default; {calibrated(added)}"
                )
        for pipeline in TRAINED_PIPELINES:
            set_package_name(run_dir / pipeline, name=name, version=version)
        for pipeline in TRAINED_PIPELINES:
            replace_dir(run_dir / pipeline, output / pipeline)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def set_package_name(
    model_dir: Path, *, name: Optional[str] = None, version: Optional[str] = None
) -> None:
    """Write the package name and version into a saved pipeline's meta.json, where spacy.load
    reads nlp.meta from, so that evaluation, serving and the wheel all call it
    <lang>_<name>-<version>; None keeps the value there.

    set_package_name(Path("training/model-best"), name="job_postings", version="0.0.1")
    """
    from spacy.util import load_meta

    meta_path = model_dir / "meta.json"
    meta = load_meta(meta_path)
    changed = {key: value for key, value in (("name", name), ("version", version)) if value}
    if any(meta.get(key) != value for key, value in changed.items()):
        data = json.dumps({**meta, **changed}, indent=2, ensure_ascii=False) + "\n"
        write_bytes_atomic(meta_path, data.encode("utf8"))


def use_stock_components(model_dir: Path) -> None:
    """Rewrite a saved pipeline's config.cfg to name spaCy's own text classifiers and scorers.

    use_stock_components(Path("training/model-best"))  # "training_textcat" -> "textcat"
    """
    from scripts.training.textcat import stock_config

    config_path = model_dir / "config.cfg"
    config = Config().from_disk(config_path, interpolate=False)
    stock = stock_config(config)
    if stock != config:
        write_bytes_atomic(config_path, stock.to_str(interpolate=False).encode("utf8"))
