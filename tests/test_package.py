"""The package meta tells users how well the pipeline did and how to read its categories."""

from scripts.packaging.wheel import describe, performance_from_metrics, use_fast_ner

ENTS = {
    "p": 0.5,
    "r": 0.25,
    "f": 1 / 3,
    "n_docs": 9,
    "per_label": {"SKILL": {"p": 0.5, "r": 0.25, "f": 1 / 3}},
}


def cats(mode, thresholds=None):
    return {
        "mode": mode,
        "accuracy": 0.9,
        "macro_f": 0.8,
        "micro_f": 0.85,
        "macro_auc": 0.95,
        "n_docs": 50,
        "per_label": {"joy": {"p": 1.0, "r": 0.5, "f": 2 / 3}},
        "thresholds": thresholds,
    }


def test_description_gives_the_test_scores():
    text = describe(
        {"ents": ENTS, "textcat": cats("exclusive")},
        base_model="bert-base",
        components=["ner", "textcat"],
    )
    assert "fine-tuned from bert-base" in text
    assert "P 0.500, R 0.250, F 0.333 (9 docs)" in text
    assert "accuracy 0.900, macro F 0.800 (50 docs)" in text
    assert "threshold" not in text


def test_description_of_a_multilabel_pipeline_gives_its_tuned_threshold():
    thresholds = {"joy": {"model": 0.35, "best": 0.3}, "anger": {"model": 0.35, "best": 0.6}}
    text = describe(
        {"ents": None, "textcat": cats("multilabel", thresholds)},
        base_model="m",
        components=["textcat_multilabel"],
    )
    assert "score of 0.35 or more" in text


def test_performance_uses_spacys_meta_keys():
    performance = performance_from_metrics({"ents": ENTS, "textcat": cats("exclusive")})
    assert performance["ents_f"] == ENTS["f"]
    assert performance["cats_macro_f"] == 0.8 and performance["cats_accuracy"] == 0.9
    assert performance["ents_per_type"]["SKILL"]["r"] == 0.25


def test_the_packaged_config_names_fast_ner_for_spacys_ner_only():
    config = {
        "components": {
            "ner": {"factory": "ner"},
            "beam": {"factory": "beam_ner"},
            "textcat": {"factory": "textcat"},
        }
    }
    assert use_fast_ner(config)
    assert [block["factory"] for block in config["components"].values()] == [
        "fast_ner",
        "beam_ner",
        "textcat",
    ]
    assert not use_fast_ner({"components": {"textcat": {"factory": "textcat"}}})  # nothing to ship
