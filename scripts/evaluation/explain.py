"""Why did the pipeline give a text its category scores, and its entities theirs: a weight per word.

    explain_texts(nlp, ["Python and SQL are required."], labels=["requirements"], max_evals=100)
    # -> [{"text": "Python and SQL are required.", "cats": {"requirements": 0.98, ...},
    #      "labels": {"requirements": [{"start": 0, "end": 6, "text": "Python", "weight": 0.21},
    #                                  ...]},
    #      "base": {"requirements": 0.2, ...}, "method": "lime", "evals": 100}]

Methods, both over the pipeline's scores, a word being a spaCy token of the pipeline's own
tokenizer (whitespace tokens left out) and removing a word deleting it and the whitespace after it:
- "lime" (the default): LIME, the lime package's weighted linear fit on copies of the text with
  random words deleted, the copies closest to the whole text weighing most (lime_weights): a
  word's effect near the text as it is. Its weights need not add up to anything.
- "shap": SHAP values, from the shap package's Partition explainer (Owen values over a hierarchy
  of the words): a word's effect averaged over many subsets of the other words.
The deletion check (scripts/bench/faithfulness.py, figures in BENCHMARKS.md) favours LIME: deleting
its top-weighted word lowers the score more than a random one in more texts.

A text with every word removed scores what the pipeline gives a text of one space: its scores with
no evidence (about 1/n each for n exclusive labels), kept in the explanation's "base". So a label's
SHAP values add up to its score on the whole text minus its base score; a positive weight pushed
the score up, a negative one down. Where the pipeline scores its entities (entity_confidence), each
entity of the whole text is one more output: its value in a masked copy is the score the pipeline
gives the same words with the same label where they now stand, 0 where one of its words is gone or
the entity is no longer found; so its words' SHAP values add up to its score.

Cost: up to max_evals copies of each text are scored by the pipeline (batched through nlp.pipe),
whatever the number of labels and entities (shap: texts of a few words need fewer; lime: max_evals
copies are drawn and each different one scored once), plus the text of one space once per call.
The scores come from nlp.pipe, or from a `score` function (the server passes one that goes through
its batcher).

Also here: delete_words (what removing words does to a text, shared with the deletion check in
scripts/bench/faithfulness.py) and the HTML that highlights the words (red: pushed the score up,
blue: down; the stronger the colour, the larger the weight; hovering shows the weight), used by
scripts.explain and the evaluation report.
"""

from __future__ import annotations

import html
import re
from typing import Any, Callable, Iterable, Mapping, NotRequired, Sequence, TypedDict

from spacy.language import Language
from spacy.tokens import Doc

from scripts.common.errors import UserError
from scripts.scoring.entity_confidence import entity_scores, has_entity_confidence
from scripts.scoring.pipeline import find_components

DEFAULT_MAX_EVALS = 200
WEIGHT_DIGITS = 6
BATCH_SIZE = 32  # masked texts per scoring call
NO_WORDS = " "  # what a text with every word removed is scored as (an empty text scores 0)
METHODS = ("lime", "shap")
DEFAULT_METHOD = "lime"
LIME_KERNEL_WIDTH = 25.0  # lime's LimeTextExplainer default
POSITIVE_RGB = "228,26,28"  # red: the word pushed the label's score up
NEGATIVE_RGB = "30,100,220"  # blue: down

# texts -> per text {"cats": {label: score}, "entities": [{"start", "end", "label", "score"}]}
Scores = Callable[[list[str]], list[Mapping[str, Any]]]


class WordWeight(TypedDict):
    start: int  # character offsets (code points) into the text
    end: int
    text: str
    weight: float  # how much the word moved the label's score (up > 0, down < 0)


class EntityExplanation(TypedDict):
    """A scored entity of the text and how much each word of the text moved its score."""

    start: int
    end: int
    label: str
    text: str
    score: float  # entity_confidence's score (shap: the words' weights add up to it)
    words: list[WordWeight]


class Explanation(TypedDict):
    """One text's explanation: its scores and, for each label explained, a weight per word."""

    text: str
    cats: dict[str, float]  # the pipeline's scores for the whole text
    labels: dict[str, list[WordWeight]]  # category label -> a weight per word
    base: dict[str, float]  # the scores with every word removed (shap: weights sum to cats - base)
    method: str  # "shap" or "lime"
    evals: int  # texts the pipeline scored to explain this one
    entities: NotRequired[list[EntityExplanation]]  # where the pipeline scores its entities


