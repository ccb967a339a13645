"""Throughput of a pipeline against its own transformer run bare: words/s, ratio, peak memory.

    result = benchmark(model="training/model-best", texts=sample_texts())
    result["ratio"]  # pipeline words/s over bare transformer words/s

The bare pass is the physical limit of the pipeline: the same Hugging Face model and tokenizer
object the pipeline's transformer component holds, on the same texts, in the same batches and the
same length-sorted sub-batches of at most `max_batch_items` padded tokens (spacy-transformers'
rule, on spaCy token counts made beforehand), in the same process and threads, under
torch.inference_mode, without spaCy: the ratio is what spaCy adds around the forward passes (its
tokenizer, alignment, the NER and the classifier). Texts longer than the span getter's window cost
the pipeline more (overlapping windows) and are cut at the model's maximum length in the bare
pass. A pipeline whose transformer runs on ONNX Runtime holds no PyTorch model: its bare pass runs
the PyTorch float32 model of the same architecture, built from the same config with random weights
(the time of a forward pass does not depend on the weights); float32_bare=True does the same for
any pipeline, so that an int8 build's ratio is its speed over float32 in one run. Both are timed
`repeats` times, taking turns batch by batch, and each batch counts with its fastest time
(timeit's rule: load from elsewhere only ever adds time).
"""

from __future__ import annotations

import functools
import resource
import time
from pathlib import Path
from typing import Any, Callable, Mapping, NotRequired, Optional, Sequence, TypedDict

from scripts.common.errors import UserError
from scripts.common.files import PROJECT_ROOT
from scripts.inference.predict import read_records
from scripts.scoring.pipeline import load_pipeline

DEVICES = ("cpu", "gpu")


class BreakdownRow(TypedDict):
    components: str  # "transformer+ner": the pipeline cut after the last one
    words_per_s: float
    ratio: float  # against the bare transformer


class BenchmarkResult(TypedDict):
    """The JSON line scripts.benchmark prints."""

    model: str
    device: str
    threads: int
    texts: int
    words: int
    batch_size: int
    max_batch_items: int
    repeats: int
    pipeline_words_per_s: float
    transformer_words_per_s: float
    ratio: float
    peak_memory_mb: float
    overrides: dict[str, Any]
    bare_model: NotRequired[str]  # where the bare pass is not the pipeline's own model
    baseline: NotRequired[str]  # with a baseline pipeline
    baseline_words_per_s: NotRequired[float]
    speedup: NotRequired[float]
    breakdown: NotRequired[list[BreakdownRow]]  # with breakdown=True


def sample_texts(*, assets: Path = PROJECT_ROOT / "assets") -> list[str]:
    """The sample corpus's texts (job postings and their sentences, every split), or generated
    ones without it."""
    from scripts.corpus.readers import READERS, Log, ReadOptions

    texts: list[str] = []
    for pattern, fmt in (("*.tsv", "conll"), ("*.csv", "csv")):
        for path in sorted(assets.glob(pattern)):
            lines = enumerate(path.read_text(encoding="utf8").split("\n"), 1)
            texts += [
                doc.text
                for doc in READERS[fmt].read(lines, options=ReadOptions(), log=Log())
                if doc.text.strip()
            ]
    return texts or generated_texts()


def generated_texts(n: int = 400) -> list[str]:
    """Job-posting-like sentences and paragraphs, deterministic, for a checkout without assets/."""
    skills = [
        "Python",
        "SQL",
        "Excel",
        "Kubernetes",
        "customer service",
        "forklift driving",
        "bookkeeping",
        "React",
    ]
    sentences = [
        "We are looking for a {role} with {years} years of experience in {a} and {b}.",
        "You will own the {a} roadmap and work closely with the {team} team.",
        "A degree in {field} or equivalent experience is required.",
        "We offer {days} days of paid leave, a pension plan and flexible hours.",
        "Send your CV and a short cover letter before {month} {day}.",
    ]
    roles = [
        "data analyst",
        "warehouse operative",
        "frontend developer",
        "accountant",
        "nurse",
        "site engineer",
    ]
    texts = []
    for i in range(n):
        fill = dict(
            role=roles[i % len(roles)],
            years=1 + i % 7,
            a=skills[i % len(skills)],
            b=skills[(i * 3 + 1) % len(skills)],
            team=["sales", "platform", "finance"][i % 3],
            field=["computer science", "economics", "nursing"][i % 3],
            days=20 + i % 11,
            month=["March", "June", "November"][i % 3],
            day=1 + i % 28,
        )
        count = 1 if i % 3 else 6  # two thirds single sentences, a third whole paragraphs
        texts.append(
            " ".join(sentences[(i + k) % len(sentences)].format(**fill) for k in range(count))
        )
    return texts


