"""Encoder behaviour on the tiny locally built model: shapes, norms, text edge cases, cache."""

from __future__ import annotations

import shutil
import unicodedata
from pathlib import Path

import numpy as np
import pytest
import torch

from encoder import EncoderError, PatentEncoder, default_model_path, load_encoder
from encoder.model import clean_text, fingerprint_files, resolve_device
from patentmatch.config import Settings

TEXTS = [
    "반도체 웨이퍼를 세정하는 장치",
    "딥러닝을 활용한 영상 인식 방법",
    "화장료 조성물",
    "리튬 이차전지용 양극 활물질",
    "A method for wafer cleaning using deep learning",
]


@pytest.fixture(scope="module")
def tiny_encoder(tiny_encoder_path: Path) -> PatentEncoder:
    return load_encoder(tiny_encoder_path, Settings(device="cpu", encode_batch_size=4))


def test_encode_shape_and_dtype(tiny_encoder):
    vectors = tiny_encoder.encode(TEXTS)
    assert vectors.shape == (len(TEXTS), tiny_encoder.dimension)
    assert vectors.dtype == np.float32


def test_encode_rows_are_unit_length(tiny_encoder):
    norms = np.linalg.norm(tiny_encoder.encode(TEXTS), axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)


def test_encode_empty_list(tiny_encoder):
    vectors = tiny_encoder.encode([])
    assert vectors.shape == (0, tiny_encoder.dimension)


def test_batch_matches_single(tiny_encoder):
    batched = tiny_encoder.encode(TEXTS, batch_size=2)
    singles = np.stack([tiny_encoder.encode([text], batch_size=1)[0] for text in TEXTS])
    np.testing.assert_allclose(batched, singles, atol=1e-5)


def test_encode_is_deterministic(tiny_encoder, tiny_encoder_path):
    first = tiny_encoder.encode(TEXTS)
    second = tiny_encoder.encode(TEXTS)
    reloaded = load_encoder(tiny_encoder_path, Settings(device="cpu")).encode(TEXTS)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first, reloaded, atol=1e-6)


def test_empty_text_gives_zero_row(tiny_encoder):
    vectors = tiny_encoder.encode(["", "   \n\t", TEXTS[0]])
    assert not vectors[0].any()
    assert not vectors[1].any()
    assert np.linalg.norm(vectors[2]) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
def test_empty_query_rejected(tiny_encoder, text):
    with pytest.raises(ValueError, match="empty"):
        tiny_encoder.encode_query(text)


def test_long_text_is_truncated(tiny_encoder):
    prefix = "반도체 웨이퍼 세정 장치의 노즐 구조 " * 200
    first = tiny_encoder.encode([prefix + "리튬 이차전지"])[0]
    second = tiny_encoder.encode([prefix + "화장료 조성물"])[0]
    tokens = tiny_encoder.sentence_transformer.tokenizer(prefix)["input_ids"]
    assert len(tokens) > tiny_encoder.max_seq_length
    np.testing.assert_array_equal(first, second)
    assert np.linalg.norm(first) == pytest.approx(1.0, abs=1e-5)


def test_mixed_korean_english(tiny_encoder):
    tokenizer = tiny_encoder.sentence_transformer.tokenizer
    korean, mixed = tiny_encoder.encode(["반도체 영상 인식", "반도체 deep learning 영상 인식"])
    pieces = tokenizer.tokenize("딥러닝 deep learning 영상 인식")
    assert tokenizer.unk_token not in pieces
    assert np.linalg.norm(mixed) == pytest.approx(1.0, abs=1e-5)
    assert not np.allclose(korean, mixed)


def test_decomposed_hangul_matches_composed(tiny_encoder):
    composed = "반도체 웨이퍼 세정"
    decomposed = unicodedata.normalize("NFD", composed)
    assert decomposed != composed
    np.testing.assert_array_equal(
        tiny_encoder.encode([composed]), tiny_encoder.encode([decomposed])
    )


def test_clean_text_collapses_whitespace():
    assert clean_text("  반도체\n\n 장치\t ") == "반도체 장치"


def test_encode_rejects_bare_string(tiny_encoder):
    with pytest.raises(TypeError, match="encode_query"):
        tiny_encoder.encode("반도체")


def test_encode_rejects_non_string_item(tiny_encoder):
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        tiny_encoder.encode(["반도체", None])


