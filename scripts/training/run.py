"""Train with `spacy train`, on the GPU when there is one, saying which device in one line.

    python -m scripts.train training/config.cfg --output training --gpu-id auto

After training, multi-label classifiers get their decision threshold tuned on the dev set
(scripts/thresholds.py), before model-best and model-last replace the previous ones.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import List

from scripts.common.device import activate, resolve_device
from scripts.common.errors import UserError, info


def parse_bool(value: str, *, var: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no", ""):
        return False
    raise UserError(f"{var} '{value}' is not true or false; pass e.g. --vars.{var} true")


def parse_overrides(args: List[str]) -> dict:
    """spaCy-style config overrides, e.g. ["--training.max_epochs", "2"]."""
    from spacy.cli._util import parse_config_overrides

    return parse_config_overrides(args)


def train(
    *, config_path: Path, output: Path, gpu_id: str, mixed_precision: bool, overrides: dict
) -> None:
    from spacy.cli.train import train as spacy_train
    from spacy.util import load_config

    import scripts.training.registry  # noqa: F401  registers what the config names
    from scripts.training.thresholds import tune_thresholds

    if not config_path.is_file():
        raise UserError(
            f"{config_path}: config not found; run the config step first (spacy project run config)"
        )
    device = resolve_device(gpu_id)
    if mixed_precision and device.gpu_id < 0:
        raise UserError(
            "mixed_precision true needs a GPU and the device is the CPU; pass --vars.mixed_precision false or --vars.gpu_id 0 on a GPU machine"
        )
    info(f"Training on {device.description}{', mixed precision' if mixed_precision else ''}")
    activate(device)
    overrides = {"components.transformer.model.mixed_precision": mixed_precision, **overrides}
    output.mkdir(parents=True, exist_ok=True)
    # Train into a scratch folder so a failed run leaves the previous models untouched.
    run_dir = Path(tempfile.mkdtemp(prefix=".run-", dir=output))
    try:
        spacy_train(config_path, run_dir, use_gpu=device.gpu_id, overrides=overrides)
        dev_path = Path(
            load_config(config_path, overrides=overrides, interpolate=True)["paths"]["dev"]
        )
        for name in ("model-best", "model-last"):
            for tuned in tune_thresholds(run_dir / name, dev_path):
                info(
                    f"{name}: {tuned.component} threshold {tuned.threshold:.2f} (was {tuned.previous:.2f}), "
                    f"dev macro F {tuned.macro_f:.3f} (was {tuned.macro_f_before:.3f}) on {tuned.n_docs} docs"
                )
        for name in ("model-best", "model-last"):
            replace_dir(run_dir / name, output / name)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def replace_dir(source: Path, target: Path) -> None:
    """Move source to target, replacing what was there, with the old copy removed only after."""
    if target.exists():
        retired = target.with_name(f".{target.name}.old")
        shutil.rmtree(retired, ignore_errors=True)
        os.replace(target, retired)
        os.replace(source, target)
        shutil.rmtree(retired)
    else:
        os.replace(source, target)
