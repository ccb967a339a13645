"""The peer baseline behind scripts/peer_hf_trainer.py: the same base model fine-tuned with a plain
Hugging Face `transformers.Trainer` on the same corpus split, to compare with scripts.bench_train
at equal epochs. Not part of the project's workflow.

It needs `accelerate` (pip install -r requirements/peer.txt). It reads train/dev/test.spacy from
CORPUS_DIR, keeps the docs annotated for the task, trains with the Trainer's defaults (AdamW, linear
decay, no warmup), keeps the epoch with the best F on dev (as our recipe keeps model-best), scores
the test docs with scripts.scoring.metrics (the scorer scripts.evaluate uses), and prints one
JSON line shaped like scripts.bench_train's. train_seconds is the Trainer's train_runtime (the
per-epoch dev evaluation included, as ours); wall_seconds runs from loading the model to the end of
training. train_words counts the words the model saw: those of truncated texts past the cut are not
counted, as scripts.bench_train counts the words of the training reader's pieces.

- ner: token classification on the gold words, IOB2 tags on the first word piece of each word.
  Docs longer than the model's 512 word pieces are cut into consecutive chunks of whole words that
  fit; predictions are stitched back per doc. Words without annotation are not trained on.
- textcat: single-label sequence classification; texts are truncated to the model's maximum length,
  as a plain fine-tune does; predicted cats are softmax probabilities.
- textcat_multilabel: multi-label classification (sigmoid, float targets; a label missing from a
  doc's cats counts as 0); scored at --threshold.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from timeit import default_timer
from typing import Any, NotRequired, Optional, TypedDict

import numpy as np
import spacy
import torch
import transformers
from spacy.tokens import Doc, DocBin, Span
from spacy.vocab import Vocab
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
    DataCollatorForTokenClassification,
    DataCollatorWithPadding,
    EvalPrediction,
    PreTrainedTokenizerBase,
    Trainer,
    TrainingArguments,
)

from scripts.bench.recipe import EntsHeadline, TextcatHeadline, ents_headline, textcat_headline
from scripts.common.base_model import resolve_base_model
from scripts.common.cats import POSITIVE
from scripts.common.errors import UserError, info
from scripts.scoring.metrics import (
    Metrics,
    Tasks,
    evaluate_docs,
    has_cat_annotation,
    has_ent_annotation,
    top_category,
    words_doc,
)

TASKS = ("ner", "textcat", "textcat_multilabel")
SPLITS = ("train", "dev", "test")
MAX_PIECES = 512
IGNORED = -100  # label id the loss skips
PREFIX_SPACE_MODELS = {"bloom", "gpt2", "roberta", "deberta"}  # as HF's run_ner.py example


class PeerResult(TypedDict):
    """The JSON line scripts.peer_hf_trainer prints: scripts.bench_train's keys, and "peer"."""

    peer: str
    components: str
    base_model: str
    epochs: int
    train_words: int
    train_seconds: float
    train_words_per_second: Optional[int]
    wall_seconds: float
    ents: NotRequired[EntsHeadline]
    textcat: NotRequired[TextcatHeadline]


@dataclass
class Encoded:
    """Model inputs for gold docs, and how to turn the model's logits back into predicted docs."""

    golds: list[Doc]
    features: list[dict[str, Any]]
    to_docs: Callable[[np.ndarray], list[Doc]]
    words: int  # words the model sees: truncation drops the rest


@dataclass(frozen=True)
class Chunk:
    """Words start..end of doc `doc`, and the position of each word's first piece (None: no
    piece)."""

    doc: int
    start: int
    end: int
    first_pieces: list[int | None]


# ---------------------------------------------------------------- corpus


def read_split(path: Path, *, vocab: Vocab, task: str) -> list[Doc]:
    """The docs of one .spacy file that are annotated for the task."""
    if not path.is_file():
        raise UserError(
            f"{path} not found; write the corpus first: python -m scripts.convert --train ... "
            f"--dev ... --test ... --output-dir {path.parent}"
        )
    docs = list(DocBin().from_disk(path).get_docs(vocab))
    kept = [
        doc
        for doc in docs
        if (has_ent_annotation(doc) if task == "ner" else has_cat_annotation(doc))
    ]
    if not kept:
        what = "entity annotation" if task == "ner" else "categories"
        raise UserError(
            f"none of the {len(docs)} docs in {path} has {what}, so --task {task} has nothing to "
            f"work on; pass a corpus annotated for it or another --task"
        )
    return kept


