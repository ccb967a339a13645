"""Write the training config: configs/base.cfg cut to the chosen components, filled by spaCy.

make_config(base_path=Path("configs/base.cfg"), output=Path("training/config.cfg"),
            components="ner,textcat", transformer="auto", lang="en",
            train=Path("corpus/train.spacy"))
"""

from __future__ import annotations

import math
import os
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from spacy.tokens import DocBin
from spacy.util import load_config
from thinc.api import Config

from scripts.common.base_model import (
    MAX_UNKNOWN_SHARE,
    check_unknown_share,
    resolve_base_model,
    unknown_pieces,
)
from scripts.common.cats import POSITIVE
from scripts.common.errors import UserError, info
from scripts.common.files import PROJECT_ROOT

TASK_COMPONENTS = ("ner", "textcat", "textcat_multilabel")
VALID_COMPONENTS = ("ner", "textcat", "textcat_multilabel", "ner,textcat", "ner,textcat_multilabel")
PADDED_BATCHER = "spacy.batch_by_padded.v1"
DOCS_BATCHER = "ner_textcat.batch_by_docs.v1"
LOGGERS_PATH = PROJECT_ROOT / "configs" / "loggers.cfg"
CURVES_LOGGER = "ner_textcat.curves_logger.v1"
# Training stops when the dev score has not improved for this share of the run ([training]
# patience); the run is evaluated at least EVALUATIONS times, so the share is whole evaluations.
PATIENCE_SHARE = 1 / 4
# ... but not before this many steps (or the whole run, if shorter): a small corpus's recognizer
# finds no entity in its few dev documents for its first dozens of steps, and a quarter of a short
# run stopped it there, at step 0's score.
MIN_PATIENCE_STEPS = 60
EVALUATIONS = 12
# Texts spread over the corpus whose word pieces the base model's tokenizer is checked on.
TOKENIZER_SAMPLE = 2000
# Shuffled orders of the corpus over which the batches per epoch are averaged: spaCy shuffles
# every epoch, and the padded batcher's count depends on the order.
SHUFFLES = 5


@dataclass(frozen=True)
class CorpusStats:
    docs: int
    words: int
    docs_with_ents: int
    docs_with_cats: int
    docs_multi_label: int  # documents with more than one positive category
    # Tokens per training document, as the training reader splits them.
    lengths: tuple[int, ...] = ()
    # Split (entities) or cut to their start (categories only) in training.
    docs_over_max_length: int = 0
    longest: int = 0  # tokens in the longest document
    texts: tuple[str, ...] = ()  # up to TOKENIZER_SAMPLE texts spread over the corpus


@dataclass(frozen=True)
class Schedule:
    """The run in steps (updates): it stops at total_steps ([training] max_steps), the last step
    evaluated; max_epochs is the number of epochs chosen (or given) that the steps come from."""

    max_epochs: int
    eval_frequency: int
    patience: int
    warmup_steps: int
    total_steps: int


def parse_components(value: str) -> list[str]:
    """Validate the `components` var, e.g. parse_components("ner,textcat") -> ["ner", "textcat"]."""
    names = [name.strip() for name in value.split(",") if name.strip()]
    if ",".join(names) not in VALID_COMPONENTS:
        raise UserError(
            f"components '{value}' is not supported; use one of: {' | '.join(VALID_COMPONENTS)}",
            setting="components",
        )
    return names


def read_corpus_stats(path: Path, *, max_length: int = 0) -> CorpusStats:
    """Counts of the training corpus; max_length as [corpora.train] (training/corpus_reader.py)."""
    import spacy

    from scripts.training.corpus_reader import split_long_doc

    if not path.is_file():
        raise UserError(
            f"{path}: training corpus not found; "
            "run the convert step first (spacy project run convert)"
        )
    docs = list(DocBin().from_disk(path).get_docs(spacy.blank("xx").vocab))
    if not docs:
        raise UserError(
            f"{path}: the training corpus has no documents; check the train files given to convert"
        )
    every = max(1, math.ceil(len(docs) / TOKENIZER_SAMPLE))
    return CorpusStats(
        docs=len(docs),
        words=sum(len(doc) for doc in docs),
        docs_with_ents=sum(doc.has_annotation("ENT_IOB") for doc in docs),
        docs_with_cats=sum(bool(doc.cats) for doc in docs),
        docs_multi_label=sum(sum(v >= POSITIVE for v in doc.cats.values()) > 1 for doc in docs),
        lengths=tuple(len(piece) for doc in docs for piece in split_long_doc(doc, max_length)),
        docs_over_max_length=sum(len(doc) > max_length for doc in docs) if max_length > 0 else 0,
        longest=max(len(doc) for doc in docs),
        texts=tuple(doc.text for doc in docs[::every]),
    )


