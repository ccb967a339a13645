"""Shared fixtures: a tiny BERT built locally (random weights), so no test needs a network."""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def write_tiny_bert(path: Path) -> Path:
    """A 2-layer, 32-wide BERT with a character-level WordPiece vocabulary, saved like save_pretrained()."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    chars = sorted(set("abcdefghijklmnopqrstuvwxyz0123456789.,;:!?'\"()-+/&%$#@*"))
    vocab = SPECIAL_TOKENS + chars + [f"##{c}" for c in chars]
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf8")
    BertTokenizerFast(
        vocab_file=str(path / "vocab.txt"), do_lower_case=True, model_max_length=512
    ).save_pretrained(path)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    BertModel(config).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_transformer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))
