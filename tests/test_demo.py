"""``patentmatch demo`` preparation on the bundled sample against the real Elasticsearch."""

from __future__ import annotations

import pytest

from patentmatch.config import Settings
from search_api.demo import DemoError, demo_inputs, prepare


def test_demo_inputs_include_bundled_sample():
    inputs = demo_inputs()
    assert inputs[0].name == "kipris-sample.jsonl.gz"
    assert all(path.is_file() for path in inputs)


@pytest.mark.slow  # ingests and encodes the whole bundled sample: about 2 minutes on 2 cores
def test_demo_prepares_then_reuses(es_url, index_prefix, tmp_path, tiny_encoder_path):
    settings = Settings(es_url=es_url, index_alias=f"{index_prefix}-demo", cache_dir=tmp_path,
                        model=str(tiny_encoder_path))
    first = prepare(settings)
    assert first.ingested is True
    assert first.indexed is True
    assert first.count > 10_000
    assert len(first.store) == first.count
    assert first.store.meta.es_index == first.es_index

    second = prepare(settings)
    assert second.ingested is False
    assert second.indexed is False
    assert second.count == first.count
    assert len(second.store) == first.count


def test_demo_without_model_names_fix(es_url, index_prefix, tmp_path):
    settings = Settings(es_url=es_url, index_alias=f"{index_prefix}-demo", cache_dir=tmp_path,
                        model=str(tmp_path / "no-model"))
    from search_api.demo import load_demo_encoder

    with pytest.raises(DemoError, match="PATENTMATCH_MODEL"):
        load_demo_encoder(settings)