def choose_batcher(batcher: dict, components: list[str], overrides: dict[str, Any]) -> dict:
    """Text classification alone trains on batches of equal document counts (batchers.py).

    spaCy's padded batches (configs/base.cfg) stay for pipelines with ner, and wherever the
    user named a batcher with --training.batcher.@batchers.
    """
    if (
        "ner" in components
        or "training.batcher.@batchers" in overrides
        or batcher.get("@batchers") != PADDED_BATCHER
    ):
        return dict(batcher)
    return {**batcher, "@batchers": DOCS_BATCHER}


def count_batches(lengths: tuple[int, ...], *, batcher: dict) -> int:
    """Batches that the configured batcher makes from documents of these lengths, in this order."""
    from spacy.util import registry

    import scripts.training.batchers  # noqa: F401  registers ner_textcat.batch_by_docs.v1

    make_batches = registry.resolve({"batcher": batcher})["batcher"]
    try:
        return max(1, sum(1 for _ in make_batches([range(n) for n in lengths])))
    except ValueError as err:  # e.g. a size below 1 for ner_textcat.batch_by_docs.v1
        raise UserError(
            f"[training.batcher] {err}; set batch_size to 1 or more",
            setting="batch_size",
        ) from err


def batches_per_epoch(lengths: tuple[int, ...], *, batcher: dict, seed: int = 0) -> float:
    """The batches an epoch makes on average: spaCy shuffles the corpus before each epoch, and
    how the padded batcher packs documents depends on their order."""
    rng = random.Random(seed)
    counts = []
    for _ in range(SHUFFLES):
        order = list(lengths)
        rng.shuffle(order)
        counts.append(count_batches(tuple(order), batcher=batcher))
    return sum(counts) / len(counts)


def describe_batches(batcher: dict) -> str:
    """How the batcher fills a batch, for the config step's summary line."""
    if batcher.get("@batchers") == DOCS_BATCHER:
        return f"equal numbers of documents, {batcher['size']} words on average"
    if batcher.get("@batchers") == PADDED_BATCHER:
        return f"up to {batcher['size']} padded words"
    return str(batcher.get("@batchers"))


def check_corpus_fits(components: list[str], stats: CorpusStats, *, corpus: Path) -> None:
    """Fail early when the data cannot train the chosen components."""
    if "ner" in components and stats.docs_with_ents == 0:
        raise UserError(
            f"{corpus}: components include ner but no document carries entity annotation; "
            "add NER data or drop ner from the components",
            setting="components",
        )
    textcat = next((c for c in components if c.startswith("textcat")), None)
    if textcat and stats.docs_with_cats == 0:
        raise UserError(
            f"{corpus}: components include {textcat} but no document carries categories; "
            f"add labelled texts or drop {textcat} from the components",
            setting="components",
        )
    if textcat == "textcat" and stats.docs_multi_label:
        raise UserError(
            f"{corpus}: {stats.docs_multi_label} documents have several positive labels, "
            "which exclusive textcat cannot learn; "
            f"use the components {'ner,' if 'ner' in components else ''}textcat_multilabel",
            setting="components",
        )


def padded_equivalent(batcher: dict) -> dict:
    """The batcher whose batch count measures the corpus for the number of epochs.

    For the equal-count batcher that is spaCy's padded batcher with the same settings: the
    epochs then follow how much text there is (in batches of `size` padded words), not how a
    batcher slices it, and both batchers train on about the same number of words.
    """
    if batcher.get("@batchers") == DOCS_BATCHER:
        return {**batcher, "@batchers": PADDED_BATCHER}
    return dict(batcher)


