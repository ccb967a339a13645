import re
from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin
from spacy.util import load_config, load_model_from_config
from typer.testing import CliRunner

from scripts import make_config as make_config_command
from scripts.common.errors import UserError
from scripts.training import config as make_config
from scripts.training.config import (
    EVALUATIONS,
    MIN_PATIENCE_STEPS,
    batches_per_epoch,
    count_batches,
    parse_components,
    scale_schedule,
)

BASE = Path(__file__).resolve().parent.parent / "configs" / "base.cfg"


def write_corpus(path: Path, *, ents: int = 3, cats: int = 3, multi: bool = False) -> Path:
    nlp = spacy.blank("en")
    docs = []
    for i in range(ents):
        doc = nlp.make_doc(f"We need {i} years of Python")
        doc.set_ents(
            [doc.char_span(doc.text.index("Python"), len(doc.text), label="SKILL")],
            default="outside",
        )
        docs.append(doc)
    for i in range(cats):
        doc = nlp.make_doc(f"Free lunch number {i}")
        doc.cats = {"benefits": 1.0, "requirements": 1.0 if multi else 0.0}
        docs.append(doc)
    DocBin(docs=docs).to_disk(path)
    return path


def test_components_are_validated_with_the_valid_names_listed():
    assert parse_components(" ner , textcat ") == ["ner", "textcat"]
    with pytest.raises(
        UserError, match=r"components 'parser' is not supported; use one of: ner \| textcat \|"
    ):
        parse_components("parser")


def test_schedule_scales_with_the_corpus():
    small = scale_schedule(3)
    large = scale_schedule(1_500)
    assert small.max_epochs > large.max_epochs >= 3
    assert small.warmup_steps == small.total_steps // 10
    assert (small.total_steps, small.eval_frequency) == (small.max_epochs * 3, 5)
    assert (large.total_steps, large.eval_frequency) == (4_400, 200)  # 4,500 to whole evaluations
    assert scale_schedule(3, max_epochs=2).max_epochs == 2


@pytest.mark.parametrize("batches", [1, 3, 11.6, 12, 67, 199.5, 1_500])
def test_the_run_ends_on_an_evaluation_and_stops_after_a_quarter_of_it_without_progress(batches):
    schedule = scale_schedule(batches)
    evaluations = schedule.total_steps // schedule.eval_frequency
    # spaCy evaluates at steps 0, eval_frequency, ... and stops after step max_steps
    assert schedule.total_steps % schedule.eval_frequency == 0
    assert abs(schedule.total_steps - schedule.max_epochs * batches) <= schedule.eval_frequency
    assert evaluations >= EVALUATIONS
    # whole evaluations, a quarter of them: 9 epochs of 67 batches (600 steps) stop after 150;
    # never fewer than MIN_PATIENCE_STEPS, nor more than the run (a short run runs to its end)
    assert schedule.patience % schedule.eval_frequency == 0
    quarter = schedule.total_steps / 4
    if quarter >= MIN_PATIENCE_STEPS:
        assert abs(schedule.patience - quarter) <= schedule.eval_frequency / 2
    else:
        least = min(schedule.total_steps, MIN_PATIENCE_STEPS)
        assert least <= schedule.patience < least + schedule.eval_frequency


def test_batches_per_epoch_are_averaged_over_shuffled_orders():
    batcher = {
        "@batchers": "spacy.batch_by_padded.v1",
        "size": 100,
        "buffer": 2,
        "discard_oversize": False,
        "get_length": None,
    }
    # Buffers of 2 documents: the two short ones share a batch when they meet in a buffer (3
    # batches), not when each meets a long one (4).
    lengths = (90, 90, 10, 10)
    assert count_batches(lengths, batcher=batcher) == 3
    assert count_batches((90, 10, 90, 10), batcher=batcher) == 4
    average = batches_per_epoch(lengths, batcher=batcher)
    assert 3 < average < 4
    assert average == batches_per_epoch(lengths, batcher=batcher)  # seeded: the same each run


