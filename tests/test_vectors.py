"""Vector store: search against brute force, updates, persistence and metadata checks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from search_api.vectors import (
    SearchTuning,
    StoreMetadata,
    VectorStore,
    VectorStoreError,
    VectorStoreMismatch,
    check_metadata,
    current_version,
    derive_factory,
    derive_nlist,
    read_metadata,
    resolve_factory,
)

DIM = 32


def unit_rows(rng: np.random.Generator, n: int, d: int = DIM) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def clustered_rows(rng: np.random.Generator, n: int, clusters: int = 50) -> np.ndarray:
    """Unit vectors around random centres, closer to real embeddings than uniform noise."""
    centres = unit_rows(rng, clusters)
    x = centres[rng.integers(0, clusters, n)] + 0.35 * rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def make_store(factory: str, n: int, seed: int = 0, clustered: bool = False) -> VectorStore:
    rng = np.random.default_rng(seed)
    meta = StoreMetadata(encoder_name="test", encoder_fingerprint="f" * 64, dimension=DIM,
                         factory=factory, es_index="idx-1", es_alias="alias")
    store = VectorStore(meta, use_gpu=False)
    rows = clustered_rows(rng, n) if clustered else unit_rows(rng, n)
    numbers = [f"10{2000 + i % 20:04d}{i:07d}" for i in range(n)]
    store.upsert(numbers, [f"h{i}" for i in range(n)], rows, unit_rows(rng, n))
    return store


def test_flat_search_equals_brute_force():
    store = make_store("Flat", 500)
    query = unit_rows(np.random.default_rng(9), 1)[0]
    rows, scores = store.search_abstracts(query, 50)
    expected = np.argsort(-(store.abstracts @ query), kind="stable")[:50]
    assert rows.tolist() == expected.tolist()
    assert np.allclose(scores, store.abstracts[expected] @ query, atol=1e-5)


def test_search_restricted_to_allowed_rows():
    store = make_store("Flat", 400)
    query = unit_rows(np.random.default_rng(3), 1)[0]
    allowed = np.arange(0, 400, 3)
    for k in (5, 100):  # 5: through the index with a selector; 100: exact numpy path
        rows, _ = store.search_abstracts(query, k, allowed)
        expected = allowed[np.argsort(-(store.abstracts[allowed] @ query), kind="stable")[:k]]
        assert set(rows.tolist()) <= set(allowed.tolist())
        assert rows.tolist() == expected.tolist()


def test_upsert_replaces_changed_patent():
    store = make_store("Flat", 100)
    number = store.application_numbers[7]
    new_vector = unit_rows(np.random.default_rng(5), 1)
    store.upsert([number], ["changed"], new_vector, new_vector)
    assert len(store) == 100
    assert store.retired == 1
    assert store.content_hash(number) == "changed"
    rows, _ = store.search_abstracts(new_vector[0], 1)
    assert store.application_numbers[rows[0]] == number
    assert store.index.ntotal == 100


def test_remove_excludes_patent_from_hnsw_search():
    store = make_store("HNSW16", 300)
    number = store.application_numbers[11]
    query = store.abstracts[11].copy()
    assert store.remove([number]) == 1
    rows, _ = store.search_abstracts(query, 20)
    assert 11 not in rows.tolist()
    assert len(store) == 299


def test_compact_drops_retired_rows():
    store = make_store("Flat", 50)
    store.remove(store.application_numbers[:10])
    assert store.needs_compaction()
    survivors = sorted(store.row_of)
    store.compact()
    assert store.retired == 0
    assert sorted(store.row_of) == survivors
    assert store.index.ntotal == 40


def test_rejects_unnormalised_vectors():
    store = make_store("Flat", 10)
    with pytest.raises(ValueError, match="L2-normalised"):
        store.upsert(["1020200000001"], ["h"], np.full((1, DIM), 2.0, np.float32),
                     unit_rows(np.random.default_rng(1), 1))


def test_rejects_wrong_dimension():
    store = make_store("Flat", 10)
    with pytest.raises(ValueError, match=r"shape \(1, 32\)"):
        store.upsert(["1020200000001"], ["h"], np.ones((1, 8), np.float32), np.ones((1, 8), np.float32))


@pytest.mark.parametrize("factory", ["Flat", "IVF16,SQ8", "HNSW16_SQ8"])
def test_save_load_round_trip(tmp_path, factory):
    store = make_store(factory, 800, clustered=True)
    store.remove(store.application_numbers[:3])
    store.save(tmp_path)
    loaded = VectorStore.load(tmp_path, use_gpu=False)
    assert loaded.meta.factory == factory
    assert loaded.meta.count == 797
    assert loaded.meta.versions["faiss"]
    assert loaded.row_of == store.row_of
    assert np.array_equal(loaded.titles, store.titles)
    query = store.abstracts[100]
    assert loaded.search_abstracts(query, 10)[0].tolist() == store.search_abstracts(query, 10)[0].tolist()


def test_save_switches_version_atomically(tmp_path):
    store = make_store("Flat", 20)
    first = store.save(tmp_path)
    store.remove([store.application_numbers[0]])
    second = store.save(tmp_path)
    assert current_version(tmp_path) == second
    assert not first.exists()
    assert read_metadata(tmp_path).count == 19
    assert not list(tmp_path.glob(".*.tmp"))


def test_load_reports_missing_store(tmp_path):
    with pytest.raises(VectorStoreError, match="patentmatch index build"):
        VectorStore.load(tmp_path)


def test_load_detects_inconsistent_files(tmp_path):
    store = make_store("Flat", 20)
    folder = store.save(tmp_path)
    rows = json.loads((folder / "rows.json").read_text())
    rows["application_numbers"].pop()
    rows["content_hashes"].pop()
    rows["live"].pop()
    (folder / "rows.json").write_text(json.dumps(rows))
    with pytest.raises(VectorStoreError, match="inconsistent"):
        VectorStore.load(tmp_path)


def test_metadata_mismatch_names_problem():
    meta = StoreMetadata(encoder_name="m", encoder_fingerprint="a" * 64, dimension=DIM,
                         factory="Flat", es_index="patents-v1", count=10)
    check_metadata(meta, es_index="patents-v1", es_count=10, encoder_fingerprint="a" * 64, dimension=DIM)
    with pytest.raises(VectorStoreMismatch, match="holds 10 patents but Elasticsearch has 11"):
        check_metadata(meta, es_count=11)
    with pytest.raises(VectorStoreMismatch, match="'patents-v1' but the alias now points to 'patents-v2'"):
        check_metadata(meta, es_index="patents-v2")
    with pytest.raises(VectorStoreMismatch, match="fingerprint"):
        check_metadata(meta, encoder_fingerprint="b" * 64)


def test_factory_derivation():
    assert derive_factory(50_000) == "Flat"
    assert derive_factory(1_600_000) == "IVF4096,SQ8"
    assert derive_factory(1_600_000, "hnsw") == "HNSW32_SQ8"
    assert derive_nlist(1000) == 25  # capped at 1000 // 39 training points per cell
    assert resolve_factory("IVFauto,SQ8", 1_600_000) == "IVF4096,SQ8"
    with pytest.raises(ValueError, match="faiss_factory is empty"):
        resolve_factory(" ", 10)


def test_invalid_factory_is_rejected():
    with pytest.raises(ValueError, match="Faiss cannot build"):
        VectorStore(StoreMetadata("m", "f", DIM, "NoSuchIndex"))


def test_ivf_with_too_few_vectors_names_fix():
    meta = StoreMetadata("m", "f" * 64, DIM, "IVF64,Flat")
    store = VectorStore(meta, use_gpu=False)
    rows = unit_rows(np.random.default_rng(0), 10)
    with pytest.raises(VectorStoreError, match="use 'Flat' or 'auto'"):
        store.upsert([f"10200000000{i:02d}" for i in range(10)], ["h"] * 10, rows, rows)


@pytest.mark.parametrize("factory,nprobe,minimum", [
    ("IVF32,SQ8", 0, 0.8),  # default nprobe 16 of 32 cells
    ("IVF32,SQ8", 32, 0.95),  # every cell: only the SQ8 rounding is left
    ("HNSW32_SQ8", 0, 0.95),
])
def test_approximate_recall_against_exact(factory, nprobe, minimum):
    approximate = make_store(factory, 4000, seed=2, clustered=True)
    approximate.tuning = SearchTuning(nprobe=nprobe)
    exact = make_store("Flat", 4000, seed=2, clustered=True)
    queries = clustered_rows(np.random.default_rng(77), 20)
    recalls = []
    for query in queries:
        truth = set(exact.search_abstracts(query, 100)[0].tolist())
        found = set(approximate.search_abstracts(query, 100)[0].tolist())
        recalls.append(len(truth & found) / len(truth))
    assert np.mean(recalls) >= minimum