def scale_schedule(
    batches_per_epoch: float, *, max_epochs: int = 0, corpus_batches: float = 0
) -> Schedule:
    """Epochs, steps, evaluation, patience and warmup scaled to the corpus (max_epochs 0 =
    choose), e.g. scale_schedule(12) -> 30 epochs, 360 steps, evaluation every 12 steps.

    corpus_batches is the corpus size in padded batches (padded_equivalent); 0 takes
    batches_per_epoch.
    """
    if max_epochs <= 0:
        # About 600 padded batches of text: small corpora need many passes, big ones few.
        max_epochs = min(30, max(3, math.ceil(600 / (corpus_batches or batches_per_epoch))))
    steps = max_epochs * batches_per_epoch
    # About once an epoch, at most every 200 steps, and at least EVALUATIONS times a run.
    eval_frequency = max(1, min(200, max(5, round(batches_per_epoch)), int(steps) // EVALUATIONS))
    # A whole number of evaluation intervals: spaCy counts steps from 0 and evaluates every
    # eval_frequency-th, so the run's last step (max_steps) is evaluated too.
    evaluations = max(1, round(steps / eval_frequency))
    total_steps = eval_frequency * evaluations
    return Schedule(
        max_epochs=max_epochs,
        eval_frequency=eval_frequency,
        patience=eval_frequency * patience_evaluations(evaluations, eval_frequency),
        warmup_steps=max(1, total_steps // 10),
        total_steps=total_steps,
    )


def patience_evaluations(evaluations: int, eval_frequency: int) -> int:
    """Evaluations without a better dev score that stop a run: a quarter of them, at least
    MIN_PATIENCE_STEPS' worth, at most the whole run (no early stop)."""
    share = round(evaluations * PATIENCE_SHARE)
    least = math.ceil(MIN_PATIENCE_STEPS / eval_frequency)
    return min(evaluations, max(1, share, least))


def decimal(value: float) -> str:
    """A count for the summary line with one decimal where it has one: 11.6, 30."""
    return f"{value:.1f}".removesuffix(".0")


def tracker_block(name: str, *, loggers_path: Path = LOGGERS_PATH) -> dict:
    """The experiment tracker the `logger` var names: its section of configs/loggers.cfg, for
    [training.logger.tracker] (empty for console), e.g. tracker_block("mlflow")["@loggers"]."""
    choices = Config().from_disk(loggers_path, interpolate=False)
    if name not in choices:
        raise UserError(
            f"logger '{name}' is not one of: {' | '.join(choices)} (the sections of "
            f"{loggers_path.name}); e.g. mlflow",
            setting="logger",
        )
    return dict(choices[name])


def build_config(
    base: Config,
    *,
    components: list[str],
    lang: str,
    transformer_location: str,
    schedule: Schedule,
    batcher: Optional[dict] = None,
    tracker: Optional[dict] = None,
) -> Config:
    """The base config with only the chosen components, the base model, the schedule and the
    experiment tracker (tracker_block) set."""
    config = Config(base)
    config["nlp"]["lang"] = lang
    config["nlp"]["pipeline"] = ["transformer", *components]
    for section in (config["components"], config["initialize"]["components"]):
        for name in TASK_COMPONENTS:
            if name not in components:
                section.pop(name, None)
    config["components"]["transformer"]["model"]["name"] = transformer_location
    training = config["training"]
    if batcher is not None:
        training["batcher"] = batcher
    # Counted in steps, whatever number of batches each shuffled epoch makes (max_epochs 0:
    # as many as the steps take).
    training["max_epochs"] = 0
    training["max_steps"] = schedule.total_steps
    training["eval_frequency"] = schedule.eval_frequency
    training["patience"] = schedule.patience
    training["optimizer"]["learn_rate"]["warmup_steps"] = schedule.warmup_steps
    training["optimizer"]["learn_rate"]["total_steps"] = schedule.total_steps
    if tracker:
        if training["logger"].get("@loggers") != CURVES_LOGGER:
            raise UserError(
                f"[training.logger] is {training['logger'].get('@loggers')}, which takes no "
                f"experiment tracker; name {CURVES_LOGGER} there or set logger console",
                setting="logger",
            )
        training["logger"] = {**training["logger"], "tracker": tracker}
    return config


def write_filled_config(
    config: Config, output: Path, *, check: Callable[[Config], None] = lambda _: None
) -> None:
    """Fill defaults exactly as `spacy init fill-config` does, check, then move into place
    atomically."""
    from spacy.cli.init_config import fill_config

    import scripts.training.registry  # noqa: F401  registers what the config names

    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output.parent) as tmp:
        base_path, filled_path = Path(tmp) / "base.cfg", Path(tmp) / "filled.cfg"
        config.to_disk(base_path, interpolate=False)
        fill_config(filled_path, base_path, silent=True)
        check(load_config(filled_path, interpolate=False))
        os.replace(filled_path, output)


def check_classifier_settings(config: Config) -> None:
    """Check each text classifier's class_balance now, so a bad value (2) stops here in one line,
    not in training."""
    from scripts.training.textcat import (
        DEFAULT_CLASS_BALANCE,
        STOCK_COMPONENTS,
        check_class_balance,
    )

    for name, block in config["components"].items():
        if block.get("factory") not in STOCK_COMPONENTS:
            continue
        try:
            check_class_balance(float(block.get("class_balance", DEFAULT_CLASS_BALANCE)))
        except (TypeError, ValueError) as err:
            raise UserError(
                f"[components.{name}] {' '.join(str(err).split())}; "
                f"pass --components.{name}.class_balance between 0 and 1"
            ) from None


def check_overrides_exist(config: Config, overrides: dict[str, Any], *, base_path: Path) -> None:
    """An override of a setting the filled config does not have is a typo, not a new setting."""
    for key in overrides:
        node: Any = config
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                raise UserError(
                    f"override --{key}: {base_path} has no such setting "
                    "(even after spaCy fills the defaults); "
                    "check the section and key names in training/config.cfg"
                )
            node = node[part]


def make_config(
    *,
    base_path: Path,
    output: Path,
    components: str,
    transformer: str,
    lang: str,
    train: Path,
    max_epochs: int = 0,
    overrides: Optional[dict[str, Any]] = None,
    logger: str = "console",
    max_unknown: float = MAX_UNKNOWN_SHARE,
) -> Schedule:
    """Write the filled config; overrides ({"training.accumulate_gradient": 2}) change
    configs/base.cfg first, and one given as "" keeps its value there (so project.yml passes its
    knobs empty by default and their defaults live in configs/base.cfg alone); logger names the
    experiment tracker (configs/loggers.cfg); max_unknown: the largest share of the training
    text's word pieces the base model's tokenizer may not know."""
    names = parse_components(components)
    if not 0.0 <= max_unknown <= 1.0:
        raise UserError(
            f"max_unknown {max_unknown} is not a share between 0 and 1; e.g. {MAX_UNKNOWN_SHARE}",
            setting="max_unknown",
        )
    tracker = tracker_block(logger)
    overrides = {key: value for key, value in (overrides or {}).items() if value != ""}
    base = load_config(base_path, overrides=overrides, interpolate=False)
    check_classifier_settings(base)
    stats = read_corpus_stats(train, max_length=int(base["corpora"]["train"]["max_length"]))
    check_corpus_fits(names, stats, corpus=train)
    if stats.docs_over_max_length:
        max_length = base["corpora"]["train"]["max_length"]
        info(
            f"{stats.docs_over_max_length} training docs are over max_length {max_length} "
            f"tokens (longest {stats.longest}): training splits those with entities "
            "and keeps the first max_length tokens of the others "
            "(--vars.max_length, 0 for no limit)"
        )
    base_model = resolve_base_model(transformer, lang=lang)
    tokenizer_config = dict(base["components"]["transformer"]["model"]["tokenizer_config"])
    unknown = unknown_pieces(base_model.location, stats.texts, tokenizer_config=tokenizer_config)
    check_unknown_share(unknown, model=base_model, lang=lang, max_share=max_unknown)
    read = (
        f"; {unknown.share:.1%} of the training text's word pieces unknown to its tokenizer"
        if unknown is not None
        else ""
    )
    info(f"Base model: {base_model.name} ({base_model.source}){read}")
    batcher = choose_batcher(base["training"]["batcher"], names, overrides)
    batches = batches_per_epoch(stats.lengths, batcher=batcher)
    sizing = padded_equivalent(batcher)
    corpus_batches = (
        batches if sizing == batcher else batches_per_epoch(stats.lengths, batcher=sizing)
    )
    schedule = scale_schedule(batches, max_epochs=max_epochs, corpus_batches=corpus_batches)
    config = build_config(
        base,
        components=names,
        lang=lang,
        transformer_location=base_model.location,
        schedule=schedule,
        batcher=batcher,
        tracker=tracker,
    )
    write_filled_config(
        config,
        output,
        check=lambda filled: check_overrides_exist(filled, overrides, base_path=base_path),
    )
    info(
        f"Wrote {output}: pipeline transformer,{','.join(names)}; "
        f"{stats.docs} training docs, {stats.words} words; "
        f"{schedule.total_steps} steps: {decimal(schedule.total_steps / batches)} epochs of "
        f"{decimal(batches)} batch{'' if batches == 1 else 'es'} on average "
        f"({describe_batches(batcher)}), evaluation every {schedule.eval_frequency} steps, "
        f"warmup {schedule.warmup_steps} steps, stop after {schedule.patience} steps without a "
        "better dev score"
    )
    return schedule
