"""scripts.scoring.metrics against figures counted by hand on fixtures small enough to count."""

from typing import Dict, List, Optional, Tuple

import pytest
import spacy
from hypothesis import given, settings
from hypothesis import strategies as st
from spacy.tokens import Doc, Span

from scripts.scoring.metrics import (
    Tasks,
    calibration_error,
    evaluate_docs,
    f_at,
    f_by_cut,
    find_threshold,
    format_score,
    reliability,
    roc_auc,
)

NLP = spacy.blank("en")
approx = pytest.approx


def make_doc(
    text: str, ents: Optional[List[Tuple[str, str]]] = None, cats: Optional[Dict[str, float]] = None
) -> Doc:
    """ents: (surface string, label), each found by its first occurrence; None leaves ents
    unannotated."""
    doc = NLP(text)
    if ents is not None:
        spans = [
            doc.char_span(text.index(s), text.index(s) + len(s), label=label) for s, label in ents
        ]
        doc.set_ents(spans, default="outside")
    doc.cats = dict(cats or {})
    return doc


# 3 docs, 4 gold entities: Alice right, Bob wrong label, Paris missed, Carol right, Acme spurious;
# the third doc has categories only, so it is skipped for entities.
ENT_GOLDS = [
    make_doc("Alice met Bob in Paris.", [("Alice", "PER"), ("Bob", "PER"), ("Paris", "LOC")]),
    make_doc("Acme hired Carol.", [("Carol", "PER")]),
    make_doc("I love it.", cats={"POS": 1.0, "NEG": 0.0}),
]
ENT_PREDS = [
    make_doc("Alice met Bob in Paris.", [("Alice", "PER"), ("Bob", "ORG")]),
    make_doc("Acme hired Carol.", [("Acme", "ORG"), ("Carol", "PER")]),
    make_doc("I love it.", [("love", "ORG")]),  # not counted: no entity annotation in gold
]
ENT_TASKS = Tasks(ent_labels=("LOC", "ORG", "PER"))


def test_entities_overall_and_per_label_by_hand():
    ents = evaluate_docs(golds=ENT_GOLDS, preds=ENT_PREDS, tasks=ENT_TASKS).metrics["ents"]
    # tp 2 (Alice, Carol), fp 2 (Bob/ORG, Acme/ORG), fn 2 (Bob/PER, Paris/LOC)
    assert (ents["p"], ents["r"], ents["f"]) == (approx(0.5), approx(0.5), approx(0.5))
    assert ents["errors"] == {"missed": 1, "spurious": 1, "wrong_label": 1, "wrong_span": 0}
    assert ents["per_label"]["PER"] == {
        "p": approx(1.0),
        "r": approx(2 / 3),
        "f": approx(0.8),
        "support": 3,
    }
    assert ents["per_label"]["ORG"] == {"p": 0.0, "r": 0.0, "f": 0.0, "support": 0}
    assert ents["per_label"]["LOC"] == {"p": 0.0, "r": 0.0, "f": 0.0, "support": 1}
    assert (ents["n_docs"], ents["n_skipped"]) == (2, 1)
    assert ents["tokenization"] == "model"


def test_entity_errors_are_listed_worst_first_with_kinds():
    errors = evaluate_docs(golds=ENT_GOLDS, preds=ENT_PREDS, tasks=ENT_TASKS).details["ent_errors"]
    assert [e["n_errors"] for e in errors] == [2, 1]
    first = errors[0]
    assert [(g["label"], g["kind"]) for g in first["gold"]] == [
        ("PER", "correct"),
        ("PER", "wrong_label"),
        ("LOC", "missed"),
    ]
    assert [(p["label"], p["kind"], p.get("gold_label")) for p in first["pred"]] == [
        ("PER", "correct", None),
        ("ORG", "wrong_label", "PER"),
    ]
    assert first["text"][first["gold"][2]["start_char"] : first["gold"][2]["end_char"]] == "Paris"
    assert [p["kind"] for p in errors[1]["pred"]] == ["spurious", "correct"]