def cat_labels(nlp: Language) -> tuple[str, ...]:
    """The labels of the component that sets doc.cats last; UserError when there is none."""
    cats = find_components(nlp).cats
    if not cats:
        raise UserError(
            f"the pipeline has no text classifier (components: {', '.join(nlp.pipe_names)}); "
            "explanations cover category scores: use a pipeline with textcat or "
            "textcat_multilabel"
        )
    return tuple(nlp.get_pipe(cats[-1]).labels)


def check_labels(asked: Iterable[str] | None, *, known: Sequence[str]) -> list[str]:
    """The labels to explain, in the model's order: all of them for None; UserError for a label
    the model does not have, naming those it has."""
    if asked is None:
        return list(known)
    asked = list(asked)
    unknown = [label for label in asked if label not in known]
    if unknown:
        raise UserError(
            f"unknown label {', '.join(repr(label) for label in unknown)}; the model's labels "
            f"are: {', '.join(known)}"
        )
    return [label for label in known if label in asked]


def word_spans(nlp: Language, text: str) -> list[tuple[int, int]]:
    """(start, end) character offsets of the words of a text: spaCy tokens without the
    whitespace ones."""
    return [
        (token.idx, token.idx + len(token.text))
        for token in nlp.make_doc(text)
        if not token.is_space
    ]


def delete_words(text: str, spans: Sequence[tuple[int, int]], removed: Iterable[int]) -> str:
    """The text without the words at these indices of spans, each with the whitespace after it;
    "" when no word is left."""
    return shorten(text, spans, removed)[0]


def shorten(
    text: str, spans: Sequence[tuple[int, int]], removed: Iterable[int]
) -> tuple[str, list[int | None]]:
    """delete_words's text, and where each word now starts in it (None: deleted)."""
    gone = set(removed)
    if len(gone) >= len(spans):
        return "", [None] * len(spans)
    pieces = [text[: spans[0][0]]]
    position, starts = spans[0][0], []
    for i, (start, _) in enumerate(spans):
        if i in gone:
            starts.append(None)
            continue
        end = spans[i + 1][0] if i + 1 < len(spans) else len(text)
        pieces.append(text[start:end])
        starts.append(position)
        position += end - start
    return "".join(pieces), starts


def pipeline_scores(
    nlp: Language, *, entities: bool = False, batch_size: int = BATCH_SIZE
) -> Scores:
    """A Scores function over nlp.pipe: per text {"cats": {label: score}, "entities": [{"start",
    "end", "label", "score"}]} (scored entities only, and only with entities=True: otherwise the
    entity recognizers are off). An empty text gets zeros and no entities without running the
    pipeline (as in scripts.inference.predict)."""
    skip = [] if entities else list(find_components(nlp).ents)
    labels = cat_labels(nlp) if find_components(nlp).cats else ()

    def score(texts: list[str]) -> list[Mapping[str, Any]]:
        docs = iter(nlp.pipe([text for text in texts if text], batch_size=batch_size, disable=skip))
        empty = {"cats": {label: 0.0 for label in labels}, "entities": []}
        return [scored_record(next(docs), entities=entities) if text else empty for text in texts]

    return score


def scored_record(doc: Doc, *, entities: bool) -> dict[str, Any]:
    """What a Scores function gives for one doc (see pipeline_scores)."""
    found = []
    if entities:
        scores = entity_scores(doc) or []
        found = [
            {"start": e.start_char, "end": e.end_char, "label": e.label_, "score": s}
            for e, s in zip(doc.ents, scores)
            if s is not None
        ]
    return {"cats": dict(doc.cats), "entities": found}


