"""Explanations (scripts/evaluation/explain.py, python -m scripts.explain, the deletion check and
the evaluation report): offsets, weights, HTML and bad input. Needs shap (requirements/explain.txt,
which CI installs)."""

import json
from typing import List

import pytest
import spacy
from spacy.language import Language
from spacy.tokens import Doc, DocBin, Span
from typer.testing import CliRunner

from scripts.bench.faithfulness import deletion_check
from scripts.common.errors import UserError
from scripts.evaluation.explain import (
    delete_words,
    entity_value,
    explain_texts,
    render_page,
    shorten,
    word_spans,
)
from scripts.evaluation.run import evaluate_model
from scripts.explain import app
from tests.helpers import TEXTS, needs_extra

pytestmark = needs_extra("explain", "shap", "lime")

runner = CliRunner()
ODD_TEXTS = [
    "Python and SQL  are required.",  # two spaces
    "  Ünïcode 💡 text:\tbuild Excel dashboards,\n\nnaïve café. ",
    "",
    "   ",
    "Free",
    "I love <b>this</b> & more",
]


class KeywordCats:
    """POS 0.9 when "love" is a word of the text, else 0.5 (NEG the rest): one word decides."""

    labels = ("POS", "NEG")
    cfg = {"exclusive_classes": True, "threshold": 0.5}

    def __call__(self, doc: Doc) -> Doc:
        pos = 0.9 if any(token.lower_ == "love" for token in doc) else 0.5
        doc.cats = {"POS": pos, "NEG": round(1 - pos, 6)}
        return doc


@Language.factory("test_explain_keyword_cats", assigns=["doc.cats"])
def make_keyword_cats(nlp: Language, name: str) -> KeywordCats:
    return KeywordCats()


@pytest.fixture(scope="module")
def keyword_nlp() -> Language:
    nlp = spacy.blank("en")
    nlp.add_pipe("test_explain_keyword_cats")
    return nlp


def check_words(text: str, words: List[dict]) -> None:
    """Each item is a word of the text at its offsets, in order, and together they are the text
    without its whitespace."""
    assert all(text[w["start"] : w["end"]] == w["text"] and w["text"].strip() for w in words)
    assert all(a["end"] <= b["start"] for a, b in zip(words, words[1:]))
    assert "".join(w["text"] for w in words) == "".join(text.split())


@pytest.mark.parametrize("method", [pytest.param("shap", marks=pytest.mark.slow), "lime"])
def test_json_shape_and_offsets_on_unicode_and_double_spaces(predictor, method):
    explanations = explain_texts(predictor, ODD_TEXTS + TEXTS[3:4], max_evals=40, method=method)
    assert [e["text"] for e in explanations] == ODD_TEXTS + TEXTS[3:4]
    for explanation in explanations:
        assert set(explanation) == {"text", "cats", "labels", "base", "method", "evals"}
        assert explanation["method"] == method
        assert list(explanation["labels"]) == list(predictor.cat_labels)
        for label, words in explanation["labels"].items():
            assert all(set(w) == {"start", "end", "text", "weight"} for w in words)
            check_words(explanation["text"], words)
            if method == "shap":
                # SHAP values add up to the label's score minus its score with no words (base)
                total = sum(w["weight"] for w in words)
                shared = explanation["cats"][label] - explanation["base"][label] if words else 0.0
                assert total == pytest.approx(shared, abs=1e-4)
        assert explanation["evals"] <= 40
    assert explanations[2]["labels"]["requirements"] == [] and explanations[2]["evals"] == 1
    json.dumps(explanations)  # plain JSON


@pytest.mark.parametrize("method", ["shap", "lime"])
def test_the_words_the_tiny_pipeline_learned_carry_the_weight(predictor, method):
    (explanation,) = explain_texts(
        predictor,
        ["Python and SQL are required."],
        labels=["requirements"],
        max_evals=100,
        method=method,
    )
    assert list(explanation["labels"]) == ["requirements"]
    ranked = sorted(explanation["labels"]["requirements"], key=lambda w: -w["weight"])
    assert {w["text"] for w in ranked[:2]} == {"Python", "SQL"}  # the skills of its training texts


@pytest.mark.parametrize("method, least", [("shap", 0.4), ("lime", 0.3)])
def test_the_deciding_word_has_the_largest_weight(keyword_nlp, method, least):
    (explanation,) = explain_texts(
        keyword_nlp, ["I really love this film"], max_evals=100, method=method
    )
    pos = {w["text"]: w["weight"] for w in explanation["labels"]["POS"]}
    neg = {w["text"]: w["weight"] for w in explanation["labels"]["NEG"]}
    assert max(pos, key=pos.get) == "love" and pos["love"] >= least
    assert min(neg, key=neg.get) == "love" and neg["love"] < 0
    others = [weight for word, weight in pos.items() if word != "love"]
    assert max(abs(weight) for weight in others) < 0.05  # nothing else moves the score