def test_wrong_span_counts_as_one_false_positive_and_one_false_negative():
    gold = make_doc("Bank of America rose.", [("Bank of America", "ORG")])
    pred = make_doc("Bank of America rose.", [("America", "ORG")])
    ents = evaluate_docs(golds=[gold], preds=[pred], tasks=Tasks(ent_labels=("ORG",))).metrics[
        "ents"
    ]
    assert ents["errors"] == {"missed": 0, "spurious": 0, "wrong_label": 0, "wrong_span": 1}
    assert (ents["p"], ents["r"]) == (0.0, 0.0)


def test_prediction_on_other_tokenization_is_aligned_to_gold_tokens():
    gold = Doc(NLP.vocab, words=["I", "visited", "New", "York."], spaces=[True, True, True, False])
    gold.set_ents([gold.char_span(10, 19, label="GPE")], default="outside")
    pred = make_doc("I visited New York.", [("New York", "GPE")])  # tokens New, York, .
    assert len(pred) == 5
    ents = evaluate_docs(golds=[gold], preds=[pred], tasks=Tasks(ent_labels=("GPE",))).metrics[
        "ents"
    ]
    assert ents["f"] == approx(1.0)


def test_predictions_on_unannotated_tokens_and_unknown_labels_are_not_scored():
    gold = NLP("Zed of Hooli saw Bo.")
    gold.set_ents(
        [Span(gold, 0, 1, "PER"), Span(gold, 2, 3, "COMPANY")],
        missing=[gold[4:5]],
        default="outside",
    )
    assert gold[4].ent_iob == 0 and gold.has_annotation("ENT_IOB")
    pred = make_doc("Zed of Hooli saw Bo.", [("Zed", "PER"), ("Hooli", "ORG"), ("Bo", "PER")])
    ents = evaluate_docs(
        golds=[gold], preds=[pred], tasks=Tasks(ent_labels=("ORG", "PER"))
    ).metrics["ents"]
    assert ents["unknown_labels"] == {"COMPANY": 1}
    assert (ents["p"], ents["r"], ents["f"]) == (approx(1.0), approx(1.0), approx(1.0))
    assert ents["per_label"] == {
        "PER": {"p": approx(1.0), "r": approx(1.0), "f": approx(1.0), "support": 1}
    }


def test_no_entity_annotation_anywhere_gives_empty_scores():
    docs = [make_doc("I love it.", cats={"POS": 1.0})]
    ents = evaluate_docs(golds=docs, preds=docs, tasks=ENT_TASKS).metrics["ents"]
    assert (ents["p"], ents["f"], ents["n_docs"], ents["n_skipped"]) == (None, None, 0, 1)


# Exclusive textcat, labels POS NEG NEU: 4 docs with categories (3 right), 1 with entities only
# (skipped).
CAT_GOLDS = [
    make_doc("a", cats={"POS": 1, "NEG": 0, "NEU": 0}),
    make_doc("b", cats={"POS": 0, "NEG": 1, "NEU": 0}),
    make_doc("c", cats={"POS": 0, "NEG": 0, "NEU": 1}),
    make_doc("d", cats={"POS": 0, "NEG": 1, "NEU": 0}),
    make_doc("e", ents=[]),
]
CAT_SCORES = [
    {"POS": 0.6, "NEG": 0.35, "NEU": 0.05},  # POS right
    {"POS": 0.6, "NEG": 0.3, "NEU": 0.1},  # NEG predicted POS
    {"POS": 0.1, "NEG": 0.2, "NEU": 0.7},  # NEU right
    {"POS": 0.2, "NEG": 0.5, "NEU": 0.3},  # NEG right
    {"POS": 0.9, "NEG": 0.05, "NEU": 0.05},  # not counted
]
CAT_PREDS = [make_doc(g.text, cats=s) for g, s in zip(CAT_GOLDS, CAT_SCORES)]
EXCLUSIVE = Tasks(cat_labels=("POS", "NEG", "NEU"), exclusive=True)


