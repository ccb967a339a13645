"""The active-learning benchmark behind scripts/bench_active.py: how many annotations the Label
Studio loop's uncertainty-first order saves over labelling tasks in random order.

Annotators are simulated by the pool's gold annotations. One run (one seed) shuffles POOL.spacy
with the seed and keeps its first `pool` documents. Round 1 labels the first `batch` of them for
every strategy (no model exists yet to choose with). Each later round labels `batch` more:

- random: the next ones in the shuffled order;
- uncertainty: those the previous round's model is least sure of, by the Label Studio loop's own
  rule (scripts/scoring/uncertainty.py, what `serve --uncertainty` picks; ties in shuffled order).

After labelling, each round trains a pipeline from the base model on every annotation so far with
the stages the server's retraining runs (scripts/workflow/stages.py: convert, with a tenth split
off as the dev set that picks model-best, config, labels, train), and scores it on TEST.spacy as
scripts.evaluate does: entity F for ner, macro F for textcat and textcat_multilabel.

    rounds = run_strategies(pool=Path("corpus/train.spacy"), test=Path("corpus/test.spacy"),
                            plan=Plan(components="textcat", pool=400, batch=40, rounds=6),
                            output=Path("training/active/seed-0"))

Each round is a JSON line ({"strategy", "round", "annotations", "score", "seed", ...}) appended
to OUTPUT/rounds.jsonl as it finishes; draw_curves() and saving() read every seed-*/rounds.jsonl
of a folder: the mean curve of each strategy over the seeds, and how many fewer annotations the
uncertainty order needs to reach the random order's last score.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence, TypedDict

from spacy.tokens import Doc, DocBin

from scripts.common.errors import UserError
from scripts.common.files import write_bytes_atomic
from scripts.common.options import DEFAULT_GPU_ID
from scripts.corpus.conversion import Settings
from scripts.evaluation.run import evaluate_model
from scripts.inference.predict import load_predictor, predict_texts, task_score
from scripts.scoring.metrics import Metrics
from scripts.scoring.uncertainty import MARGIN, check_rule
from scripts.training.config import TASK_COMPONENTS
from scripts.workflow import stages

RANDOM, UNCERTAINTY = "random", "uncertainty"
STRATEGIES = (RANDOM, UNCERTAINTY)
ROUNDS_FILE = "rounds.jsonl"
CURVES_FILE = "curves.png"
Echo = Callable[[str], None]


@dataclass(frozen=True)
class Plan:
    components: str  # one of TASK_COMPONENTS: what is trained and scored
    pool: int  # documents of POOL.spacy the annotators may label
    batch: int  # documents labelled per round
    rounds: int
    strategies: tuple[str, ...] = STRATEGIES
    epochs: int = 0  # 0: the config stage chooses from the corpus size
    seed: int = 0  # the pool's order, the dev split and the training seed
    transformer: str = "auto"
    rule: str = MARGIN  # the uncertainty rule (scripts/scoring/uncertainty.py)
    gpu_id: str = DEFAULT_GPU_ID


class Round(TypedDict):
    """One JSON line of rounds.jsonl and of the command's output."""

    strategy: str
    round: int  # from 1
    annotations: int  # documents labelled so far
    words: int  # their tokens: what the annotators read (the uncertain texts may be longer)
    score: Optional[float]  # the test figure (figure names it); None: nothing to score
    figure: str  # "ents_f" or "cats_macro_f"
    seed: int
    components: str
    seconds: float  # training and scoring this round