def test_batches_are_counted_with_the_configured_batcher():
    batcher = {
        "@batchers": "spacy.batch_by_padded.v1",
        "size": 100,
        "buffer": 4,
        "discard_oversize": False,
        "get_length": None,
    }
    # Padding makes a batch of one 90-token doc and four 10-token docs cost 450 padded tokens.
    assert count_batches((10, 10, 10, 10), batcher=batcher) == 1
    assert count_batches((90, 10, 10, 10), batcher=batcher) == 2
    # Equal document counts: 4 docs of 30 words on average make 3-doc batches for size 100.
    assert (
        count_batches(
            (90, 10, 10, 10), batcher={**batcher, "@batchers": "ner_textcat.batch_by_docs.v1"}
        )
        == 2
    )


@pytest.mark.parametrize(
    "components, batcher",
    [
        ("textcat", "ner_textcat.batch_by_docs.v1"),
        ("textcat_multilabel", "ner_textcat.batch_by_docs.v1"),
        ("ner", "spacy.batch_by_padded.v1"),
        ("ner,textcat", "spacy.batch_by_padded.v1"),
    ],
)
def test_text_classification_alone_trains_on_equal_document_counts(tmp_path, components, batcher):
    train = write_corpus(tmp_path / "train.spacy", multi=components == "textcat_multilabel")
    output = tmp_path / "config.cfg"
    make_config.make_config(
        base_path=BASE,
        output=output,
        components=components,
        transformer="auto",
        lang="en",
        train=train,
        overrides={"training.batcher.size": 12},
    )
    written = load_config(output, interpolate=False)["training"]["batcher"]
    assert written["@batchers"] == batcher and written["size"] == 12


def test_epochs_follow_the_corpus_size_whatever_batcher_slices_it(tmp_path):
    # 100 four-word texts and 20 of 60 words make 24 padded batches of 100 words, 33 batches of
    # equal document counts: the epochs are chosen from the 24 (ceil(600 / 24) = 25), the
    # warmup and the total from the 33 batches the run makes.
    nlp = spacy.blank("en")
    docs = [nlp.make_doc("Free lunch every day") for _ in range(100)]
    docs += [nlp.make_doc(" ".join(["word"] * 59) + ".") for _ in range(20)]
    for i, doc in enumerate(docs):
        doc.cats = {"benefits": float(i % 2), "requirements": float(1 - i % 2)}
    DocBin(docs=docs).to_disk(tmp_path / "train.spacy")
    output = tmp_path / "config.cfg"
    schedule = make_config.make_config(
        base_path=BASE,
        output=output,
        components="textcat",
        transformer="auto",
        lang="en",
        train=tmp_path / "train.spacy",
        overrides={"training.batcher.size": 100},
    )
    assert (schedule.max_epochs, schedule.total_steps, schedule.warmup_steps) == (
        25,
        25 * 33,
        25 * 33 // 10,
    )
    training = load_config(output, interpolate=False)["training"]
    # counted in steps, whatever batches each shuffled epoch makes
    assert (training["max_steps"], training["max_epochs"]) == (25 * 33, 0)
    assert (training["eval_frequency"], training["patience"]) == (33, 33 * 6)
    assert scale_schedule(92, corpus_batches=60) == scale_schedule(92, max_epochs=10)


def test_a_batch_size_the_batcher_refuses_is_one_line_and_writes_nothing(tmp_path):
    train = write_corpus(tmp_path / "train.spacy")
    output = tmp_path / "config.cfg"
    with pytest.raises(
        UserError, match=r"\[training.batcher\] batch_by_docs: size \(0\) .* set batch_size to 1"
    ) as caught:
        make_config.make_config(
            base_path=BASE,
            output=output,
            components="textcat",
            transformer="auto",
            lang="en",
            train=train,
            overrides={"training.batcher.size": 0},
        )
    assert not output.exists()
    assert caught.value.setting == "batch_size"