def find_labels(docs: Sequence[Doc], *, task: str) -> tuple[str, ...]:
    """Entity labels or category labels seen in the training docs, sorted."""
    labels = (
        {ent.label_ for doc in docs for ent in doc.ents}
        if task == "ner"
        else {label for doc in docs for label in doc.cats}
    )
    if not labels:
        raise UserError(
            f"the training docs have no {'entities' if task == 'ner' else 'category labels'}; "
            f"pass a corpus annotated for --task {task}"
        )
    return tuple(sorted(labels))


# ---------------------------------------------------------------- ner


def iob_tags(doc: Doc) -> list[str | None]:
    """IOB2 tags of the gold words; None where the word has no annotation."""
    return [
        f"{t.ent_iob_}-{t.ent_type_}" if t.ent_iob_ in ("B", "I") else ("O" if t.ent_iob_ else None)
        for t in doc
    ]


def chunk_words(piece_counts: Sequence[int], limit: int) -> list[tuple[int, int]]:
    """Consecutive (start, end) word ranges whose piece counts sum to at most `limit`, filled
    greedily. A single word over the limit gets a chunk of its own (the tokenizer truncates it)."""
    chunks: list[tuple[int, int]] = []
    start = used = 0
    for i, count in enumerate(piece_counts):
        if i > start and used + count > limit:
            chunks.append((start, i))
            start, used = i, 0
        used += count
    if start < len(piece_counts):
        chunks.append((start, len(piece_counts)))
    return chunks


def decode_iob(tags: Sequence[str]) -> list[tuple[int, int, str]]:
    """Entity spans (start, end, label) from IOB tags; an I- that does not continue an entity of
    its label starts one. ["B-A", "I-A", "O", "I-B"] -> [(0, 2, "A"), (3, 4, "B")]."""
    spans: list[tuple[int, int, str]] = []
    for i, tag in enumerate(tags):
        prefix, _, label = tag.partition("-")
        if prefix == "I" and spans and spans[-1][1] == i and spans[-1][2] == label:
            spans[-1] = (spans[-1][0], i + 1, label)
        elif prefix in ("B", "I"):
            spans.append((i, i + 1, label))
    return spans


def encode_ner(
    golds: list[Doc],
    *,
    tokenizer: PreTrainedTokenizerBase,
    tag_names: Sequence[str],
    max_length: int,
) -> Encoded:
    """One example per chunk of whole words that fits the model, labelled on first pieces."""
    tag_ids = {tag: i for i, tag in enumerate(tag_names)}
    limit = max_length - tokenizer.num_special_tokens_to_add(pair=False)
    features, chunks = [], []
    for index, doc in enumerate(golds):
        words, tags = [t.text for t in doc], iob_tags(doc)
        pieces = tokenizer(
            words, is_split_into_words=True, add_special_tokens=False, verbose=False
        ).word_ids()
        counts = Counter(pieces)
        for start, end in chunk_words([counts[i] for i in range(len(words))], limit):
            encoding = tokenizer(
                words[start:end], is_split_into_words=True, truncation=True, max_length=max_length
            )
            first: list[int | None] = [None] * (end - start)
            labels = [IGNORED] * len(encoding["input_ids"])
            for position, word in enumerate(encoding.word_ids()):
                if word is not None and first[word] is None:
                    first[word] = position
                    tag = tags[start + word]
                    labels[position] = IGNORED if tag is None else tag_ids[tag]
            features.append({**encoding, "labels": labels})
            chunks.append(Chunk(doc=index, start=start, end=end, first_pieces=first))

    def to_docs(logits: np.ndarray) -> list[Doc]:
        return ner_docs(logits, chunks=chunks, golds=golds, tag_names=tag_names)

    return Encoded(
        golds=golds, features=features, to_docs=to_docs, words=sum(len(doc) for doc in golds)
    )