def check_plan(plan: Plan, *, pool_size: int, pool_path: Path) -> None:
    """One-line UserErrors for a plan the pool cannot carry out."""
    if plan.components not in TASK_COMPONENTS:
        raise UserError(
            f"--components {plan.components!r}: pass one of {', '.join(TASK_COMPONENTS)}"
        )
    unknown = [name for name in plan.strategies if name not in STRATEGIES]
    if unknown or not plan.strategies:
        raise UserError(
            f"--strategies {','.join(plan.strategies)!r}: pass some of {', '.join(STRATEGIES)}"
        )
    try:
        check_rule(plan.rule)
    except ValueError as err:
        raise UserError(str(err)) from None
    if min(plan.pool, plan.batch, plan.rounds) < 1:
        raise UserError("--pool, --batch and --rounds must be at least 1")
    if plan.batch * plan.rounds > plan.pool:
        raise UserError(
            f"--batch {plan.batch} x --rounds {plan.rounds} labels {plan.batch * plan.rounds} "
            f"documents but --pool is {plan.pool}; raise --pool or lower --batch or --rounds"
        )
    if plan.pool > pool_size:
        raise UserError(
            f"--pool {plan.pool}: {pool_path} holds {pool_size} documents; pass --pool "
            f"{pool_size} or less"
        )


def read_docs(path: Path) -> list[Doc]:
    """The documents of a .spacy file, or a one-line UserError."""
    import spacy

    if path.suffix != ".spacy" or not path.is_file():
        raise UserError(
            f"{path}: not a .spacy file; convert it first with python -m scripts.convert"
        )
    try:
        return list(DocBin().from_disk(path).get_docs(spacy.blank("xx").vocab))
    except (ValueError, KeyError, OSError) as err:
        raise UserError(f"{path}: not a readable DocBin ({err}); convert it again") from None


def shuffled_pool(docs: Sequence[Doc], *, size: int, seed: int) -> list[Doc]:
    """The first `size` documents of docs in the seed's order: the random strategy's order."""
    order = list(range(len(docs)))
    random.Random(seed).shuffle(order)
    return [docs[i] for i in order[:size]]


def pick_next(
    strategy: str,
    *,
    unlabelled: Sequence[int],
    batch: int,
    uncertainties: Optional[Sequence[Optional[float]]] = None,
) -> list[int]:
    """The pool positions labelled next, from those unlabelled (in the random order): the first
    `batch` of them, or for uncertainty the `batch` least certain, ties (and texts without a
    score, which count as sure) in random order."""
    if strategy == RANDOM or uncertainties is None:
        return list(unlabelled[:batch])
    ranked = sorted(
        range(len(unlabelled)),
        key=lambda k: -(uncertainties[k] if uncertainties[k] is not None else 0.0),
    )  # sorted() is stable: equal uncertainties keep the random order
    return [unlabelled[k] for k in ranked[:batch]]


def run_strategies(
    *, pool: Path, test: Path, plan: Plan, output: Path, echo: Echo = print
) -> Iterator[Round]:
    """Every round of every strategy of one seed into output (one run folder per round, its
    models removed once used), each Round yielded as soon as it is scored and appended to
    output/rounds.jsonl."""
    docs = read_docs(pool)
    check_plan(plan, pool_size=len(docs), pool_path=pool)
    read_docs(test)  # a bad test file fails here, not after the first training
    ordered = shuffled_pool(docs, size=plan.pool, seed=plan.seed)
    texts = [doc.text for doc in ordered]
    output.mkdir(parents=True, exist_ok=True)
    (output / ROUNDS_FILE).unlink(missing_ok=True)
    first = list(range(plan.batch))
    # Round 1 is the same random batch for every strategy: train it once
    shared = train_round(ordered, first, test=test, plan=plan, folder=output / "round-1", echo=echo)
    for strategy in plan.strategies:
        labelled, model = list(first), shared.model
        yield record(output, plan=plan, strategy=strategy, number=1, done=shared)
        for number in range(2, plan.rounds + 1):
            taken = set(labelled)
            unlabelled = [i for i in range(len(ordered)) if i not in taken]
            uncertainties = None
            if strategy == UNCERTAINTY:
                uncertainties = pool_uncertainties(
                    model, [texts[i] for i in unlabelled], rule=plan.rule, gpu_id=plan.gpu_id
                )
            labelled += pick_next(
                strategy, unlabelled=unlabelled, batch=plan.batch, uncertainties=uncertainties
            )
            if model != shared.model:
                remove_models(model.parent)
            done = train_round(
                ordered,
                labelled,
                test=test,
                plan=plan,
                folder=output / f"{strategy}-{number}",
                echo=echo,
            )
            model = done.model
            yield record(output, plan=plan, strategy=strategy, number=number, done=done)
        if model != shared.model:
            remove_models(model.parent)
    remove_models(shared.model.parent)