def test_a_batcher_the_user_names_is_kept(tmp_path):
    train = write_corpus(tmp_path / "train.spacy")
    output = tmp_path / "config.cfg"
    make_config.make_config(
        base_path=BASE,
        output=output,
        components="textcat",
        transformer="auto",
        lang="en",
        train=train,
        overrides={"training.batcher.@batchers": "spacy.batch_by_padded.v1"},
    )
    assert (
        load_config(output, interpolate=False)["training"]["batcher"]["@batchers"]
        == "spacy.batch_by_padded.v1"
    )


def test_config_keeps_only_the_chosen_components_and_loads(tmp_path):
    train = write_corpus(tmp_path / "train.spacy")
    output = tmp_path / "config.cfg"
    make_config.make_config(
        base_path=BASE, output=output, components="ner", transformer="auto", lang="en", train=train
    )
    config = load_config(output, interpolate=False)
    assert config["nlp"]["pipeline"] == ["transformer", "ner"]
    assert set(config["components"]) == {"transformer", "ner"}
    assert set(config["initialize"]["components"]) == {"ner"}
    assert config["components"]["transformer"]["model"]["name"].endswith("model")
    assert config["training"]["score_weights"]["ents_f"] == 1.0
    nlp = load_model_from_config(load_config(output), auto_fill=False)
    assert nlp.pipe_names == ["transformer", "ner"]


def test_multilabel_data_refuses_exclusive_textcat(tmp_path):
    train = write_corpus(tmp_path / "train.spacy", multi=True)
    with pytest.raises(
        UserError,
        match="3 documents have several positive labels.*use the components ner,textcat_multilabel",
    ) as caught:
        make_config.make_config(
            base_path=BASE,
            output=tmp_path / "c.cfg",
            components="ner,textcat",
            transformer="auto",
            lang="en",
            train=train,
        )
    assert not (tmp_path / "c.cfg").exists()
    assert caught.value.setting == "components"


def test_component_without_annotation_is_refused(tmp_path):
    train = write_corpus(tmp_path / "train.spacy", ents=0)
    with pytest.raises(
        UserError, match="components include ner but no document carries entity annotation"
    ):
        make_config.make_config(
            base_path=BASE,
            output=tmp_path / "c.cfg",
            components="ner,textcat",
            transformer="auto",
            lang="en",
            train=train,
        )


def test_cli_missing_corpus_is_one_line(tmp_path):
    result = CliRunner().invoke(
        make_config_command.app,
        [str(BASE), str(tmp_path / "c.cfg"), "--train", str(tmp_path / "missing.spacy")],
    )
    assert result.exit_code == 1
    assert (
        result.output.strip() == f"✘ {tmp_path / 'missing.spacy'}: training corpus not found; "
        "run the convert step first (spacy project run convert)"
    )
    assert not (tmp_path / "c.cfg").exists()


def test_cli_unknown_component_is_one_line(tmp_path):
    train = write_corpus(tmp_path / "train.spacy")
    result = CliRunner().invoke(
        make_config_command.app,
        [str(BASE), str(tmp_path / "c.cfg"), "--components", "ner,tagger", "--train", str(train)],
    )
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1
    assert "components 'ner,tagger' is not supported" in result.output


PROJECT_KNOBS = {
    "batch_size": "training.batcher.size",
    "accumulate_gradient": "training.accumulate_gradient",
    "max_length": "corpora.train.max_length",
    "discard_oversize": "training.batcher.discard_oversize",
    "window": "components.transformer.model.get_spans.window",
    "stride": "components.transformer.model.get_spans.stride",
}


def lookup(config, dotted: str):
    for part in dotted.split("."):
        config = config[part]
    return config