def test_encode_rejects_bad_batch_size(tiny_encoder):
    with pytest.raises(ValueError, match="batch_size"):
        tiny_encoder.encode(TEXTS, batch_size=0)


def test_encode_query_matches_encode(tiny_encoder):
    tiny_encoder.clear_cache()
    query = tiny_encoder.encode_query(TEXTS[1])
    assert query.shape == (tiny_encoder.dimension,)
    assert query.dtype == np.float32
    np.testing.assert_allclose(query, tiny_encoder.encode([TEXTS[1]])[0], atol=1e-6)


def test_query_cache_hits_and_copies(tiny_encoder):
    tiny_encoder.clear_cache()
    first = tiny_encoder.encode_query(TEXTS[0])
    first[:] = 0.0
    second = tiny_encoder.encode_query("  " + TEXTS[0] + " ")
    assert tiny_encoder.cache_misses == 1
    assert tiny_encoder.cache_hits == 1
    assert np.linalg.norm(second) == pytest.approx(1.0, abs=1e-5)


def test_query_cache_evicts_least_recent(tiny_encoder_path):
    encoder = load_encoder(tiny_encoder_path, Settings(device="cpu"), query_cache_size=2)
    encoder.encode_query(TEXTS[0])
    encoder.encode_query(TEXTS[1])
    encoder.encode_query(TEXTS[0])
    encoder.encode_query(TEXTS[2])
    encoder.encode_query(TEXTS[0])
    assert encoder.cache_hits == 2
    encoder.encode_query(TEXTS[1])
    assert encoder.cache_misses == 4


def test_fingerprint_stable_and_sensitive(tiny_encoder, tiny_encoder_path, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_encoder_path, copy)
    assert len(tiny_encoder.fingerprint) == 64
    assert fingerprint_files(copy) == tiny_encoder.fingerprint
    (copy / "README.md").write_text("edited card", encoding="utf-8")
    assert fingerprint_files(copy) == tiny_encoder.fingerprint
    with (copy / "model.safetensors").open("ab") as handle:
        handle.write(b"\0")
    assert fingerprint_files(copy) != tiny_encoder.fingerprint


def test_name_and_dimension(tiny_encoder, tiny_encoder_path):
    assert tiny_encoder.name == tiny_encoder_path.name
    assert tiny_encoder.dimension == 32
    assert tiny_encoder.device == "cpu"


def test_missing_folder_raises(tmp_path):
    with pytest.raises(EncoderError, match="not found"):
        load_encoder(tmp_path / "absent", Settings(device="cpu"))


def test_unreachable_hub_id_raises():
    with pytest.raises(EncoderError, match="klue/bert-base"):
        load_encoder("klue/bert-base", Settings(device="cpu"))


def test_explicit_length_over_limit_raises(tiny_encoder_path):
    with pytest.raises(ValueError, match="max_seq_length=4096"):
        load_encoder(tiny_encoder_path, Settings(device="cpu"), max_seq_length=4096)


def test_settings_length_over_limit_is_lowered(tiny_encoder_path):
    encoder = load_encoder(tiny_encoder_path, Settings(device="cpu", max_seq_length=4096))
    assert encoder.max_seq_length == 512


def test_settings_length_applied(tiny_encoder_path):
    encoder = load_encoder(tiny_encoder_path, Settings(device="cpu", max_seq_length=32))
    assert encoder.max_seq_length == 32


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_gpu_raises():
    with pytest.raises(EncoderError, match="CUDA"):
        resolve_device("cuda")


def test_auto_device_picks_available():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto") == expected


def test_default_model_path_under_encoder():
    path = default_model_path()
    assert path.parent.name == "models"
    assert path.parent.parent.name == "encoder"


def test_shipped_model_loads_and_encodes():
    from encoder import DEFAULT_MODEL_NAME

    assert (default_model_path() / "model.safetensors").is_file()
    encoder = load_encoder(None, Settings(device="cpu"))
    vectors = encoder.encode(["반도체 웨이퍼 세정 장치", "딥러닝을 활용한 영상 인식", ""])
    assert encoder.name == DEFAULT_MODEL_NAME
    assert vectors.shape == (3, encoder.dimension)
    np.testing.assert_allclose(np.linalg.norm(vectors[:2], axis=1), 1.0, atol=1e-5)
    assert not vectors[2].any()


def test_shipped_model_is_small():
    files = [path for path in default_model_path().rglob("*") if path.is_file()]
    total_mb = sum(path.stat().st_size for path in files) / 2**20
    assert total_mb < 60