@dataclass(frozen=True)
class Trained:
    model: Path  # model-best of the round, kept until the next round has used it
    annotations: int
    words: int
    score: Optional[float]
    figure: str
    seconds: float


def train_round(
    ordered: Sequence[Doc],
    labelled: Sequence[int],
    *,
    test: Path,
    plan: Plan,
    folder: Path,
    echo: Echo,
) -> Trained:
    """Train on the labelled documents with the workflow's stages and score on test."""
    from timeit import default_timer

    started = default_timer()
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    annotated = folder / "annotated.spacy"
    docbin = DocBin(store_user_data=True)
    for i in labelled:
        docbin.add(ordered[i])
    write_bytes_atomic(annotated, docbin.to_bytes())
    run = stages.RunFolder.inside(folder)
    stages.convert(
        run=run,
        train=[annotated],
        dev=[],
        test=[test],
        seed=plan.seed,
        settings=Settings(lenient=True),
        echo=echo,
    )
    stages.config(
        run=run,
        components=plan.components,
        transformer=plan.transformer,
        max_epochs=plan.epochs,
        overrides={"system.seed": plan.seed},
    )
    stages.labels(run=run)
    stages.train(run=run, gpu_id=plan.gpu_id)
    metrics = evaluate_model(
        model=str(run.model_best),
        data_path=run.split("test"),
        output_dir=run.evaluation,
        gpu_id=plan.gpu_id,
        explain=0,
    )
    figure, score = headline(metrics, components=plan.components)
    words = sum(len(ordered[i]) for i in labelled)
    return Trained(run.model_best, len(labelled), words, score, figure, default_timer() - started)


def headline(metrics: Metrics, *, components: str) -> tuple[str, Optional[float]]:
    """The test figure a round is judged by: entity F, or the categories' macro F."""
    if components == "ner":
        ents = metrics.get("ents")
        return "ents_f", ents["f"] if ents else None
    textcat = metrics.get("textcat")
    return "cats_macro_f", textcat["macro_f"] if textcat else None


def pool_uncertainties(
    model: Path, texts: Sequence[str], *, rule: str, gpu_id: str
) -> list[Optional[float]]:
    """How unsure the model is about each text, as the Label Studio push scores its tasks."""
    predictor = load_predictor(str(model), gpu_id=gpu_id, uncertainty=rule)
    found = []
    for prediction in predict_texts(predictor, texts, parse_scores=True):
        certainty = task_score(prediction, predictor=predictor)
        found.append(None if certainty is None else 1.0 - certainty)
    return found


def record(output: Path, *, plan: Plan, strategy: str, number: int, done: Trained) -> Round:
    line = Round(
        strategy=strategy,
        round=number,
        annotations=done.annotations,
        words=done.words,
        score=done.score,
        figure=done.figure,
        seed=plan.seed,
        components=plan.components,
        seconds=round(done.seconds, 1),
    )
    path = output / ROUNDS_FILE
    before = path.read_bytes() if path.is_file() else b""
    write_bytes_atomic(path, before + (json.dumps(line) + "\n").encode("utf8"))
    return line


def remove_models(folder: Path) -> None:
    """A round's pipelines (hundreds of MB each) once nothing needs them; its metrics stay."""
    for name in ("model-best", "model-last"):
        shutil.rmtree(folder / name, ignore_errors=True)


# ---- over seeds: curves and the saving ----------------------------------------------------------


def read_rounds(folder: Path) -> list[Round]:
    """Every seed-*/rounds.jsonl under folder (and folder/rounds.jsonl itself)."""
    paths = sorted(folder.glob(f"seed-*/{ROUNDS_FILE}"))
    if (folder / ROUNDS_FILE).is_file():
        paths.append(folder / ROUNDS_FILE)
    rounds = []
    for path in paths:
        for number, line in enumerate(path.read_text(encoding="utf8").splitlines(), 1):
            if line.strip():
                try:
                    rounds.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise UserError(f"{path}:{number}: not a JSON line ({err.msg})") from None
    return rounds