def test_exclusive_textcat_by_hand():
    tc = evaluate_docs(golds=CAT_GOLDS, preds=CAT_PREDS, tasks=EXCLUSIVE).metrics["textcat"]
    assert tc["mode"] == "exclusive"
    assert tc["accuracy"] == approx(0.75)
    assert tc["confusion"] == {
        "labels": ["POS", "NEG", "NEU"],
        "matrix": [[1, 0, 0], [1, 1, 0], [0, 0, 1]],
    }
    pos, neg, neu = (tc["per_label"][k] for k in ("POS", "NEG", "NEU"))
    assert (pos["p"], pos["r"], pos["f"], pos["support"]) == (
        approx(0.5),
        approx(1.0),
        approx(2 / 3),
        1,
    )
    assert (neg["p"], neg["r"], neg["f"], neg["support"]) == (
        approx(1.0),
        approx(0.5),
        approx(2 / 3),
        2,
    )
    assert (neu["p"], neu["r"], neu["f"], neu["support"]) == (
        approx(1.0),
        approx(1.0),
        approx(1.0),
        1,
    )
    assert tc["macro_f"] == approx(7 / 9)
    assert tc["micro_f"] == approx(0.75)
    # POS: positive 0.6 vs negatives 0.6 (tie, half), 0.1, 0.2 -> 2.5/3;
    # NEG: 0.3, 0.5 vs 0.35, 0.2 -> 3/4
    assert (pos["auc"], neg["auc"], neu["auc"]) == (approx(2.5 / 3), approx(0.75), approx(1.0))
    assert tc["macro_auc"] == approx((2.5 / 3 + 0.75 + 1.0) / 3)
    assert (tc["n_docs"], tc["n_skipped"], tc["skipped"]["no_annotation"]) == (4, 1, 1)
    assert tc["thresholds"] is None


def test_exclusive_misclassified_lists_the_wrong_doc():
    errors = evaluate_docs(golds=CAT_GOLDS, preds=CAT_PREDS, tasks=EXCLUSIVE).details["cat_errors"]
    assert [(e["text"], e["gold"], e["pred"]) for e in errors] == [("b", ["NEG"], ["POS"])]
    assert errors[0]["margin"] == approx(0.3)


def test_exclusive_skips_unknown_and_ambiguous_gold_labels():
    golds = [make_doc("x", cats={"POS": 0, "WEATHER": 1}), make_doc("y", cats={"POS": 1, "NEG": 1})]
    preds = [make_doc("x", cats={"POS": 0.9}), make_doc("y", cats={"POS": 0.9})]
    tc = evaluate_docs(golds=golds, preds=preds, tasks=EXCLUSIVE).metrics["textcat"]
    assert tc["skipped"] == {"no_annotation": 0, "unknown_label": 1, "not_one_label": 1}
    assert tc["unknown_labels"] == {"WEATHER": 1}
    assert (tc["n_docs"], tc["accuracy"], tc["macro_f"]) == (0, None, None)


# Multi-label, labels A B, model threshold 0.5; the 4th doc is annotated for A only, the 5th not at
# all.
ML_GOLDS = [
    make_doc("m1", cats={"A": 1, "B": 0}),
    make_doc("m2", cats={"A": 1, "B": 1}),
    make_doc("m3", cats={"A": 0, "B": 1}),
    make_doc("m4", cats={"A": 0}),
    make_doc("m5"),
]
ML_SCORES = [
    {"A": 0.9, "B": 0.4},
    {"A": 0.4, "B": 0.8},
    {"A": 0.65, "B": 0.55},
    {"A": 0.2, "B": 0.9},
    {"A": 1, "B": 1},
]
ML_PREDS = [make_doc(g.text, cats=s) for g, s in zip(ML_GOLDS, ML_SCORES)]
MULTI = Tasks(cat_labels=("A", "B"), exclusive=False, threshold=0.5)