def ner_docs(
    logits: np.ndarray, *, chunks: Sequence[Chunk], golds: Sequence[Doc], tag_names: Sequence[str]
) -> list[Doc]:
    """Predicted docs on the gold words: each word takes the tag of its first piece (no piece:
    O)."""
    tags: list[list[str]] = [["O"] * len(doc) for doc in golds]
    for chunk, chunk_logits in zip(chunks, logits):
        for offset, position in enumerate(chunk.first_pieces):
            if position is not None:
                tags[chunk.doc][chunk.start + offset] = tag_names[
                    int(chunk_logits[position].argmax())
                ]
    preds = [words_doc(gold) for gold in golds]
    for doc, doc_tags in zip(preds, tags):
        doc.ents = [
            Span(doc, start, end, label=label) for start, end, label in decode_iob(doc_tags)
        ]
    return preds


# ---------------------------------------------------------------- categories


def encode_cats(
    golds: list[Doc],
    *,
    tokenizer: PreTrainedTokenizerBase,
    labels: Sequence[str],
    multilabel: bool,
    max_length: int,
) -> Encoded:
    """One example per doc, truncated to the model's length. Exclusive: the label with the top
    gold value."""
    features = []
    words = 0
    for doc in golds:
        encoding = tokenizer(
            doc.text, truncation=True, max_length=max_length, return_offsets_mapping=True
        )
        seen_chars = max((end for _, end in encoding.pop("offset_mapping")), default=0)
        words += sum(1 for token in doc if token.idx < seen_chars)
        if multilabel:
            target: Any = [float(doc.cats.get(label, 0.0)) for label in labels]
        else:
            target = labels.index(top_category(doc.cats, labels))
        features.append({**encoding, "labels": target})

    def to_docs(logits: np.ndarray) -> list[Doc]:
        scores = torch.from_numpy(logits).float()
        probabilities = (scores.sigmoid() if multilabel else scores.softmax(dim=-1)).tolist()
        preds = [words_doc(gold) for gold in golds]
        for doc, row in zip(preds, probabilities):
            doc.cats = dict(zip(labels, row))
        return preds

    return Encoded(golds=golds, features=features, to_docs=to_docs, words=words)


# ---------------------------------------------------------------- training


def scores_of(encoded: Encoded, logits: np.ndarray, tasks: Tasks) -> Metrics:
    """The scores of the predicted docs, as scripts.evaluate computes them."""
    return evaluate_docs(golds=encoded.golds, preds=encoded.to_docs(logits), tasks=tasks).metrics


def main_score(metrics: Metrics) -> float:
    """Entity F, or the macro F of the categories: what picks the best epoch (0 when null)."""
    ents, textcat = metrics["ents"], metrics["textcat"]
    score = ents["f"] if ents is not None else textcat["macro_f"] if textcat is not None else None
    return score or 0.0


def dev_metric(dev: Encoded, tasks: Tasks) -> Callable[[EvalPrediction], dict[str, float]]:
    """compute_metrics for the Trainer: {"f": entity F, or macro F of the categories} on dev."""

    def compute(prediction: EvalPrediction) -> dict[str, float]:
        return {"f": main_score(scores_of(dev, prediction.predictions, tasks))}

    return compute


def load_model(
    location: str, *, task: str, labels: Sequence[str]
) -> tuple[PreTrainedTokenizerBase, Any, list[str]]:
    """Tokenizer, model with a fresh head, and the head's output names."""
    config = AutoConfig.from_pretrained(location)
    prefix_space = task == "ner" and config.model_type in PREFIX_SPACE_MODELS
    tokenizer = AutoTokenizer.from_pretrained(
        location, **({"add_prefix_space": True} if prefix_space else {})
    )
    if task == "ner":
        names = ["O"] + [f"{prefix}-{label}" for label in labels for prefix in ("B", "I")]
        auto, options = AutoModelForTokenClassification, {}
    else:
        names = list(labels)
        auto = AutoModelForSequenceClassification
        options = (
            {"problem_type": "multi_label_classification"} if task == "textcat_multilabel" else {}
        )
    model = auto.from_pretrained(
        location,
        num_labels=len(names),
        id2label=dict(enumerate(names)),
        label2id={name: i for i, name in enumerate(names)},
        **options,
    )
    return tokenizer, model, names


