"""Precompute every component's label set from the training corpus, never reusing stale ones.

    init_labels(config_path=Path("training/config.cfg"), output_dir=Path("training/labels"))

As spaCy's `init labels` does, each component with label data gets `<name>.json` (its
`label_data`, written with srsly), e.g. training/labels/ner.json and training/labels/textcat.json.
The config reads labels from ${paths.labels}; pointing that at an empty folder makes spaCy collect
them from the corpus afresh, and the result replaces the old folder in one step.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import srsly

from scripts.common.errors import UserError


def init_labels(*, config_path: Path, output_dir: Path) -> list[str]:
    """Write one JSON label file per component into output_dir; return the files written."""
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
        nlp = init_nlp(config)
        for name, component in nlp.pipeline:
            label_data = getattr(component, "label_data", None)
            if label_data is not None:
                srsly.write_json(fresh / f"{name}.json", label_data)
        if output_dir.exists():
            shutil.rmtree(output_dir)
        os.replace(fresh, output_dir)
    return sorted(path.name for path in output_dir.iterdir())