def test_multilabel_textcat_by_hand():
    tc = evaluate_docs(golds=ML_GOLDS, preds=ML_PREDS, tasks=MULTI).metrics["textcat"]
    a, b = tc["per_label"]["A"], tc["per_label"]["B"]
    # A: m1 tp, m2 fn, m3 fp, m4 tn; B (m4 not annotated for B): m1 tn, m2 tp, m3 tp
    assert (a["p"], a["r"], a["f"], a["support"], a["n_docs"]) == (
        approx(0.5),
        approx(0.5),
        approx(0.5),
        2,
        4,
    )
    assert (b["p"], b["r"], b["f"], b["support"], b["n_docs"]) == (
        approx(1.0),
        approx(1.0),
        approx(1.0),
        2,
        3,
    )
    assert tc["accuracy"] == approx(0.5)  # m1 and m4 fully right
    assert (tc["macro_f"], tc["micro_f"]) == (approx(0.75), approx(0.75))
    assert (a["auc"], b["auc"]) == (approx(0.75), approx(1.0))
    assert tc["macro_auc"] == approx(0.875)
    assert tc["confusion"] is None
    assert (tc["n_docs"], tc["n_skipped"]) == (4, 1)


def test_multilabel_best_thresholds_by_hand():
    thresholds = evaluate_docs(golds=ML_GOLDS, preds=ML_PREDS, tasks=MULTI).metrics["textcat"][
        "thresholds"
    ]
    # A scores 0.2 0.4 0.65 0.9 (gold 0 1 0 1): cut 0.3 keeps 0.4, 0.65, 0.9 -> P 2/3, R 1, F 0.8
    assert thresholds["A"] == {
        "model": 0.5,
        "best": approx(0.3),
        "f_at_model": approx(0.5),
        "f_at_best": approx(0.8),
    }
    # B scores 0.4 0.55 0.8 (gold 0 1 1): cut between 0.4 and 0.55
    assert thresholds["B"] == {
        "model": 0.5,
        "best": approx(0.475),
        "f_at_model": approx(1.0),
        "f_at_best": approx(1.0),
    }


def test_multilabel_misclassified_furthest_from_threshold_first():
    errors = evaluate_docs(golds=ML_GOLDS, preds=ML_PREDS, tasks=MULTI).details["cat_errors"]
    assert [(e["text"], e["gold"], e["pred"]) for e in errors] == [
        ("m3", ["B"], ["A", "B"]),
        ("m2", ["A", "B"], ["B"]),
    ]


def test_threshold_helpers():
    assert find_threshold(golds=[True, False], scores=[0.4, 0.2], model_threshold=0.5)[
        "best"
    ] == approx(0.3)
    assert (
        find_threshold(golds=[False, False], scores=[0.4, 0.2], model_threshold=0.5)["best"] is None
    )
    assert roc_auc(golds=[True, True], scores=[0.1, 0.2]) is None


def test_scores_print_with_three_decimals_and_null_as_a_dash():
    assert [format_score(None), format_score(0.5), format_score(2 / 3)] == ["–", "0.500", "0.667"]
    assert [format_score(0.25, signed=True), format_score(-0.1, signed=True)] == [
        "+0.250",
        "-0.100",
    ]


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.integers(0, 20).map(lambda n: n / 20)), min_size=1, max_size=30
    )
)
def test_threshold_sweep_agrees_with_scoring_at_each_cut(pairs):
    golds, scores = [g for g, _ in pairs], [s for _, s in pairs]
    for threshold, f in f_by_cut(golds=golds, scores=scores):
        assert f == approx(f_at(golds=golds, scores=scores, threshold=threshold))


SPANS = st.lists(
    st.tuples(st.integers(0, 9), st.integers(1, 3), st.sampled_from(["A", "B"])), max_size=5
)


def _with_ents(spans: List[Tuple[int, int, str]]) -> Doc:
    doc = Doc(NLP.vocab, words=[f"w{i}" for i in range(12)])
    taken: set = set()
    ents = []
    for start, length, label in spans:
        if not taken & set(range(start, start + length)):
            taken |= set(range(start, start + length))
            ents.append(Span(doc, start, start + length, label=label))
    doc.set_ents(ents, default="outside")
    return doc


