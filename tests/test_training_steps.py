"""Building blocks of the training steps: pairs, sentence split, masking, batching, config."""

from __future__ import annotations

import random

import pytest

from training.config import TrainConfig
from training.corpus import Patent, TextPair, build_pairs, read_patents, split_sentences
from training.loop import LoopSettings
from training.mlm import TokenizedText, mask_batch, tokenize_texts
from training.sbert import group_batches
from training.vocab import build_scratch_tokenizer, learn_wordpiece


def test_split_sentences_korean_without_space():
    text = "연료는 유동한다.카트리지는 유지된다. 물은 집수될 수 있다."
    assert split_sentences(text) == ["연료는 유동한다.", "카트리지는 유지된다.",
                                     "물은 집수될 수 있다."]


def test_split_sentences_keeps_decimals():
    assert split_sentences("두께는 0.5 mm 이다. 끝.") == ["두께는 0.5 mm 이다.", "끝."]


def test_build_pairs_kinds_and_exclusion():
    patents = [
        Patent("1", "세정 장치", "웨이퍼를 세정하는 장치이다. 노즐은 물을 분사한다."),
        Patent("2", "조성물", "짧다."),
        Patent("3", "제외 대상", "이 특허의 문장은 쓰지 않는다. 두 번째 문장이다."),
    ]
    pairs = build_pairs(patents, exclude=frozenset({"3"}))
    kinds = [(pair.patent, pair.kind) for pair in pairs]
    assert kinds == [("1", "title-abstract"), ("1", "sentence-rest")]
    assert pairs[1].anchor == "웨이퍼를 세정하는 장치이다."
    assert pairs[1].positive == "노즐은 물을 분사한다."
    assert build_pairs(patents[:1], sentence_pairs=False)[0].kind == "title-abstract"


def test_read_patents_skips_and_limits(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(
        '{"application_number": "1", "title": "가", "abstract": "나"}\n'
        "not json\n"
        '{"application_number": "", "title": "가"}\n'
        '{"application_number": "2", "title": "  ", "abstract": ""}\n'
        '{"application_number": "3", "title": "다  라", "abstract": null}\n',
        encoding="utf-8")
    patents = read_patents(path)
    assert [patent.application_number for patent in patents] == ["1", "3"]
    assert patents[1].title == "다 라"
    assert patents[1].abstract == ""
    assert len(read_patents(path, limit=1)) == 1


def test_read_patents_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="patent file not found"):
        read_patents(tmp_path / "absent.jsonl")


def test_group_batches_no_shared_patent():
    pairs = [TextPair(f"a{i}", f"p{i}", "title-abstract", str(i // 2)) for i in range(40)]
    batches = group_batches(pairs, list(range(40)), 8)
    seen = [index for batch in batches for index in batch]
    assert sorted(seen) == list(range(40))
    for batch in batches:
        patents = [pairs[index].patent for index in batch]
        assert len(patents) == len(set(patents))


def test_group_batches_drops_single_leftover():
    pairs = [TextPair("same", f"p{i}", "title-abstract", str(i)) for i in range(3)]
    assert group_batches(pairs, [0, 1, 2], 4) == []


@pytest.fixture(scope="module")
def tokenizer(sample_path, tmp_path_factory):
    patents = read_patents(sample_path, limit=100)
    texts = [text for patent in patents for text in (patent.title, patent.abstract)]
    tokens = learn_wordpiece(texts, 3000)
    return build_scratch_tokenizer(tokens, tmp_path_factory.mktemp("mask-tokenizer"))


def test_tokenize_texts_word_ids(tokenizer):
    (text,), has_words = tokenize_texts(tokenizer, ["반도체 세정장치"], 32)
    assert has_words
    assert text.word_ids[0] is None
    assert text.word_ids[-1] is None
    assert len(text.input_ids) == len(text.word_ids)


def test_whole_word_mask_covers_words(tokenizer):
    texts, _ = tokenize_texts(tokenizer, ["반도체웨이퍼세정장치의 노즐구조와 세정방법"] * 20, 64)
    batch = mask_batch(texts, tokenizer, mlm_probability=0.3, whole_word=True,
                       rng=random.Random(0))
    labels = batch["labels"]
    for row, text in enumerate(texts):
        masked = {position for position in range(len(text.input_ids))
                  if labels[row, position] != -100}
        assert masked
        words = {text.word_ids[position] for position in masked}
        assert None not in words
        for position, word in enumerate(text.word_ids):
            if word in words:
                assert position in masked


def test_mask_batch_labels_and_padding(tokenizer):
    texts, _ = tokenize_texts(tokenizer, ["짧은 글", "조금 더 긴 특허 요약 문장입니다"], 32)
    batch = mask_batch(texts, tokenizer, mlm_probability=0.15, whole_word=False,
                       rng=random.Random(1))
    assert batch["input_ids"].shape == batch["labels"].shape
    assert batch["attention_mask"][0].sum() == len(texts[0].input_ids)
    assert batch["input_ids"][0, -1] == tokenizer.pad_token_id
    masked = batch["labels"] != -100
    originals = batch["labels"][masked]
    assert int(masked.sum()) >= 2
    assert tokenizer.cls_token_id not in originals.tolist()
    assert tokenizer.sep_token_id not in originals.tolist()


def test_mask_batch_rejects_bad_probability(tokenizer):
    texts = [TokenizedText([2, 10, 3], [None, 0, None])]
    with pytest.raises(ValueError, match="mlm_probability"):
        mask_batch(texts, tokenizer, mlm_probability=1.5, whole_word=True,
                   rng=random.Random(0))


def test_loop_settings_checks():
    assert LoopSettings(epochs=2, batch_size=4).total_steps(10) == 20
    assert LoopSettings(epochs=2, batch_size=4, max_steps=5).total_steps(10) == 5
    with pytest.raises(ValueError, match="batch_size"):
        LoopSettings(batch_size=1)
    with pytest.raises(ValueError, match="learning_rate"):
        LoopSettings(learning_rate=0)


def test_train_config_round_trip(tmp_path):
    config = TrainConfig(output_dir=tmp_path / "run", base="scratch", vocab_size=5000,
                         eval_queries=[tmp_path / "q.jsonl"])
    config.save()
    loaded = TrainConfig.load(tmp_path / "run")
    assert loaded == config


def test_train_config_rejects_bad_values(tmp_path):
    with pytest.raises(ValueError, match="device"):
        TrainConfig(output_dir=tmp_path, device="tpu")
    with pytest.raises(ValueError, match="multiple of"):
        TrainConfig(output_dir=tmp_path, scratch_hidden_size=30, scratch_heads=4)
    with pytest.raises(FileNotFoundError, match="config.json"):
        TrainConfig.load(tmp_path / "none")