@dataclass(frozen=True)
class Curve:
    strategy: str
    annotations: list[int]
    mean: list[float]
    low: list[float]  # the lowest and highest seed at each point
    high: list[float]
    seeds: int


def mean_curves(rounds: Sequence[Round]) -> list[Curve]:
    """Each strategy's score by annotations, averaged over the seeds that reached the point."""
    curves = []
    for strategy in sorted({r["strategy"] for r in rounds}):
        by_size: dict[int, list[float]] = {}
        for r in rounds:
            if r["strategy"] == strategy and r["score"] is not None:
                by_size.setdefault(r["annotations"], []).append(r["score"])
        sizes = sorted(by_size)
        curves.append(
            Curve(
                strategy,
                sizes,
                [statistics.fmean(by_size[n]) for n in sizes],
                [min(by_size[n]) for n in sizes],
                [max(by_size[n]) for n in sizes],
                len({r["seed"] for r in rounds if r["strategy"] == strategy}),
            )
        )
    return curves


class Saving(TypedDict):
    target: Optional[float]  # the random order's mean score at its last round
    random_annotations: Optional[int]  # annotations of that round
    uncertainty_annotations: Optional[int]  # the first round where uncertainty's mean reaches it
    saving: Optional[float]  # 1 - uncertainty_annotations / random_annotations; None: not reached
    # where uncertainty's mean curve, drawn straight between its rounds, crosses the target, and
    # the saving that makes: an estimate between two measured rounds
    interpolated_annotations: Optional[float]
    interpolated_saving: Optional[float]
    uncertainty_at_target: Optional[float]  # uncertainty's mean at random_annotations
    seeds: int


def saving(rounds: Sequence[Round]) -> Saving:
    """How many fewer annotations the uncertainty order needs than the random order's last round
    to reach the random order's last mean score."""
    curves = {curve.strategy: curve for curve in mean_curves(rounds)}
    found = Saving(
        target=None,
        random_annotations=None,
        uncertainty_annotations=None,
        saving=None,
        uncertainty_at_target=None,
        seeds=len({r["seed"] for r in rounds}),
        interpolated_annotations=None,
        interpolated_saving=None,
    )
    if RANDOM not in curves or UNCERTAINTY not in curves or not curves[RANDOM].annotations:
        return found
    chance, active = curves[RANDOM], curves[UNCERTAINTY]
    found["target"], found["random_annotations"] = chance.mean[-1], chance.annotations[-1]
    at = dict(zip(active.annotations, active.mean))
    found["uncertainty_at_target"] = at.get(chance.annotations[-1])
    target, last = chance.mean[-1], chance.annotations[-1]
    before: Optional[tuple[int, float]] = None
    for size, score in zip(active.annotations, active.mean):
        if score >= target - 1e-9:
            found["uncertainty_annotations"] = size
            found["saving"] = 1.0 - size / last
            crossing = float(size)
            if before is not None and score > before[1]:
                crossing = before[0] + (size - before[0]) * (target - before[1]) / (
                    score - before[1]
                )
            found["interpolated_annotations"] = round(crossing, 1)
            found["interpolated_saving"] = 1.0 - crossing / last
            break
        before = (size, score)
    return found


def draw_curves(rounds: Sequence[Round], *, title: str) -> bytes:
    """The learning curves as a PNG: each strategy's mean over the seeds, the band from the lowest
    to the highest seed, the random order's last score dotted."""
    import io

    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for curve in mean_curves(rounds):
        ax.plot(
            curve.annotations,
            curve.mean,
            marker="o",
            label=f"{curve.strategy} (mean of {curve.seeds} seed{'s' * (curve.seeds != 1)})",
        )
        if curve.seeds > 1:
            ax.fill_between(curve.annotations, curve.low, curve.high, alpha=0.2)
    target = saving(rounds)["target"]
    if target is not None and not math.isnan(target):
        ax.axhline(target, color="grey", linestyle=":", label="random, last round")
    figure = rounds[0]["figure"] if rounds else "score"
    ax.set_xlabel("annotations")
    ax.set_ylabel(f"test {figure}")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    return buffer.getvalue()
