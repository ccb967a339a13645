"""Precompute label sets with spaCy's `init labels`, never reusing stale ones.

The config reads labels from ${paths.labels}; pointing that at an empty folder makes spaCy
collect them from the corpus afresh, and the result replaces the old folder in one step.

    python -m scripts.init_labels training/config.cfg training/labels
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from scripts.common.errors import UserError


def init_labels(*, config_path: Path, output_dir: Path) -> list[str]:
    """Write one JSON label file per component into output_dir; return the files written."""
    from spacy.cli.init_pipeline import _init_labels
    from spacy.training.initialize import init_nlp
    from spacy.util import load_config

    import scripts.training.registry  # noqa: F401  registers what the config names

    if not config_path.is_file():
        raise UserError(
            f"{config_path}: config not found; run the config step first (spacy project run config)"
        )
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output_dir.parent) as tmp:
        fresh = Path(tmp) / "labels"
        fresh.mkdir()
        config = load_config(config_path, overrides={"paths.labels": str(fresh)})
        _init_labels(init_nlp(config), fresh)
        if output_dir.exists():
            shutil.rmtree(output_dir)
        os.replace(fresh, output_dir)
    return sorted(path.name for path in output_dir.iterdir())