@settings(max_examples=60, deadline=None)
@given(gold=SPANS, pred=SPANS)
def test_entity_scores_are_consistent_on_arbitrary_spans(gold, pred):
    g, p = _with_ents(gold), _with_ents(pred)
    ents = evaluate_docs(golds=[g], preds=[p], tasks=Tasks(ent_labels=("A", "B"))).metrics["ents"]
    assert sum(v["support"] for v in ents["per_label"].values()) == len(g.ents)
    if g.ents or p.ents:
        assert 0.0 <= ents["f"] <= 1.0
    same = evaluate_docs(golds=[g], preds=[g], tasks=Tasks(ent_labels=("A", "B"))).metrics["ents"]
    assert same["f"] == (approx(1.0) if g.ents else None)
    assert sum(same["errors"].values()) == 0


def sklearn_averages(y_true, y_pred, **options) -> Dict[str, Tuple[float, float, float]]:
    """sklearn's micro, macro and weighted precision, recall and F, for the cross-checks."""
    from sklearn.metrics import precision_recall_fscore_support

    return {
        average: tuple(
            precision_recall_fscore_support(
                y_true, y_pred, average=average, zero_division=0, **options
            )[:3]
        )
        for average in ("micro", "macro", "weighted")
    }


def averages(section, *, micro=("micro_p", "micro_r", "micro_f")):
    return {
        "micro": tuple(section[k] for k in micro),
        "macro": (section["macro_p"], section["macro_r"], section["macro_f"]),
        "weighted": (section["weighted_p"], section["weighted_r"], section["weighted_f"]),
    }


def test_exclusive_textcat_weighted_averages_by_hand_and_as_sklearn_counts():
    tc = evaluate_docs(golds=CAT_GOLDS, preds=CAT_PREDS, tasks=EXCLUSIVE).metrics["textcat"]
    # POS p .5 r 1 support 1; NEG p 1 r .5 support 2; NEU p 1 r 1 support 1
    assert averages(tc)["weighted"] == (approx(0.875), approx(0.75), approx(0.75))
    assert averages(tc)["macro"] == (approx(5 / 6), approx(5 / 6), approx(7 / 9))
    assert averages(tc)["micro"] == (approx(0.75), approx(0.75), approx(0.75))
    pytest.importorskip("sklearn")  # requirements-dev.txt installs it
    expected = sklearn_averages(["POS", "NEG", "NEU", "NEG"], ["POS", "POS", "NEU", "NEG"])
    for average, figures in averages(tc).items():
        assert figures == approx(expected[average]), average


def test_multilabel_weighted_averages_by_hand_and_as_sklearn_counts():
    fully_annotated = Tasks(cat_labels=("A", "B"), exclusive=False, threshold=0.5)
    tc = evaluate_docs(golds=ML_GOLDS[:3], preds=ML_PREDS[:3], tasks=fully_annotated).metrics[
        "textcat"
    ]
    # A: p .5 r .5 support 2; B: p 1 r 1 support 2
    assert averages(tc)["weighted"] == (approx(0.75), approx(0.75), approx(0.75))
    # m4 is annotated for A only: a true negative of A, not scored for B
    partial = evaluate_docs(golds=ML_GOLDS, preds=ML_PREDS, tasks=MULTI).metrics["textcat"]
    assert averages(partial)["weighted"] == (approx(0.75), approx(0.75), approx(0.75))
    pytest.importorskip("sklearn")
    y_true = [[1, 0], [1, 1], [0, 1]]
    y_pred = [[int(s["A"] >= 0.5), int(s["B"] >= 0.5)] for s in ML_SCORES[:3]]
    expected = sklearn_averages(y_true, y_pred)
    for average, figures in averages(tc).items():
        assert figures == approx(expected[average]), average