def explain_texts(
    model: Language | Any,
    texts: Sequence[str],
    *,
    labels: Iterable[str] | None = None,
    max_evals: int = DEFAULT_MAX_EVALS,
    method: str = DEFAULT_METHOD,
    score: Scores | None = None,
) -> list[Explanation]:
    """One explanation per text, in order, for the given labels (None: every category label and,
    where the pipeline scores its entities, every entity), by method "lime" or "shap". model is
    a Language or anything with an .nlp (scripts.inference.predict.Predictor), e.g.
    explain_texts(nlp, ["We offer free lunch."], labels=["benefits"], max_evals=100)."""
    import numpy as np

    nlp: Language = getattr(model, "nlp", model)
    known = cat_labels(nlp) if find_components(nlp).cats else ()
    ent_known = entity_labels(nlp)
    if not known and not ent_known:
        raise UserError(
            f"the pipeline has nothing to explain (components: {', '.join(nlp.pipe_names)}): "
            "explanations cover category scores and entity scores; use a pipeline with textcat "
            "or textcat_multilabel, or entity scores: turn them on with "
            "nlp.enable_pipe('entity_confidence'), or add them with python -m "
            "scripts.add_confidence"
        )
    if method not in METHODS:
        raise UserError(f"unknown method '{method}'; pass one of: {', '.join(METHODS)}")
    chosen = check_labels(labels, known=(*known, *ent_known))
    chosen_cats = [label for label in known if label in chosen]
    chosen_ents = [label for label in ent_known if label in chosen]
    if max_evals < 4:
        raise UserError(f"max_evals is {max_evals}; pass at least 4 (scores per text)")
    score = score or pipeline_scores(nlp, entities=bool(chosen_ents))

    def cats_array(rows: Sequence[Mapping[str, Any]]) -> Any:
        return np.array([[float(row["cats"].get(label, 0.0)) for label in known] for row in rows])

    base = cats_array(score([NO_WORDS]))[0] if texts else None
    explanations = []
    for text in texts:
        spans = word_spans(nlp, text)
        (whole,) = score([text])
        full = cats_array([whole])[0]
        ents = [e for e in whole.get("entities", []) if e["label"] in chosen_ents]
        ent_words = [words_within(spans, e["start"], e["end"]) for e in ents]
        outputs = len(known) + len(ents)
        evals = 1

        def evaluate(keeps: Sequence[str]) -> Any:
            """The outputs (category scores, then each entity's score) of copies of the text
            that keep the words marked "1" ("0": deleted)."""
            nonlocal evals
            evals += len(keeps)
            copies = [
                shorten(text, spans, [i for i, kept in enumerate(keep) if kept == "0"])
                for keep in keeps
            ]
            # with every word gone the text is "" and scores as NO_WORDS: the base
            rows = score([copy or NO_WORDS for copy, _ in copies])
            ent_values = [
                [
                    entity_value(row, starts, entity=e, words=w, spans=spans)
                    for e, w in zip(ents, ent_words)
                ]
                for row, (_, starts) in zip(rows, copies)
            ]
            return np.hstack([cats_array(rows), np.array(ent_values).reshape(len(rows), len(ents))])

        if len(spans) <= 1:  # nothing to share out: the one word made the whole difference
            one = np.concatenate([full - base, [e["score"] for e in ents]])
            weights = one[None, :] if spans else np.zeros((0, outputs))
        elif method == "shap":
            weights = shap_weights(evaluate, spans=spans, text=text, max_evals=max_evals)
        else:
            weights = lime_weights(evaluate, words=len(spans), samples=max_evals - 1)
        weights = np.asarray(weights, dtype=float).reshape(len(spans), outputs)

        def word_weights(column: int) -> list[WordWeight]:
            return [
                WordWeight(
                    start=start,
                    end=end,
                    text=text[start:end],
                    weight=round(float(weights[i, column]), WEIGHT_DIGITS),
                )
                for i, (start, end) in enumerate(spans)
            ]

        explanation = Explanation(
            text=text,
            cats={label: round(float(full[known.index(label)]), WEIGHT_DIGITS) for label in known},
            labels={label: word_weights(known.index(label)) for label in chosen_cats},
            base={label: round(float(base[known.index(label)]), WEIGHT_DIGITS) for label in known},
            method=method,
            evals=evals,
        )
        if chosen_ents:
            explanation["entities"] = [
                EntityExplanation(
                    start=e["start"],
                    end=e["end"],
                    label=e["label"],
                    text=text[e["start"] : e["end"]],
                    score=round(float(e["score"]), WEIGHT_DIGITS),
                    words=word_weights(len(known) + j),
                )
                for j, e in enumerate(ents)
            ]
        explanations.append(explanation)
    return explanations


