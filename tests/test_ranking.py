"""Ranking functions against numpy references, and filtered searches against the real Elasticsearch."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest
import pytest_asyncio
from elasticsearch import AsyncElasticsearch

from ingest.korean import analyze
from search_api import ranking
from search_api.indexing import run_indexing
from search_api.ranking import DemandVectors, SearchFilters
from search_api.search import RankingConfig, SearchRequest, SearchService
from search_api.vectors import StoreMetadata, VectorStore, VectorStore as Store, store_dir
from test_api_support import corpus, encoder, search_settings  # noqa: F401  (fixtures)


def unit(rng, n, d=16):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def random_store(n=3000, d=16, seed=0) -> VectorStore:
    rng = np.random.default_rng(seed)
    store = VectorStore(StoreMetadata("t", "f" * 64, d, "Flat"), use_gpu=False)
    store.upsert([f"10{2000 + i % 20}{i:07d}" for i in range(n)], ["h"] * n, unit(rng, n, d), unit(rng, n, d))
    return store


def brute_force_two_stage(store, vectors, k, n_candidates):
    abstract = store.abstracts @ vectors.abstract_query
    title = store.titles @ vectors.title_query
    candidates = np.argsort(-abstract, kind="stable")[:n_candidates]
    final = (abstract[candidates] + title[candidates]) / 2
    order = np.argsort(-final, kind="stable")[:k]
    return candidates[order], final[order]


def test_two_stage_equals_brute_force():
    store = random_store()
    rng = np.random.default_rng(42)
    for _ in range(5):
        q_abstract, q_title = unit(rng, 2)
        vectors = DemandVectors(q_abstract, q_title)
        ranked = ranking.rank_two_stage(store, vectors, k=20, n_candidates=1000)
        rows, scores = brute_force_two_stage(store, vectors, 20, 1000)
        assert [r.row for r in ranked] == rows.tolist()
        assert np.allclose([r.score for r in ranked], scores, atol=1e-6)
        for item in ranked:
            assert item.score == pytest.approx((item.abstract_similarity + item.title_similarity) / 2)


def test_two_stage_candidates_limit_title_stage():
    # A patent with a perfect title but an abstract outside the top N must not appear.
    store = random_store(n=500)
    rng = np.random.default_rng(1)
    q_abstract, q_title = unit(rng, 2)
    far = int(np.argmin(store.abstracts @ q_abstract))
    store.titles[far] = q_title
    ranked = ranking.rank_two_stage(store, DemandVectors(q_abstract, q_title), k=10, n_candidates=50)
    assert far not in [r.row for r in ranked]


def test_dense_ranks_by_abstract_only():
    store = random_store(n=300)
    q_abstract, q_title = unit(np.random.default_rng(3), 2)
    ranked = ranking.rank_dense(store, DemandVectors(q_abstract, q_title), k=10)
    expected = np.argsort(-(store.abstracts @ q_abstract), kind="stable")[:10]
    assert [r.row for r in ranked] == expected.tolist()


def test_fuse_min_max_weights():
    fused = ranking.fuse_min_max({"a": 0.9, "b": 0.5, "c": 0.1}, {"c": 20.0, "d": 10.0}, bm25_weight=0.5)
    assert fused["a"] == pytest.approx(0.5)  # dense 1.0, bm25 missing -> 0
    assert fused["c"] == pytest.approx(0.5)  # dense 0.0, bm25 1.0
    assert fused["d"] == pytest.approx(0.0)  # dense missing -> 0, bm25 min -> 0
    assert fused["b"] == pytest.approx(0.25)
    with pytest.raises(ValueError, match="bm25_weight"):
        ranking.fuse_min_max({}, {}, 1.5)


def test_fuse_rrf_matches_formula():
    fused = ranking.fuse_rrf([["a", "b"], ["b", "c"]], k=60)
    assert fused["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert fused["a"] == pytest.approx(1 / 61)
    assert max(fused, key=fused.get) == "b"


def test_hybrid_scores_bm25_only_hits_exactly():
    store = random_store(n=400)
    q_abstract, q_title = unit(np.random.default_rng(8), 2)
    vectors = DemandVectors(q_abstract, q_title)
    outsider = int(np.argmin(store.abstracts @ q_abstract))
    number = store.application_numbers[outsider]
    ranked = ranking.rank_hybrid(store, vectors, [(number, 50.0)], k=400, n_candidates=20, bm25_weight=0.9)
    assert ranked[0].application_number == number
    assert ranked[0].abstract_similarity == pytest.approx(float(store.abstracts[outsider] @ q_abstract))
    assert ranked[0].bm25_score == 50.0


def test_no_close_match_uses_similarities():
    items = [ranking.Ranked(0, "x", 1.0, abstract_similarity=0.2, title_similarity=0.3)]
    assert ranking.no_close_match(items, 0.3)
    assert not ranking.no_close_match(items, 0.25)
    assert ranking.no_close_match([], 0.0)


@pytest.mark.parametrize("raw,expected", [
    ("g06n", "G06N"), ("H01L21", "H01L 21"), ("  h01l  21/67 ", "H01L 21/67"), ("A61", "A61"),
])
def test_canonical_ipc_prefix(raw, expected):
    assert ranking.canonical_ipc_prefix(raw) == expected


@pytest.mark.parametrize("raw", ["XYZ", "H01L/21", "G06 3/08", ""])
def test_canonical_ipc_prefix_rejects(raw):
    with pytest.raises(ValueError, match="IPC prefix"):
        ranking.canonical_ipc_prefix(raw)


def test_demand_texts_modes():
    assert ranking.demand_texts("제목", "설명", "concat") == ("제목. 설명", None)
    assert ranking.demand_texts("제목", "설명", "separate") == ("제목", "설명")
    assert ranking.demand_texts("제목", "  ", "concat") == ("제목", None)
    with pytest.raises(ValueError, match="description_mode"):
        ranking.demand_texts("제목", None, "both")


##### against Elasticsearch


def allowed(document: dict, filters: SearchFilters) -> bool:
    """Python reference of the filter semantics."""
    if filters.ipc_prefix and not any(code.startswith(filters.ipc_prefix) for code in document["ipc"]):
        return False
    if filters.six_t and document["six_t"] not in filters.six_t:
        return False
    day = date.fromisoformat(document["application_date"])
    if filters.application_date_from and day < filters.application_date_from:
        return False
    if filters.application_date_to and day > filters.application_date_to:
        return False
    if filters.applicant and filters.applicant not in document["applicant"]:
        return False
    if filters.register_status and document["register_status"] not in filters.register_status:
        return False
    return True


FILTER_CASES = [
    SearchFilters(),
    SearchFilters(six_t=("IT", "NT")),
    SearchFilters(ipc_prefix="A61K"),
    SearchFilters(ipc_prefix="H01L 21"),
    SearchFilters(application_date_from=date(2010, 1, 1), application_date_to=date(2015, 12, 31)),
    SearchFilters(applicant="한국과학기술원"),
    SearchFilters(register_status=("등록",)),
    SearchFilters(six_t=("BT",), register_status=("공개", "소멸"), application_date_from=date(2008, 1, 1)),
]


@pytest_asyncio.fixture()
async def service(es_url, corpus, encoder, search_settings, es_client):
    run_indexing(search_settings, encoder, es_client, rebuild=True)
    store = Store.load(store_dir(search_settings.cache_dir, corpus.alias), use_gpu=False)
    es = AsyncElasticsearch(es_url)
    yield SearchService(es, corpus.alias, store, encoder, analyze, RankingConfig(n_candidates=30))
    await es.close()


@pytest.mark.parametrize("filters", FILTER_CASES)
@pytest.mark.parametrize("max_filter_ids", [200_000, 3])  # 3: over-fetch and post-filter
@pytest.mark.asyncio
async def test_filtered_two_stage_equals_reference(service, corpus, encoder, filters, max_filter_ids):
    service.config = RankingConfig(n_candidates=30, max_filter_ids=max_filter_ids)
    title = "딥러닝 영상 인식"
    ranked = await service.rank(SearchRequest(title=title, k=10, mode="two_stage", filters=filters))

    store = service.store
    rows = np.asarray([store.row_of[d["application_number"]] for d in corpus.documents if allowed(d, filters)])
    query = encoder.encode_query(title)
    abstract = store.abstracts[rows] @ query
    candidates = rows[np.argsort(-abstract, kind="stable")[:30]]
    final = (store.abstracts[candidates] @ query + store.titles[candidates] @ query) / 2
    expected = candidates[np.argsort(-final, kind="stable")[:10]]
    assert [r.row for r in ranked] == expected.tolist()


@pytest.mark.parametrize("mode", ["hybrid", "bm25", "dense"])
@pytest.mark.asyncio
async def test_filters_hold_in_every_mode(service, corpus, mode):
    filters = SearchFilters(six_t=("ET",), register_status=("등록", "공개"))
    ranked = await service.rank(SearchRequest(title="리튬 배터리 전극", k=20, mode=mode, filters=filters))
    by_number = {d["application_number"]: d for d in corpus.documents}
    assert ranked
    for item in ranked:
        assert allowed(by_number[item.application_number], filters)


@pytest.mark.asyncio
async def test_bm25_finds_keyword_topic(service, corpus):
    ranked = await service.rank(SearchRequest(title="웨이퍼 식각", k=5, mode="bm25"))
    by_number = {d["application_number"]: d for d in corpus.documents}
    assert ranked
    assert all(by_number[r.application_number]["six_t"] == "NT" for r in ranked)
    assert all(r.abstract_similarity is not None for r in ranked)


@pytest.mark.asyncio
async def test_filter_without_matches_returns_nothing(service):
    filters = SearchFilters(applicant="존재하지않는출원인")
    for mode in ("two_stage", "hybrid", "dense", "bm25"):
        ranked = await service.rank(SearchRequest(title="딥러닝", k=5, mode=mode, filters=filters))
        assert ranked == []


@pytest.mark.asyncio
async def test_description_changes_abstract_query(service, encoder):
    vectors = service._encode_demand("영상 인식", "카메라 객체 검출 신경망")
    assert np.allclose(vectors.title_query, encoder.encode_query("영상 인식"))
    assert np.allclose(vectors.abstract_query, encoder.encode_query("영상 인식. 카메라 객체 검출 신경망"))


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", ["two_stage", "hybrid", "dense", "bm25"])
async def test_rank_with_best_excludes_patents(service, mode):
    request = SearchRequest(title="딥러닝 영상 인식", k=5, mode=mode)
    first, _ = await service.rank_with_best(request)
    excluded = frozenset({first[0].application_number})
    again, best = await service.rank_with_best(request, exclude=excluded)
    assert first[0].application_number not in [r.application_number for r in again]
    assert len(again) == 5
    assert best >= ranking.best_similarity(again)


@pytest.mark.asyncio
async def test_best_similarity_covers_all_candidates(service, encoder):
    request = SearchRequest(title="딥러닝 영상 인식", k=1, mode="hybrid")
    _, best = await service.rank_with_best(request)
    store = service.store
    query = encoder.encode_query("딥러닝 영상 인식")
    rows = store.search_abstracts(query, 30)[0]
    assert best == pytest.approx(float(np.max((store.abstracts[rows] @ query + store.titles[rows] @ query) / 2)))
