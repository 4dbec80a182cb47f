"""Metric, fusion and exact-search functions of the quality harness, against hand-computed values."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from benchmarks.quality.dense import dense_rankings, mean_query_vectors, two_stage_rankings
from benchmarks.quality.metrics import (
    dcg_at_k,
    evaluate_rankings,
    minmax_fusion,
    ndcg_at_k,
    recall_at_k,
    reciprocal_rank,
    reciprocal_rank_fusion,
    top_k_rows,
    two_stage_scores,
)
from benchmarks.quality.querysets import (
    PRIOR_ART,
    QUESTIONS,
    Query,
    QuerySetError,
    load_query_sets,
)


def test_dcg_hand_computed():
    # Hits at ranks 1 and 3: 1/log2(2) + 1/log2(4) = 1.5.
    assert dcg_at_k(["a", "x", "b"], {"a", "b"}, 10) == pytest.approx(1.5)


def test_ndcg_hand_computed():
    # Ideal for two relevant: 1 + 1/log2(3).
    expected = 1.5 / (1 + 1 / math.log2(3))
    assert ndcg_at_k(["a", "x", "b"], {"a", "b"}, 10) == pytest.approx(expected)


def test_ndcg_perfect_and_empty():
    assert ndcg_at_k(["a", "b", "x"], {"a", "b"}, 10) == pytest.approx(1.0)
    assert ndcg_at_k([], {"a"}, 10) == 0.0


def test_ndcg_cutoff_ignores_later_hits():
    assert ndcg_at_k(["x", "y", "a"], {"a"}, 2) == 0.0


def test_ndcg_ideal_capped_at_k():
    # Three relevant, k = 1: the ideal DCG is 1, so one hit at rank 1 scores 1.
    assert ndcg_at_k(["a"], {"a", "b", "c"}, 1) == pytest.approx(1.0)


def test_recall_hand_computed():
    ranked = ["a", "x", "y", "b"]
    assert recall_at_k(ranked, {"a", "b"}, 2) == pytest.approx(0.5)
    assert recall_at_k(ranked, {"a", "b"}, 4) == pytest.approx(1.0)


def test_reciprocal_rank_hand_computed():
    assert reciprocal_rank(["x", "y", "a"], {"a"}) == pytest.approx(1 / 3)
    assert reciprocal_rank(["x", "y", "a"], {"a"}, k=2) == 0.0
    assert reciprocal_rank(["x"], {"a"}) == 0.0


@pytest.mark.parametrize("metric", [ndcg_at_k, recall_at_k, reciprocal_rank])
def test_metrics_reject_empty_relevant(metric):
    args = (["a"], set(), 10) if metric is not reciprocal_rank else (["a"], set())
    with pytest.raises(ValueError, match="relevant is empty"):
        metric(*args)


def test_metrics_reject_bad_k():
    with pytest.raises(ValueError, match="k must be"):
        recall_at_k(["a"], {"a"}, 0)


def test_evaluate_rankings_averages():
    rankings = {"q1": ["a", "x"], "q2": ["x", "b"]}
    qrels = {"q1": {"a"}, "q2": {"b"}, "q3": set()}
    result = evaluate_rankings(rankings, qrels, recall_ks=(1, 100))
    assert result["queries"] == 2
    assert result["mrr"] == pytest.approx((1 + 0.5) / 2)
    assert result["recall@1"] == pytest.approx(0.5)
    assert result["recall@100"] == pytest.approx(1.0)
    assert result["ndcg@10"] == pytest.approx((1 + 1 / math.log2(3)) / 2)


def test_evaluate_rankings_missing_query_scores_zero():
    result = evaluate_rankings({}, {"q1": {"a"}})
    assert result["ndcg@10"] == 0.0
    assert result["mrr"] == 0.0


def test_evaluate_rankings_needs_relevant():
    with pytest.raises(ValueError, match="no query"):
        evaluate_rankings({"q": ["a"]}, {"q": set()})


def test_rrf_hand_computed():
    fused = reciprocal_rank_fusion([["a", "b"], ["b", "c"]], k=1)
    # a: 1/2; b: 1/3 + 1/2; c: 1/3.
    assert fused == ["b", "a", "c"]


def test_rrf_weights_and_limit():
    fused = reciprocal_rank_fusion([["a"], ["b"]], k=0, weights=[1.0, 2.0], limit=1)
    assert fused == ["b"]
    with pytest.raises(ValueError, match="one weight per ranking"):
        reciprocal_rank_fusion([["a"]], weights=[1.0, 2.0])


def test_minmax_fusion_hand_computed():
    lexical = {"a": 10.0, "b": 5.0, "c": 0.0}
    dense = {"c": 0.9, "b": 0.5}
    # a: 0.5*1; b: 0.5*0.5 + 0.5*0; c: 0.5*0 + 0.5*1.
    fused = minmax_fusion([lexical, dense], [0.5, 0.5])
    assert fused[-1] == "b"
    assert set(fused[:2]) == {"a", "c"}


def test_minmax_fusion_constant_scores():
    assert minmax_fusion([{"a": 3.0, "b": 3.0}], [1.0]) == ["a", "b"]


def test_top_k_rows_order_and_ties():
    scores = np.array([0.1, 0.9, 0.5, 0.9, -1.0])
    assert top_k_rows(scores, 3).tolist() == [1, 3, 2]
    assert top_k_rows(scores, 10).tolist() == [1, 3, 2, 0, 4]


def _unit_rows(rng, n, d):
    rows = rng.normal(size=(n, d)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_two_stage_matches_brute_force():
    rng = np.random.default_rng(0)
    abstracts, titles = _unit_rows(rng, 200, 16), _unit_rows(rng, 200, 16)
    query = _unit_rows(rng, 1, 16)[0]
    rows, scores = two_stage_scores(query, abstracts, titles, candidates=50, k=10,
                                    exclude=[7])
    abstract_scores = abstracts @ query
    abstract_scores[7] = -np.inf
    stage_one = np.argsort(-abstract_scores)[:50]
    final = (abstracts[stage_one] @ query + titles[stage_one] @ query) / 2
    expected = stage_one[np.argsort(-final)[:10]]
    assert rows.tolist() == expected.tolist()
    np.testing.assert_allclose(scores, np.sort(final)[::-1][:10], rtol=1e-5)
    assert 7 not in rows


def test_two_stage_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="same shape"):
        two_stage_scores(np.ones(4), np.ones((3, 4)), np.ones((2, 4)))


def test_dense_rankings_exclude_query_patent():
    docs = np.eye(3, dtype=np.float32)
    queries = [Query("q", "text", frozenset({"b"}), frozenset({"a"}))]
    ranking = dense_rankings(queries, docs[[0]], docs, ["a", "b", "c"], k=3)
    assert ranking["q"][0] != "a"
    assert "a" not in ranking["q"]
    assert len(ranking["q"]) == 2


def test_two_stage_rankings_exclude_query_patent():
    docs = np.eye(3, dtype=np.float32)
    queries = [Query("q", "text", frozenset({"b"}), frozenset({"a"}))]
    ranking = two_stage_rankings(queries, docs[[0]], docs, docs, ["a", "b", "c"], k=3)
    assert "a" not in ranking["q"]


def test_mean_query_vectors_unit_and_zero_rows():
    first = np.array([[1.0, 0.0], [0.0, 0.0]], dtype=np.float32)
    second = np.array([[0.0, 1.0], [0.0, 1.0]], dtype=np.float32)
    mean = mean_query_vectors(first, second)
    np.testing.assert_allclose(np.linalg.norm(mean, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(mean[1], [0.0, 1.0])


CORPUS = {"Q1": ("제목 하나", "요약 하나"), "R1": ("제목 둘", "요약 둘"),
          "R2": ("제목 셋", "요약 셋")}


def _write(path, records):
    path.write_text("\n".join(json.dumps(record, ensure_ascii=False) for record in records),
                    encoding="utf-8")
    return path


def test_prior_art_file_groups_and_drops(tmp_path):
    path = _write(tmp_path / "pairs.jsonl", [
        {"query_application_number": "Q1", "relevant_application_number": "R1"},
        {"query_application_number": "Q1", "relevant_application_number": "R2"},
        {"query_application_number": "Q1", "relevant_application_number": "MISSING"},
        {"query_application_number": "GONE", "relevant_application_number": "R1"},
    ])
    title_abstract, title = load_query_sets(path, CORPUS)
    assert title_abstract.kind == PRIOR_ART
    assert [query.query_id for query in title_abstract.queries] == ["Q1"]
    assert title_abstract.queries[0].relevant == {"R1", "R2"}
    assert title_abstract.queries[0].exclude == {"Q1"}
    assert title_abstract.queries[0].text == "제목 하나 요약 하나"
    assert title.queries[0].text == "제목 하나"
    assert title_abstract.dropped_relevant == 1
    assert title_abstract.dropped_queries == 1
    assert title.label == "pairs [title]"


def test_question_file(tmp_path):
    path = _write(tmp_path / "fto.jsonl", [
        {"query_id": "1", "query": "마스크 팩", "relevant_application_numbers": ["R1", "X"]},
        {"query_id": "2", "query": "화장품", "relevant_application_numbers": ["X"]},
    ])
    (questions,) = load_query_sets(path, CORPUS)
    assert questions.kind == QUESTIONS
    assert len(questions.queries) == 1
    assert questions.queries[0].relevant == {"R1"}
    assert questions.queries[0].exclude == frozenset()
    assert questions.dropped_relevant == 2
    assert questions.dropped_queries == 1


def test_unknown_shape_names_file_and_line(tmp_path):
    path = _write(tmp_path / "odd.jsonl", [{"question": "x"}])
    with pytest.raises(QuerySetError, match=r"odd\.jsonl:1: unknown query shape"):
        load_query_sets(path, CORPUS)


def test_invalid_json_names_line(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"query": "a", "relevant_application_numbers": ["R1"]}\n{oops\n',
                    encoding="utf-8")
    with pytest.raises(QuerySetError, match=r"broken\.jsonl:2: invalid JSON"):
        load_query_sets(path, CORPUS)


def test_mixed_shapes_rejected(tmp_path):
    path = _write(tmp_path / "mixed.jsonl", [
        {"query": "a", "relevant_application_numbers": ["R1"]},
        {"query_application_number": "Q1", "relevant_application_number": "R1"},
    ])
    with pytest.raises(QuerySetError, match="mixes query shapes"):
        load_query_sets(path, CORPUS)


def test_bundled_dev_sets_load(sample_path):
    from pathlib import Path

    from training.corpus import read_patents

    eval_dir = Path(__file__).resolve().parent.parent / "benchmarks" / "data" / "eval"
    corpus = {patent.application_number: (patent.title, patent.abstract)
              for patent in read_patents(sample_path)}
    pairs = load_query_sets(eval_dir / "dev-prior-art-pairs.jsonl", corpus)
    (fto,) = load_query_sets(eval_dir / "dev-fto-queries.jsonl", corpus)
    assert len(pairs[0].queries) == 90
    assert sum(len(query.relevant) for query in pairs[0].queries) == 101
    assert len(fto.queries) == 3