def shap_weights(
    evaluate: Callable[[Sequence[str]], Any],
    *,
    spans: Sequence[tuple[int, int]],
    text: str,
    max_evals: int,
) -> Any:
    """SHAP values, words x outputs: shap's Partition explainer over the words, with a masker
    that deletes the masked words (word_masker)."""
    import shap

    def model_fn(kept: Any) -> Any:
        return evaluate([str(keep) for keep in kept])

    explainer = shap.explainers.Partition(model_fn, word_masker(shap, spans=spans, text=text))
    # shap spends one more than asked, and the whole text was scored before
    result = explainer([text], max_evals=max_evals - 2, batch_size=BATCH_SIZE, silent=True)
    return result.values[0]


def lime_weights(
    evaluate: Callable[[Sequence[str]], Any], *, words: int, samples: int, seed: int = 0
) -> Any:
    """LIME weights, words x outputs: the lime package's weighted linear fit (LimeBase: ridge,
    every word a feature) on `samples` copies of the text, the first one whole and each other
    with a random number (1 to all) of random words deleted, weighted by their cosine distance to
    the whole text with lime's text kernel (width 25): LimeTextExplainer's recipe, deleting words
    instead of writing a mask token. Copies that come out the same are scored once."""
    import numpy as np
    from lime.lime_base import LimeBase
    from sklearn.metrics.pairwise import cosine_distances

    rng = np.random.RandomState(seed)
    data = np.ones((samples, words), dtype=int)
    for row, size in zip(data[1:], rng.randint(1, words + 1, samples - 1)):
        row[rng.choice(words, size, replace=False)] = 0
    keeps = ["".join("1" if kept else "0" for kept in row) for row in data]
    unique = list(dict.fromkeys(keeps))
    values = dict(zip(unique, evaluate(unique)))
    outputs = np.array([values[keep] for keep in keeps])
    distances = cosine_distances(data, data[:1]).ravel() * 100
    lime = LimeBase(lambda d: np.sqrt(np.exp(-(d**2) / LIME_KERNEL_WIDTH**2)), random_state=seed)
    weights = np.zeros((words, outputs.shape[1]))
    for column in range(outputs.shape[1]):
        _, found, _, _ = lime.explain_instance_with_data(
            data, outputs, distances, column, words, feature_selection="none"
        )
        for feature, weight in found:
            weights[feature, column] = weight
    return weights


def entity_labels(nlp: Language) -> tuple[str, ...]:
    """The entity labels whose entities the pipeline scores (entity_confidence), else ()."""
    if not has_entity_confidence(nlp):
        return ()
    return tuple(label for name in find_components(nlp).ents for label in nlp.get_pipe(name).labels)


def words_within(spans: Sequence[tuple[int, int]], start: int, end: int) -> list[int]:
    """The indices of the words inside the characters start:end."""
    return [i for i, (s, e) in enumerate(spans) if s >= start and e <= end]


def entity_value(
    record: Mapping[str, Any],
    starts: Sequence[int | None],
    *,
    entity: Mapping[str, Any],
    words: Sequence[int],
    spans: Sequence[tuple[int, int]],
) -> float:
    """The score of an entity of the whole text in a copy with some words deleted (starts: where
    each word now starts, None if deleted, as shorten gives them): the score the pipeline gives
    the same words with the same label where they now stand, 0 where one of its words is gone or
    the pipeline no longer finds it."""
    first = starts[words[0]] if words else None
    if first is None or any(starts[i] is None for i in words):
        return 0.0
    start = first + entity["start"] - spans[words[0]][0]
    end = start + entity["end"] - entity["start"]
    for found in record.get("entities", []):
        if (found["start"], found["end"], found["label"]) == (start, end, entity["label"]):
            return float(found.get("score", 0.0))
    return 0.0


def word_masker(shap: Any, *, spans: Sequence[tuple[int, int]], text: str) -> Any:
    """A shap Text masker over the given words whose masked copy of the text is the string of
    which words it keeps, e.g. "1011": the model deletes the others with delete_words, which keeps
    every other character as it is (shap's own masker writes "..." and squeezes whitespace)."""

    def tokenize(s: str, return_offsets_mapping: bool = True) -> dict[str, Any]:
        # shap also tokenizes "" and its mask token: any other string is split at whitespace
        found = spans if s == text else [m.span() for m in re.finditer(r"\S+", s)]
        return {"input_ids": list(range(len(found))), "offset_mapping": list(found)}

    class WordMasker(shap.maskers.Text):
        # the model gets which words a copy keeps ("1" per kept word, "0" per deleted) and
        # deletes the others itself (delete_words)
        def __call__(self, mask: Any, s: str) -> Any:
            import numpy as np

            keep = np.broadcast_to(np.asarray(mask, dtype=bool), (len(spans),))
            return (np.array(["".join("1" if kept else "0" for kept in keep)]),)

    # "..." is a mask token the masker needs to exist; WordMasker deletes words instead.
    return WordMasker(tokenize, mask_token="...", collapse_mask_token=False)