def load_texts(path: Optional[Path], *, text_field: str = "text") -> list[str]:
    texts = (
        sample_texts()
        if path is None
        else [record[text_field] for record in read_records(path, text_field=text_field)]
    )
    texts = [text for text in texts if text.strip()]
    if not texts:
        raise UserError(
            f"{path}: no texts to measure on; pass a file with at least one non-empty text"
        )
    return texts


def bare_transformer(nlp: Any, *, float32: bool = False) -> tuple[Any, Any, int, bool]:
    """(Hugging Face model, tokenizer, max_batch_items, whether the model is the pipeline's own) of
    the pipeline's transformer component, through spacy-transformers' TransformerModel properties
    and the component's cfg; for an ONNX transformer, or any with float32, the float32 PyTorch
    model of the same config (reference_model)."""
    names = [name for name in nlp.pipe_names if nlp.get_pipe_meta(name).factory == "transformer"]
    if not names:
        raise UserError(
            f"the pipeline ({', '.join(nlp.pipe_names)}) has no spacy-transformers "
            "'transformer' component to compare with"
        )
    component = nlp.get_pipe(names[0])
    model = component.model.transformer
    own = model is not None and not float32
    if model is None:
        model = reference_model(component.model)
    elif float32:  # e.g. an int8 model: its config, float32 layers
        from transformers import AutoModel

        model = AutoModel.from_config(model.config).eval()
    return model, component.model.tokenizer, int(component.cfg["max_batch_items"]), own


REFERENCE = "PyTorch float32, same config, random weights"


def reference_model(transformer_model: Any) -> Any:
    """The PyTorch float32 Hugging Face model of the config an ONNX transformer was exported from,
    with random weights: the bare pass an ONNX pipeline is measured against."""
    from transformers import AutoConfig, AutoModel

    from scripts.common.spacy_internals import hf_shim

    config = getattr(hf_shim(transformer_model), "hf_config", None)
    if not config:
        raise UserError(
            "the pipeline's transformer holds neither a PyTorch model nor the config of one; "
            "benchmark the float32 pipeline (training/model-best) or an ONNX build"
        )
    # As spacy-transformers rebuilds a saved model: from its config.
    return AutoModel.from_config(AutoConfig.for_model(**config)).eval()


def bare_pass(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    lengths: Sequence[int],
    batch_size: int,
    max_batch_items: int,
    device: str,
) -> None:
    """Tokenize and run the forward pass over all texts without spaCy, in the sub-batches the
    pipeline's transformer makes: batch_size texts at a time, grouped by length (lengths: spaCy
    tokens per text, counted beforehand) into at most max_batch_items padded tokens."""
    import torch

    max_length = min(int(tokenizer.model_max_length), int(model.config.max_position_embeddings))
    # thinc's predict puts the model back in train mode (dropout on) after each pipeline batch
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = list(texts[start : start + batch_size])
            for group in length_groups(
                lengths[start : start + batch_size], max_items=max_batch_items
            ):
                encoded = tokenizer(
                    [batch[i] for i in group],
                    truncation=True,
                    max_length=max_length,
                    padding=True,
                    return_tensors="pt",
                )
                model(
                    input_ids=encoded["input_ids"].to(device),
                    attention_mask=encoded["attention_mask"].to(device),
                )
    if device == "cuda":
        torch.cuda.synchronize()


def length_groups(lengths: Sequence[int], *, max_items: int) -> list[list[int]]:
    """Indices sorted by length, cut where the padded size (longest x count) would pass max_items:
    the rule of spacy-transformers' batch_by_length, e.g.
    length_groups([5, 50, 6], max_items=100) -> [[0, 2], [1]]."""
    groups: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        if groups and lengths[i] * (len(groups[-1]) + 1) <= max_items:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def timed(run: Callable[[list[str]], Any], batch: list[str]) -> float:
    started = time.perf_counter()
    run(batch)
    return time.perf_counter() - started