def test_lime_weights_are_the_same_every_run(predictor):
    def weights():
        (explanation,) = explain_texts(predictor, [TEXTS[3]], max_evals=60, method="lime")
        return explanation["labels"]

    assert weights() == weights()


def test_an_unknown_method_is_named(predictor):
    with pytest.raises(UserError, match="unknown method 'occlusion'; pass one of: lime, shap"):
        explain_texts(predictor, ["x"], method="occlusion")


def test_the_base_is_the_score_without_words_so_other_words_weigh_nothing(keyword_nlp):
    # with no words the pipeline says 0.5, not 0: "love" alone moves POS from 0.5 to 0.9
    (explanation,) = explain_texts(
        keyword_nlp, ["I really love this film"], max_evals=100, method="shap"
    )
    assert explanation["base"] == {"POS": 0.5, "NEG": 0.5}
    pos = {w["text"]: w["weight"] for w in explanation["labels"]["POS"]}
    assert pos.pop("love") == pytest.approx(0.4)
    assert pos == pytest.approx({"I": 0.0, "really": 0.0, "this": 0.0, "film": 0.0})


def test_deleting_words_keeps_every_other_character(keyword_nlp):
    text = " Ünïcode  💡 text,\nmore "
    spans = word_spans(keyword_nlp, text)
    assert [text[s:e] for s, e in spans] == ["Ünïcode", "💡", "text", ",", "more"]
    assert delete_words(text, spans, []) == text
    assert delete_words(text, spans, [1]) == " Ünïcode  text,\nmore "
    assert delete_words(text, spans, [0, 4]) == " 💡 text,\n"
    assert delete_words(text, spans, range(5)) == ""
    shorter, starts = shorten(text, spans, [0, 4])
    assert starts[0] is None and starts[4] is None
    assert [
        shorter[starts[i] : starts[i] + e - s] for i, (s, e) in enumerate(spans) if 0 < i < 4
    ] == [
        "💡",
        "text",
        ",",
    ]


def test_deletion_check_finds_the_deciding_word(keyword_nlp):
    texts = ["I love this film so much", "we all love it a lot today", "they love the food here"]
    result = deletion_check(keyword_nlp, texts, ks=(1, 3), max_evals=60, seed=0, draws=2)
    one, three = result["per_k"]
    assert (one["k"], one["texts"], one["share_top_beats_random"]) == (1, 3, 1.0)
    assert one["mean_drop_top"] == pytest.approx(0.4) and one["mean_drop_random"] < 0.4
    assert three["texts"] == 3 and result["model_calls"] > 3
    assert "details" not in result


def test_deletion_check_details_rank_the_top_word_by_its_own_deletion(keyword_nlp):
    texts = ["I love this film so much", "we all love it a lot today"]
    result = deletion_check(
        keyword_nlp, texts, ks=(1,), max_evals=60, seed=0, draws=2, details=True
    )
    first, second = result["details"]
    assert (first["index"], first["words"], first["top_word"], first["top_word_rank"]) == (
        0,
        6,
        "love",
        1,
    )
    assert first["leave_one_out"][1] == pytest.approx(0.4) and len(second["leave_one_out"]) == 7
    assert first["drop_top"][1] == pytest.approx(0.4) and len(first["drop_random"][1]) == 2
    # only "love" moves the score, so a draw hit the top word exactly when it dropped by 0.4
    hits = sum(d == pytest.approx(0.4) for d in first["drop_random"][1])
    assert first["random_hit_top"][1] == hits


def test_unknown_label_lists_the_labels(predictor):
    with pytest.raises(UserError, match="unknown label 'nope'; the model's labels are: "):
        explain_texts(predictor, ["x"], labels=["nope"])


def test_page_is_self_contained_and_escapes_the_text(keyword_nlp):
    explanations = explain_texts(keyword_nlp, ["I love <script>alert(1)</script> & more"])
    page = render_page(explanations, title="t <x>")
    assert "<script" not in page and "</script" not in page and "alert(1)&lt;/script" in page
    for remote in ("http:", "https:", "src=", "url(", "@import", "<link"):
        assert remote not in page
    assert "default-src 'none'" in page
    assert 'title="+0.' in page and "rgba(228,26,28," in page  # red for the word that pushed up


