"""Exact dense retrieval over L2-normalised vectors (inner product = cosine)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from benchmarks.quality.metrics import top_k_rows, two_stage_scores
from benchmarks.quality.querysets import Query

Rankings = dict[str, list[str]]


def _excluded_rows(query: Query, row_of: Mapping[str, int]) -> list[int]:
    return [row_of[number] for number in query.exclude if number in row_of]


def dense_rankings(
    queries: Sequence[Query],
    query_vectors: np.ndarray,
    doc_vectors: np.ndarray,
    doc_ids: Sequence[str],
    k: int = 1000,
) -> Rankings:
    """Rank documents by cosine to each query; excluded patents never appear.

    Args:
        query_vectors: ``(len(queries), d)`` unit rows.
        doc_vectors: ``(n, d)`` unit rows, one per id of ``doc_ids``.
        k: results kept per query (default 1000).
    """
    row_of = {number: row for row, number in enumerate(doc_ids)}
    all_scores = query_vectors @ doc_vectors.T
    rankings: Rankings = {}
    for index, query in enumerate(queries):
        scores = all_scores[index]
        excluded = _excluded_rows(query, row_of)
        if excluded:
            scores = scores.copy()
            scores[excluded] = -np.inf
        rows = top_k_rows(scores, k + len(excluded))
        rankings[query.query_id] = [doc_ids[row] for row in rows
                                    if np.isfinite(scores[row])][:k]
    return rankings


def dense_scores(
    queries: Sequence[Query],
    query_vectors: np.ndarray,
    doc_vectors: np.ndarray,
    doc_ids: Sequence[str],
    k: int = 1000,
) -> dict[str, dict[str, float]]:
    """Like :func:`dense_rankings` but return ``{query_id: {doc_id: cosine}}`` for fusion."""
    row_of = {number: row for row, number in enumerate(doc_ids)}
    all_scores = query_vectors @ doc_vectors.T
    result: dict[str, dict[str, float]] = {}
    for index, query in enumerate(queries):
        scores = all_scores[index].copy()
        scores[_excluded_rows(query, row_of)] = -np.inf
        rows = top_k_rows(scores, k)
        result[query.query_id] = {doc_ids[row]: float(scores[row]) for row in rows
                                  if np.isfinite(scores[row])}
    return result


def two_stage_scores_by_query(
    queries: Sequence[Query],
    query_vectors: np.ndarray,
    abstract_vectors: np.ndarray,
    title_vectors: np.ndarray,
    doc_ids: Sequence[str],
    *,
    candidates: int = 1000,
    k: int = 1000,
) -> dict[str, dict[str, float]]:
    """Score by abstract top-``candidates``, then the mean of abstract and title cosines.

    Returns:
        ``{query_id: {doc_id: final score}}``, each dict in rank order.
    """
    row_of = {number: row for row, number in enumerate(doc_ids)}
    result: dict[str, dict[str, float]] = {}
    for index, query in enumerate(queries):
        rows, scores = two_stage_scores(
            query_vectors[index], abstract_vectors, title_vectors,
            candidates=candidates, k=k, exclude=_excluded_rows(query, row_of),
        )
        result[query.query_id] = {doc_ids[row]: float(score)
                                  for row, score in zip(rows, scores)}
    return result


def two_stage_rankings(
    queries: Sequence[Query],
    query_vectors: np.ndarray,
    abstract_vectors: np.ndarray,
    title_vectors: np.ndarray,
    doc_ids: Sequence[str],
    *,
    candidates: int = 1000,
    k: int = 1000,
) -> Rankings:
    """Rank by abstract top-``candidates`` then the mean of abstract and title cosines."""
    scored = two_stage_scores_by_query(queries, query_vectors, abstract_vectors,
                                       title_vectors, doc_ids, candidates=candidates, k=k)
    return {query_id: list(scores) for query_id, scores in scored.items()}


def mean_query_vectors(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Return the L2-normalised sum of two sets of unit query vectors, row by row.

    A zero row (empty text) in one set leaves the other set's row unchanged.
    """
    total = first + second
    norms = np.linalg.norm(total, axis=1, keepdims=True)
    return (total / np.maximum(norms, 1e-12)).astype(np.float32)