def test_the_knobs_defaults_are_written_in_base_cfg_alone(tmp_path):
    """project.yml passes each knob to the config step empty by default, and an empty override
    keeps configs/base.cfg's value; --vars.batch_size 500 still reaches the config."""
    import shlex

    import srsly

    from scripts.common.spacy_internals import parse_config_overrides

    project = srsly.read_yaml(BASE.parent.parent / "project.yml")
    script = " ".join(project["commands"][1]["script"])
    for var, setting in PROJECT_KNOBS.items():
        assert project["vars"][var] == "", var
        assert f"--{setting} '${{vars.{var}}}'" in script, var

    def written(**values: str) -> dict:
        # the config step's arguments as weasel splits them, with these vars
        args = shlex.split(
            " ".join(f"--{PROJECT_KNOBS[k]} '{values.get(k, '')}'" for k in PROJECT_KNOBS)
        )
        output = tmp_path / "config.cfg"
        make_config.make_config(
            base_path=BASE,
            output=output,
            components="ner,textcat",
            transformer="auto",
            lang="en",
            train=write_corpus(tmp_path / "train.spacy"),
            overrides=parse_config_overrides(args),
        )
        config = load_config(output, interpolate=False)
        return {var: lookup(config, setting) for var, setting in PROJECT_KNOBS.items()}

    base = load_config(BASE, interpolate=False)
    assert written() == {var: lookup(base, setting) for var, setting in PROJECT_KNOBS.items()}
    assert written(batch_size="500", discard_oversize="true") == {
        **written(),
        "batch_size": 500,
        "discard_oversize": True,
    }


def test_gpu_memory_knobs_resolve_into_a_trainable_config(tmp_path):
    from spacy.schemas import ConfigSchemaTraining
    from spacy.util import registry

    train = write_corpus(tmp_path / "train.spacy")
    output = tmp_path / "config.cfg"
    overrides = {
        "training.batcher.size": 500,
        "training.accumulate_gradient": 4,
        "corpora.train.max_length": 100,
        "training.batcher.discard_oversize": True,
        "components.transformer.model.get_spans.window": 64,
        "components.transformer.model.get_spans.stride": 48,
        "components.transformer.model.mixed_precision": True,
    }
    make_config.make_config(
        base_path=BASE,
        output=output,
        components="ner,textcat",
        transformer="auto",
        lang="en",
        train=train,
        overrides=overrides,
    )
    config = load_config(
        output, overrides={"paths.train": str(train), "paths.dev": str(train)}, interpolate=True
    )
    for setting, value in overrides.items():
        assert lookup(config, setting) == value, setting
    assert load_model_from_config(config, auto_fill=False).pipe_names == [
        "transformer",
        "ner",
        "textcat",
    ]
    training = registry.resolve(config["training"], schema=ConfigSchemaTraining)
    assert training["accumulate_gradient"] == 4
    assert training["batcher"] is not None


def test_override_of_a_setting_that_does_not_exist_is_refused(tmp_path):
    train = write_corpus(tmp_path / "train.spacy")
    with pytest.raises(
        UserError, match="override --training.acumulate_gradient: .* has no such setting"
    ):
        make_config.make_config(
            base_path=BASE,
            output=tmp_path / "c.cfg",
            components="ner,textcat",
            transformer="auto",
            lang="en",
            train=train,
            overrides={"training.acumulate_gradient": 2},
        )
    assert not (tmp_path / "c.cfg").exists()


def test_class_balance_is_an_override_that_reaches_the_text_classifier(tmp_path):
    from scripts.training.textcat import EXCLUSIVE_FACTORY, EXCLUSIVE_SCORER

    train = write_corpus(tmp_path / "train.spacy")
    output = tmp_path / "config.cfg"
    make_config.make_config(
        base_path=BASE,
        output=output,
        components="ner,textcat",
        transformer="auto",
        lang="en",
        train=train,
        overrides={"components.textcat.class_balance": 0.3},
    )
    block = load_config(output, interpolate=False)["components"]["textcat"]
    assert block["factory"] == EXCLUSIVE_FACTORY
    assert block["scorer"] == {"@scorers": EXCLUSIVE_SCORER}
    assert block["class_balance"] == pytest.approx(0.3)
    nlp = spacy.blank("en")
    assert nlp.add_pipe(EXCLUSIVE_FACTORY, config={"class_balance": 0.3}).class_balance == 0.3
    with pytest.raises(ValueError, match="class_balance 2"):
        nlp.add_pipe(EXCLUSIVE_FACTORY, name="other", config={"class_balance": 2})