def test_cli_prints_words_writes_html_atomically_and_json(tiny_pipeline, tmp_path):
    out = tmp_path / "out.html"
    result = runner.invoke(
        app,
        [
            str(tiny_pipeline),
            "--text",
            "Python and SQL  are required.",
            "--label",
            "requirements",
            "--output",
            str(out),
            "--max-evals",
            "30",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "requirements" in result.stdout and "Python +" in result.stdout
    assert "Python" in out.read_text(encoding="utf8")
    assert [p.name for p in tmp_path.iterdir()] == ["out.html"]  # no temporary file left over

    texts = tmp_path / "texts.txt"
    texts.write_text("We offer free lunch.\nÜnïcode 💡 café\n", encoding="utf8")
    result = runner.invoke(
        app, [str(tiny_pipeline), "--texts", str(texts), "--json", "--max-evals", "20"]
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [r["text"] for r in records] == ["We offer free lunch.", "Ünïcode 💡 café"]
    for record in records:
        for words in record["labels"].values():
            check_words(record["text"], words)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--text", "x", "--label", "nope"], "unknown label 'nope'; the model's labels are: "),
        ([], "no text to explain; pass --text"),
        (["--texts", "missing.jsonl"], "missing.jsonl: input file not found"),
    ],
)
def test_cli_bad_input_is_one_line_and_writes_nothing(tiny_pipeline, tmp_path, args, fragment):
    out = tmp_path / "out.html"
    out.write_text("earlier", encoding="utf8")
    result = runner.invoke(app, [str(tiny_pipeline), *args, "--output", str(out)])
    assert result.exit_code == 1
    assert fragment in result.output and len(result.output.strip().splitlines()) == 1
    assert out.read_text(encoding="utf8") == "earlier"


def test_evaluation_report_explains_the_misclassified_texts(keyword_nlp, tmp_path):
    model = tmp_path / "model"
    keyword_nlp.to_disk(model)
    db = DocBin()
    for text, pos in (("I love it", 0.0), ("So dull", 1.0), ("I love this film", 1.0)):
        doc = keyword_nlp.make_doc(text)
        doc.cats = {"POS": pos, "NEG": 1 - pos}
        db.add(doc)
    db.to_disk(tmp_path / "test.spacy")
    evaluate_model(
        model=str(model),
        data_path=tmp_path / "test.spacy",
        output_dir=tmp_path / "eval",
        explain=1,
        explain_max_evals=20,
    )
    page = (tmp_path / "eval" / "report.html").read_text(encoding="utf8")
    why = page[page.index("Why: words behind the errors") :]
    assert "the first 1 misclassified texts" in why
    assert "<b>POS</b> (predicted)" in why and "<b>NEG</b> (gold)" in why
    assert why.count('<div class="example why">') == 1


# --------------------------------------------------------------------------------------------------
# Entities: a weight per word for each scored entity


class KeywordEnts:
    """ "Python" is a SKILL wherever it stands (what the entity recognizer predicts)."""

    labels = ("SKILL",)

    def __call__(self, doc: Doc) -> Doc:
        doc.ents = [Span(doc, t.i, t.i + 1, label="SKILL") for t in doc if t.text == "Python"]
        return doc


@Language.factory("test_explain_keyword_ents", assigns=["doc.ents"])
def make_keyword_ents(nlp: Language, name: str) -> KeywordEnts:
    return KeywordEnts()


@spacy.registry.misc("test_explain.keyword_probabilities.v1")
def make_keyword_probabilities():
    """In place of the recognizer's action probabilities: each entity scores 0.9 when "code" is a
    word of the text, else 0.6."""

    def probabilities(ner, docs):
        return [
            {
                (e.start, e.end, e.label_): 0.9 if any(t.text == "code" for t in doc) else 0.6
                for e in doc.ents
            }
            for doc in docs
        ]

    return probabilities


@pytest.fixture(scope="module")
def keyword_ents_nlp() -> Language:
    nlp = spacy.blank("en")
    nlp.add_pipe("test_explain_keyword_ents", name="ner")
    nlp.add_pipe(
        "entity_confidence",
        config={"probabilities": {"@misc": "test_explain.keyword_probabilities.v1"}},
    )
    return nlp


def test_an_entity_s_score_is_shared_between_its_word_and_the_words_that_raise_it(
    keyword_ents_nlp,
):
    text = "Ünïcode  💡 people write Python code daily"
    (explanation,) = explain_texts(keyword_ents_nlp, [text], max_evals=200, method="shap")
    assert explanation["labels"] == {} and explanation["cats"] == {}
    (entity,) = explanation["entities"]
    assert (entity["text"], entity["label"], entity["score"]) == ("Python", "SKILL", 0.9)
    assert text[entity["start"] : entity["end"]] == "Python"
    check_words(text, entity["words"])
    weights = {w["text"]: w["weight"] for w in entity["words"]}
    # without "Python" there is no entity (0); with it 0.6, and 0.9 with "code" too
    assert sum(weights.values()) == pytest.approx(0.9, abs=1e-6)
    assert weights.pop("Python") == pytest.approx(0.75, abs=0.01)
    assert weights.pop("code") == pytest.approx(0.15, abs=0.01)
    assert weights == pytest.approx({w: 0.0 for w in weights}, abs=1e-6)


def test_lime_ranks_an_entity_s_word_then_the_word_that_raises_it(keyword_ents_nlp):
    text = "Ünïcode  💡 people write Python code daily"
    (explanation,) = explain_texts(keyword_ents_nlp, [text], max_evals=200, method="lime")
    (entity,) = explanation["entities"]
    weights = {w["text"]: w["weight"] for w in entity["words"]}
    ranked = sorted(weights, key=lambda word: -weights[word])
    assert ranked[:2] == ["Python", "code"] and weights["code"] > 0.05
    assert max(abs(weights[word]) for word in ranked[2:]) < 0.05


def test_an_entity_is_found_where_its_words_moved_after_deletions():
    text = "Ünïcode  💡 people write Python  code"
    spans = [(0, 7), (9, 10), (11, 17), (18, 23), (24, 30), (32, 36)]
    entity = {"start": 24, "end": 30, "label": "SKILL"}
    # "💡 " and "write " deleted: "Ünïcode  people Python  code", Python now at 16
    record = {"entities": [{"start": 16, "end": 22, "label": "SKILL", "score": 0.7}]}
    assert delete_words(text, spans, [1, 3])[16:22] == "Python"
    value = dict(entity=entity, words=[4], spans=spans)

    def starts(*removed: int) -> list:
        return shorten(text, spans, removed)[1]

    assert entity_value(record, starts(1, 3), **value) == 0.7
    assert entity_value(record, starts(1, 3, 4), **value) == 0.0  # its own word is gone
    assert entity_value(record, starts(3), **value) == 0.0  # not where it should now stand
    other_label = {"entities": [{"start": 16, "end": 22, "label": "TOOL", "score": 0.7}]}
    assert entity_value(other_label, starts(1, 3), **value) == 0.0


def test_a_label_picks_categories_or_entities(keyword_ents_nlp):
    (explanation,) = explain_texts(keyword_ents_nlp, ["Python code"], labels=["SKILL"])
    assert [e["text"] for e in explanation["entities"]] == ["Python"]
    with pytest.raises(UserError, match="unknown label 'nope'; the model's labels are: SKILL"):
        explain_texts(keyword_ents_nlp, ["x"], labels=["nope"])


def test_a_pipeline_without_scores_has_nothing_to_explain():
    nlp = spacy.blank("en")
    nlp.add_pipe("test_explain_keyword_ents", name="ner")
    with pytest.raises(UserError, match="nothing to explain.*scripts.add_confidence"):
        explain_texts(nlp, ["Python"])


def test_trained_pipeline_entities_are_explained_by_the_cli_and_the_page(tiny_pipeline, tmp_path):
    from scripts.training.confidence import add_confidence

    scored = tmp_path / "scored"
    add_confidence(model_dir=tiny_pipeline, output_dir=scored)
    nlp = spacy.load(scored)
    nlp.enable_pipe("entity_confidence")
    text = "Python and SQL are required."
    want = [(e.start_char, e.end_char, e.label_) for e in nlp(text).ents]
    assert want, "the tiny pipeline finds entities in its own training text"
    (explanation,) = explain_texts(nlp, [text], max_evals=60, method="shap")
    got = explanation["entities"]
    assert [(e["start"], e["end"], e["label"]) for e in got] == want
    for entity in got:
        assert 0.0 <= entity["score"] <= 1.0
        assert sum(w["weight"] for w in entity["words"]) == pytest.approx(entity["score"], abs=1e-4)
    assert set(explanation["labels"]) == {"requirements", "responsibilities", "benefits"}

    out = tmp_path / "why.html"
    result = runner.invoke(
        app, [str(scored), "--text", text, "--output", str(out), "--max-evals", "40"]
    )
    assert result.exit_code == 0, result.output
    assert f"entity {got[0]['text']!r} {got[0]['label']}" in result.stdout
    assert f"entity <b>{got[0]['text']}</b> ({got[0]['label']})" in out.read_text(encoding="utf8")