def test_entity_weighted_averages_by_hand_and_as_sklearn_counts():
    ents = evaluate_docs(golds=ENT_GOLDS, preds=ENT_PREDS, tasks=ENT_TASKS).metrics["ents"]
    # PER p 1 r 2/3 f .8 support 3; ORG (predicted only) 0 support 0; LOC 0 support 1
    assert averages(ents, micro=("p", "r", "f"))["weighted"] == (
        approx(0.75),
        approx(0.5),
        approx(0.6),
    )
    assert averages(ents, micro=("p", "r", "f"))["macro"] == (
        approx(1 / 3),
        approx(2 / 9),
        approx(0.8 / 3),
    )
    pytest.importorskip("sklearn")
    # each entity as a (gold, predicted) pair, "O" for no entity: Alice, Bob (wrong label),
    # Paris (missed), Carol, Acme (spurious)
    y_true = ["PER", "PER", "LOC", "PER", "O"]
    y_pred = ["PER", "ORG", "O", "PER", "ORG"]
    expected = sklearn_averages(y_true, y_pred, labels=["LOC", "ORG", "PER"])
    for average, figures in averages(ents, micro=("p", "r", "f")).items():
        assert figures == approx(expected[average]), average


def test_averages_are_null_where_nothing_was_scored():
    docs = [make_doc("I love it.", cats={"POS": 1.0})]
    ents = evaluate_docs(golds=docs, preds=docs, tasks=ENT_TASKS).metrics["ents"]
    assert (ents["macro_f"], ents["weighted_p"], ents["weighted_f"]) == (None, None, None)
    # predictions of a label without gold support: a macro average, but no weight to average by
    only_spurious = [make_doc("Acme hired Carol.", [])]
    preds = [make_doc("Acme hired Carol.", [("Acme", "ORG")])]
    ents = evaluate_docs(golds=only_spurious, preds=preds, tasks=ENT_TASKS).metrics["ents"]
    assert (ents["macro_p"], ents["weighted_p"]) == (0.0, None)


def test_reliability_bins_and_the_expected_calibration_error_by_hand():
    # 0.95 and 0.91 share the last bin (half right), 1.0 falls in it too; 0.05 is in the first.
    bins = reliability(right=[True, False, True, False], scores=[0.95, 0.91, 1.0, 0.05])
    assert [b["n"] for b in bins] == [1, 0, 0, 0, 0, 0, 0, 0, 0, 3]
    assert (bins[0]["lower"], bins[0]["upper"], bins[9]["lower"], bins[9]["upper"]) == (
        0.0,
        0.1,
        0.9,
        1.0,
    )
    assert (bins[9]["score"], bins[9]["right"]) == (approx(2.86 / 3), approx(2 / 3))
    assert bins[1]["score"] is None and bins[1]["right"] is None
    # (1 * |0.05 - 0| + 3 * |0.9533 - 0.6667|) / 4
    assert calibration_error(bins) == approx((0.05 + 3 * abs(2.86 / 3 - 2 / 3)) / 4)
    assert calibration_error(reliability(right=[], scores=[])) is None
    calibrated = reliability(right=[True] * 8 + [False] * 2, scores=[0.8] * 10)
    assert calibration_error(calibrated) == approx(0.0)


def test_multilabel_reliability_counts_every_scored_label():
    golds = [make_doc("a", cats={"x": 1.0, "y": 0.0}), make_doc("b", cats={"x": 0.0})]
    preds = [make_doc("a", cats={"x": 0.75, "y": 0.25}), make_doc("b", cats={"x": 0.35, "y": 0.9})]
    tc = evaluate_docs(
        golds=golds,
        preds=preds,
        tasks=Tasks(cat_labels=("x", "y"), exclusive=False, threshold=0.5),
    ).metrics["textcat"]
    # scored: a/x 0.75 (yes), a/y 0.25 (no), b/x 0.35 (no); b/y is not annotated
    assert sum(b["n"] for b in tc["reliability"]) == 3
    assert tc["ece"] == approx((0.25 + 0.25 + 0.35) / 3)