def peak_memory_mb(device: str) -> float:
    if device == "cuda":
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def benchmark(
    *,
    model: str,
    texts: list[str],
    batch_size: Optional[int] = None,
    device: str = "cpu",
    repeats: int = 5,
    overrides: Optional[Mapping[str, Any]] = None,
    baseline: Optional[str] = None,
    breakdown: bool = False,
    float32_bare: bool = False,
) -> BenchmarkResult:
    """Time nlp.pipe and the bare forward pass on the same texts (and nlp.pipe of a baseline
    pipeline, e.g. the float32 one an int8 build came from); return the figures benchmark prints.
    With breakdown, also time the pipeline cut after each component (transformer; transformer and
    ner; ...), so that the words/s lost to each component after the transformer can be read off.
    With float32_bare, the bare pass runs the float32 model of the transformer's config (REFERENCE)
    even where the pipeline holds another (an int8 build)."""
    import torch

    from scripts.common.device import activate, resolve_device

    if device not in DEVICES:
        raise UserError(f"--device {device} is not one of: {', '.join(DEVICES)}")
    activate(resolve_device("0" if device == "gpu" else "-1"))
    nlp = load(model, overrides=overrides)
    other = load(baseline, overrides=overrides) if baseline else None
    hf_model, tokenizer, max_batch_items, own_model = bare_transformer(nlp, float32=float32_bare)
    torch_device = "cuda" if device == "gpu" else "cpu"
    size = batch_size or nlp.batch_size
    words = sum(len(text.split()) for text in texts)

    batches = [texts[start : start + size] for start in range(0, len(texts), size)]
    # spaCy token counts for the bare pass's sub-batches, made untimed
    lengths = {id(batch): [len(doc) for doc in nlp.tokenizer.pipe(batch)] for batch in batches}
    runs: dict[str, Callable[[list[str]], Any]] = {
        "pipeline": lambda batch: list(nlp.pipe(batch, batch_size=size)),
        "bare": lambda batch: bare_pass(
            hf_model,
            tokenizer,
            batch,
            lengths=lengths[id(batch)],
            batch_size=size,
            max_batch_items=max_batch_items,
            device=torch_device,
        ),
    }
    if other is not None:
        runs["baseline"] = lambda batch: list(other.pipe(batch, batch_size=size))
    prefixes = [nlp.pipe_names[:end] for end in range(1, len(nlp.pipe_names))] if breakdown else []
    for names in prefixes:
        runs[f"upto:{names[-1]}"] = functools.partial(pipe_prefix, nlp, names, size=size)
    for batch in batches:  # warm up: allocations, lazy inits, caches
        for run in runs.values():
            run(batch)
    fastest = {name: [float("inf")] * len(batches) for name in runs}
    for _ in range(repeats):
        # batch by batch in turn, so that load from elsewhere hits all alike
        for i, batch in enumerate(batches):
            for name, run in runs.items():
                fastest[name][i] = min(fastest[name][i], timed(run, batch))
    seconds = {name: sum(times) for name, times in fastest.items()}
    pipe_wps, bare_wps = (words / seconds[name] for name in ("pipeline", "bare"))
    result = BenchmarkResult(
        model=model,
        device=device,
        threads=torch.get_num_threads(),
        texts=len(texts),
        words=words,
        batch_size=size,
        max_batch_items=max_batch_items,
        repeats=repeats,
        pipeline_words_per_s=round(pipe_wps, 1),
        transformer_words_per_s=round(bare_wps, 1),
        ratio=round(pipe_wps / bare_wps, 3),
        peak_memory_mb=round(peak_memory_mb(torch_device), 1),
        overrides=dict(overrides or {}),
    )
    if not own_model:
        result["bare_model"] = REFERENCE
    if baseline:  # `other` is loaded
        baseline_wps = words / seconds["baseline"]
        result["baseline"] = baseline
        result["baseline_words_per_s"] = round(baseline_wps, 1)
        result["speedup"] = round(pipe_wps / baseline_wps, 3)
    if prefixes:
        cuts = [("+".join(names), words / seconds[f"upto:{names[-1]}"]) for names in prefixes]
        result["breakdown"] = [
            BreakdownRow(
                components=components,
                words_per_s=round(wps, 1),
                ratio=round(wps / bare_wps, 3),
            )
            for components, wps in cuts + [("+".join(nlp.pipe_names), pipe_wps)]
        ]
    return result


def pipe_prefix(nlp: Any, names: list[str], batch: list[str], *, size: int) -> list[Any]:
    """nlp.pipe with only the components `names` (a prefix of the pipeline, so listeners keep
    their transformer)."""
    with nlp.select_pipes(enable=names):
        return list(nlp.pipe(batch, batch_size=size))


def load(model: str, *, overrides: Optional[Mapping[str, Any]]) -> Any:
    """The pipeline with config overrides applied, also to settings its components keep in cfg."""
    nlp = load_pipeline(model, overrides=overrides)
    # settings a component keeps in its saved cfg win over the config
    for key, value in (overrides or {}).items():
        section, name, *setting = key.split(".")
        if (
            section == "components"
            and len(setting) == 1
            and name in nlp.pipe_names
            and setting[0] in nlp.get_pipe(name).cfg
        ):
            nlp.get_pipe(name).cfg[setting[0]] = value
    return nlp