def test_class_balance_out_of_range_stops_the_config_step_in_one_line(tmp_path):
    train = write_corpus(tmp_path / "train.spacy")
    with pytest.raises(
        UserError,
        match=r"\[components.textcat\] class_balance 2\.0 is outside 0\.\.1 .*; "
        r"pass --components.textcat.class_balance between 0 and 1$",
    ):
        make_config.make_config(
            base_path=BASE,
            output=tmp_path / "c.cfg",
            components="ner,textcat",
            transformer="auto",
            lang="en",
            train=train,
            overrides={"components.textcat.class_balance": 2},
        )
    assert not (tmp_path / "c.cfg").exists()


def write_texts(path: Path, texts: list[str], *, lang: str) -> Path:
    nlp = spacy.blank(lang)
    docs = []
    for i, text in enumerate(texts):
        doc = nlp.make_doc(text)
        doc.cats = {"good": float(i % 2), "bad": float(1 - i % 2)}
        docs.append(doc)
    DocBin(docs=docs).to_disk(path)
    return path


def test_a_base_model_that_cannot_read_the_text_stops_the_config_step(tmp_path, tiny_transformer):
    # The tiny BERT knows ASCII letters only: each Chinese character is one [UNK].
    reviews = ["这家餐厅的菜很好吃", "服务太慢了", "价格合理 good value", "环境不错"] * 5
    train = write_texts(tmp_path / "train.spacy", reviews, lang="zh")
    options = dict(
        base_path=BASE,
        output=tmp_path / "config.cfg",
        components="textcat",
        transformer=str(tiny_transformer),
        lang="zh",
        train=train,
    )
    with pytest.raises(
        UserError,
        match=rf"base model {re.escape(str(tiny_transformer))}: 71% of the word pieces of 20 "
        r"training texts are unknown to its tokenizer \(\[UNK\]\), over the 10% limit, so it "
        r"cannot read this text; use a model for lang 'zh', e.g. "
        r"transformer bert-base-chinese \(configs/base_models.json\), or go on anyway "
        r"with max_unknown 1.0$",
    ) as caught:
        make_config.make_config(**options)
    assert not (tmp_path / "config.cfg").exists()
    assert caught.value.setting == "transformer"
    make_config.make_config(**options, max_unknown=1.0)
    assert (tmp_path / "config.cfg").is_file()


def test_the_config_step_says_how_much_of_the_text_the_base_model_reads(
    tmp_path, tiny_transformer, capsys
):
    train = write_texts(tmp_path / "train.spacy", ["Free lunch €5", "Python and SQL"], lang="en")
    make_config.make_config(
        base_path=BASE,
        output=tmp_path / "config.cfg",
        components="textcat",
        transformer=str(tiny_transformer),
        lang="en",
        train=train,
    )
    # 22 word pieces, the euro sign the only one unknown
    assert (
        f"Base model: {tiny_transformer.name} (local); 4.5% of the training text's word pieces "
        "unknown to its tokenizer" in capsys.readouterr().err
    )
    with pytest.raises(UserError, match=r"max_unknown 1.5 is not a share between 0 and 1"):
        make_config.make_config(
            base_path=BASE,
            output=tmp_path / "config.cfg",
            components="textcat",
            transformer=str(tiny_transformer),
            lang="en",
            train=train,
            max_unknown=1.5,
        )