# --------------------------------------------------------------------------------------------------
# HTML

CSS = """
.explained{white-space:pre-wrap;line-height:1.9;border:1px solid #e4e4e4;border-radius:.4em;
padding:.3em .8em;margin:.3em 0 1em}.explained .w{border-radius:.2em;padding:.05em 0}
.explained-label{font-size:.9em;color:#444;margin-top:.6em}.explained-label b{color:#222}
.explain-legend span{padding:.1em .4em;border-radius:.3em;margin-right:.4em}
"""
CSP = "default-src 'none'; style-src 'unsafe-inline'"


def highlight_html(text: str, words: Sequence[WordWeight], *, scale: float | None = None) -> str:
    """The text as escaped HTML with each word coloured by its weight (red up, blue down, alpha
    by |weight| / scale, default the largest |weight| of these words); the title shows the
    weight."""
    scale = scale or max((abs(w["weight"]) for w in words), default=0.0) or 1.0
    parts, position = [], 0
    for word in words:
        parts.append(html.escape(text[position : word["start"]]))
        weight = word["weight"]
        alpha = round(min(1.0, abs(weight) / scale) * 0.8, 3)
        rgb = POSITIVE_RGB if weight >= 0 else NEGATIVE_RGB
        parts.append(
            f'<span class="w" style="background:rgba({rgb},{alpha})" '
            f'title="{weight:+.4f}">{html.escape(text[word["start"] : word["end"]])}</span>'
        )
        position = word["end"]
    parts.append(html.escape(text[position:]))
    return f'<div class="explained">{"".join(parts)}</div>'


def explanation_html(explanation: Explanation, *, notes: Mapping[str, str] | None = None) -> str:
    """One text's explanations, a highlighted copy per label (the same colour scale for all of
    them); notes adds a word after a label's name (e.g. "predicted", "gold")."""
    notes = notes or {}
    scale = max(
        (abs(w["weight"]) for words in explanation["labels"].values() for w in words), default=0.0
    )
    parts = []
    for label, words in explanation["labels"].items():
        score, base = explanation["cats"].get(label), explanation["base"].get(label)
        note = f" ({html.escape(notes[label])})" if label in notes else ""
        shown = f", score {score:.3f}" if score is not None else ""
        shown += f" ({base:.3f} with no words)" if score is not None and base is not None else ""
        parts.append(
            f'<div class="explained-label"><b>{html.escape(label)}</b>{note}{shown}</div>'
            + highlight_html(explanation["text"], words, scale=scale)
        )
    for entity in explanation.get("entities", []):
        parts.append(
            f'<div class="explained-label">entity <b>{html.escape(entity["text"])}</b> '
            f"({html.escape(entity['label'])}), score {entity['score']:.3f}</div>"
            + highlight_html(explanation["text"], entity["words"])
        )
    return "".join(parts)


def legend_html() -> str:
    return (
        '<p class="explain-legend">'
        f'<span style="background:rgba({POSITIVE_RGB},.6)">pushed the score up</span>'
        f'<span style="background:rgba({NEGATIVE_RGB},.6)">pushed it down</span>'
        "hover over a word for its weight</p>"
    )


def render_page(explanations: Sequence[Explanation], *, title: str) -> str:
    """A self-contained HTML page (no scripts, no remote assets) with every explanation."""
    body = "".join(
        f"<h2>Text {i}</h2>{explanation_html(explanation)}"
        for i, explanation in enumerate(explanations, 1)
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>"
        'body{font-family:system-ui,"DejaVu Sans",sans-serif;margin:2em auto;max-width:70em;'
        f"padding:0 1em;color:#222}}{CSS}</style></head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>{legend_html()}{body}\n</body></html>\n"
    )
