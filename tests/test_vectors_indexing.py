"""The indexing job against the real Elasticsearch: build, update of changed patents, resume."""

from __future__ import annotations

import numpy as np
import pytest

from ingest.korean import analyze
from ingest.normalize import content_hash
from search_api.indexing import run_indexing
from search_api.vectors import VectorStore, VectorStoreError, read_metadata, store_dir
from test_api_support import HashingEncoder, corpus, encoder, search_settings  # noqa: F401  (fixtures)


def test_build_encodes_every_patent(search_settings, encoder, es_client, corpus):
    summary = run_indexing(search_settings, encoder, es_client, rebuild=True, batch_size=16)
    assert summary.encoded == len(corpus.documents)
    assert summary.count == len(corpus.documents)
    meta = read_metadata(store_dir(search_settings.cache_dir, corpus.alias))
    assert meta.es_index == corpus.index
    assert meta.es_alias == corpus.alias
    assert meta.encoder_fingerprint == encoder.fingerprint
    assert meta.factory == "Flat"
    store = VectorStore.load(store_dir(search_settings.cache_dir, corpus.alias), use_gpu=False)
    document = corpus.documents[5]
    row = store.row_of[document["application_number"]]
    assert np.allclose(store.titles[row], encoder.encode_query(document["title"]))
    assert np.allclose(store.abstracts[row], encoder.encode_query(document["abstract"]))


def test_update_encodes_only_changes(search_settings, encoder, es_client, corpus):
    run_indexing(search_settings, encoder, es_client, rebuild=True)
    changed, removed = corpus.documents[0], corpus.documents[1]
    new_abstract = "완전히 새로운 초록 내용 광학 렌즈"
    es_client.update(index=corpus.index, id=changed["application_number"], doc={
        "abstract": new_abstract, "abstract_terms": analyze(new_abstract),
        "content_hash": content_hash(changed["title"], new_abstract)})
    es_client.delete(index=corpus.index, id=removed["application_number"])
    added = dict(corpus.documents[2], application_number="1020259999999")
    es_client.index(index=corpus.index, id=added["application_number"], document=added, refresh=True)

    summary = run_indexing(search_settings, encoder, es_client)
    assert summary.encoded == 2
    assert summary.removed == 1
    assert summary.unchanged == len(corpus.documents) - 2
    assert summary.count == len(corpus.documents)
    store = VectorStore.load(store_dir(search_settings.cache_dir, corpus.alias), use_gpu=False)
    assert removed["application_number"] not in store.row_of
    row = store.row_of[changed["application_number"]]
    assert np.allclose(store.abstracts[row], encoder.encode_query(new_abstract))
    assert store.search_abstracts(encoder.encode_query(new_abstract), 1)[0].tolist() == [row]


def test_update_without_changes_encodes_nothing(search_settings, encoder, es_client, corpus):
    run_indexing(search_settings, encoder, es_client, rebuild=True)
    summary = run_indexing(search_settings, encoder, es_client)
    assert summary.encoded == 0
    assert summary.unchanged == len(corpus.documents)


class FailingEncoder(HashingEncoder):
    """Raises on the n-th call to ``encode``, like a crash in the middle of a run."""

    def __init__(self, fail_at: int):
        super().__init__()
        self.fail_at = fail_at

    def encode(self, texts, batch_size=None, show_progress=None):
        if self.calls + 1 == self.fail_at:
            self.calls += 1
            raise RuntimeError("simulated crash")
        return super().encode(texts, batch_size, show_progress)


def test_interrupted_build_resumes_from_checkpoints(search_settings, es_client, corpus):
    # Two encode calls per batch (abstracts, titles): failing at call 5 leaves 2 batches saved.
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_indexing(search_settings, FailingEncoder(fail_at=5), es_client, rebuild=True, batch_size=10)
    checkpoints = list((store_dir(search_settings.cache_dir, ".checkpoints") / corpus.alias).glob("batch-*.npz"))
    assert len(checkpoints) == 2

    summary = run_indexing(search_settings, HashingEncoder(), es_client, rebuild=True, batch_size=10)
    assert summary.from_checkpoint == 20
    assert summary.encoded == len(corpus.documents) - 20
    assert summary.count == len(corpus.documents)
    assert not checkpoints[0].exists()


def test_missing_alias_names_fix(search_settings, encoder, es_client, index_prefix):
    settings = type(search_settings)(es_url=search_settings.es_url, index_alias=f"{index_prefix}-none",
                                     cache_dir=search_settings.cache_dir)
    with pytest.raises(VectorStoreError, match="patentmatch ingest"):
        run_indexing(settings, encoder, es_client)


def test_ivf_factory_from_settings(search_settings, encoder, es_client, corpus):
    settings = type(search_settings)(es_url=search_settings.es_url, index_alias=corpus.alias,
                                     cache_dir=search_settings.cache_dir, faiss_factory="IVFauto,Flat")
    summary = run_indexing(settings, encoder, es_client, rebuild=True)
    assert summary.factory == "IVF1,Flat"  # 60 patents give one cell at 39 points per cell