def training_args(
    *, output_dir: str, epochs: int, batch_size: int, learning_rate: float, seed: int
) -> TrainingArguments:
    return TrainingArguments(
        output_dir=output_dir,
        num_train_epochs=epochs,
        per_device_train_batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
        eval_strategy="epoch",
        save_strategy="epoch",
        load_best_model_at_end=True,
        metric_for_best_model="f",
        save_total_limit=1,
        report_to=[],
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=True,
    )


def encoder(
    *, task: str, tokenizer: PreTrainedTokenizerBase, names: Sequence[str], labels: Sequence[str]
) -> tuple[Callable[[list[Doc]], Encoded], Any]:
    """How to encode docs for the task, and the collator that pads its examples into batches."""
    max_length = min(tokenizer.model_max_length, MAX_PIECES)
    if task == "ner":
        return (
            partial(encode_ner, tokenizer=tokenizer, tag_names=names, max_length=max_length),
            DataCollatorForTokenClassification(tokenizer),
        )
    return (
        partial(
            encode_cats,
            tokenizer=tokenizer,
            labels=labels,
            multilabel=task == "textcat_multilabel",
            max_length=max_length,
        ),
        DataCollatorWithPadding(tokenizer),
    )


def peer_train(
    *,
    corpus_dir: Path,
    task: str,
    epochs: int,
    transformer: str = "auto",
    lang: str = "en",
    batch_size: int = 8,
    learning_rate: float = 5e-5,
    seed: int = 0,
    threshold: float = POSITIVE,
    output_dir: Path | None = None,
) -> PeerResult:
    """Fine-tune, keep the best epoch on dev, score on test; the result line as a dict."""
    if task not in TASKS:
        raise UserError(f"unknown --task {task}; pass one of {', '.join(TASKS)}")
    if epochs < 1:
        raise UserError(f"--epochs {epochs}: pass 1 or more")
    vocab = spacy.blank(lang).vocab
    train, dev, test = (
        read_split(corpus_dir / f"{split}.spacy", vocab=vocab, task=task) for split in SPLITS
    )
    labels = find_labels(train, task=task)
    tasks = (
        Tasks(ent_labels=labels)
        if task == "ner"
        else Tasks(cat_labels=labels, exclusive=task == "textcat", threshold=threshold)
    )
    base_model = resolve_base_model(transformer, lang=lang)
    sizes = f"{len(train)} train / {len(dev)} dev / {len(test)} test docs"
    info(f"Peer baseline: {base_model.name}, {task}, {sizes}")
    transformers.set_seed(seed)  # the new head's initial weights
    started = default_timer()
    tokenizer, model, names = load_model(base_model.location, task=task, labels=labels)
    encode, collator = encoder(task=task, tokenizer=tokenizer, names=names, labels=labels)
    train_set, dev_set, test_set = encode(train), encode(dev), encode(test)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(
            model=model,
            args=training_args(
                output_dir=str(output_dir or tmp),
                epochs=epochs,
                batch_size=batch_size,
                learning_rate=learning_rate,
                seed=seed,
            ),
            train_dataset=train_set.features,
            eval_dataset=dev_set.features,
            data_collator=collator,
            compute_metrics=dev_metric(dev_set, tasks),
        )
        runtime = trainer.train().metrics["train_runtime"]
        wall = default_timer() - started
        inputs = [
            {key: value for key, value in f.items() if key != "labels"} for f in test_set.features
        ]
        metrics = scores_of(test_set, trainer.predict(inputs).predictions, tasks)
    return summarize(
        task=task,
        base_model=base_model.name,
        epochs=epochs,
        words=train_set.words * epochs,
        runtime=runtime,
        wall=wall,
        metrics=metrics,
    )


def summarize(
    *,
    task: str,
    base_model: str,
    epochs: int,
    words: int,
    runtime: float,
    wall: float,
    metrics: Metrics,
) -> PeerResult:
    """The result line, with scripts.bench_train's keys."""
    result = PeerResult(
        peer="hf_trainer",
        components=task,
        base_model=base_model,
        epochs=epochs,
        train_words=words,
        train_seconds=round(runtime, 1),
        train_words_per_second=round(words / runtime) if runtime else None,
        wall_seconds=round(wall, 1),
    )
    if metrics["ents"] is not None:
        result["ents"] = ents_headline(metrics["ents"])
    if metrics["textcat"] is not None:
        result["textcat"] = textcat_headline(metrics["textcat"])
    return result
