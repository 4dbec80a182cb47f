"""Retrieval metrics and score fusion as plain functions over ranked id lists.

Every metric takes ``ranked`` (result ids, best first, no duplicates) and
``relevant`` (the set of ids judged relevant, binary relevance) and returns a
float in [0, 1]. A query with no relevant ids raises ``ValueError`` because
every metric is undefined for it; callers drop such queries before scoring and
report how many they dropped.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Hashable, Iterable, Mapping, Sequence

import numpy as np

Ranking = Sequence[Hashable]


def _check_relevant(relevant: Collection[Hashable]) -> None:
    if not relevant:
        raise ValueError(
            "relevant is empty: metrics are undefined for a query without relevant "
            "documents; drop the query before scoring"
        )


def _check_k(k: int) -> None:
    if k <= 0:
        raise ValueError(f"k must be a positive cut-off, found {k!r}")


def dcg_at_k(ranked: Ranking, relevant: Collection[Hashable], k: int) -> float:
    """Return the discounted cumulative gain of the first ``k`` results (gain 1 per hit)."""
    _check_k(k)
    return sum(
        1.0 / math.log2(rank + 2) for rank, doc in enumerate(ranked[:k]) if doc in relevant
    )


def ndcg_at_k(ranked: Ranking, relevant: Collection[Hashable], k: int = 10) -> float:
    """Return nDCG@k with binary gains; the ideal ranking puts every relevant id first."""
    _check_relevant(relevant)
    ideal = sum(1.0 / math.log2(rank + 2) for rank in range(min(k, len(relevant))))
    return dcg_at_k(ranked, relevant, k) / ideal


def recall_at_k(ranked: Ranking, relevant: Collection[Hashable], k: int) -> float:
    """Return the share of relevant ids found in the first ``k`` results."""
    _check_relevant(relevant)
    _check_k(k)
    hits = sum(1 for doc in ranked[:k] if doc in relevant)
    return hits / len(relevant)


def reciprocal_rank(
    ranked: Ranking, relevant: Collection[Hashable], k: int | None = None
) -> float:
    """Return 1 / rank of the first relevant id (ranks start at 1), 0 when none is found.

    Args:
        k: look only at the first ``k`` results; ``None`` looks at all of them.
    """
    _check_relevant(relevant)
    cut = ranked if k is None else ranked[:k]
    for rank, doc in enumerate(cut, start=1):
        if doc in relevant:
            return 1.0 / rank
    return 0.0


def evaluate_rankings(
    rankings: Mapping[str, Ranking],
    qrels: Mapping[str, Collection[Hashable]],
    *,
    ndcg_k: int = 10,
    recall_ks: Iterable[int] = (10, 100),
) -> dict[str, float]:
    """Average nDCG@k, Recall@k and MRR over the queries of ``qrels``.

    Args:
        rankings: query id -> ranked result ids; a query missing here counts as an
            empty ranking (every metric 0), so a crashed retriever cannot look good.
        qrels: query id -> relevant ids; queries without relevant ids are skipped.
        ndcg_k: cut-off of nDCG (default 10).
        recall_ks: cut-offs of recall (default 10 and 100).

    Returns:
        ``{"ndcg@10": ..., "recall@10": ..., "recall@100": ..., "mrr": ...,
        "queries": n}``; MRR looks at the whole ranking.
    """
    recall_ks = tuple(recall_ks)
    totals: dict[str, float] = {f"ndcg@{ndcg_k}": 0.0, "mrr": 0.0}
    totals.update({f"recall@{k}": 0.0 for k in recall_ks})
    scored = 0
    for query_id, relevant in qrels.items():
        if not relevant:
            continue
        ranked = rankings.get(query_id, [])
        totals[f"ndcg@{ndcg_k}"] += ndcg_at_k(ranked, relevant, ndcg_k)
        for k in recall_ks:
            totals[f"recall@{k}"] += recall_at_k(ranked, relevant, k)
        totals["mrr"] += reciprocal_rank(ranked, relevant)
        scored += 1
    if scored == 0:
        raise ValueError("no query has a relevant document; nothing to evaluate")
    result = {name: value / scored for name, value in totals.items()}
    result["queries"] = scored
    return result


def reciprocal_rank_fusion(
    rankings: Sequence[Ranking],
    *,
    k: float = 60.0,
    weights: Sequence[float] | None = None,
    limit: int | None = None,
) -> list[Hashable]:
    """Fuse ranked lists with reciprocal rank fusion: score(d) = sum_i w_i / (k + rank_i(d)).

    Ranks start at 1; an id missing from a list gets nothing from it. Ties keep the
    order in which ids were first seen, so the result is deterministic.

    Args:
        k: the RRF constant (default 60, the value of Cormack et al., 2009).
        weights: one weight per list (default 1 each).
        limit: keep only the first ``limit`` fused ids (default all).
    """
    if weights is None:
        weights = [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError(
            f"weights has {len(weights)} values for {len(rankings)} rankings; "
            "give one weight per ranking"
        )
    if k < 0:
        raise ValueError(f"k must be >= 0, found {k!r}")
    scores: dict[Hashable, float] = {}
    for ranking, weight in zip(rankings, weights):
        for rank, doc in enumerate(ranking, start=1):
            scores[doc] = scores.get(doc, 0.0) + weight / (k + rank)
    fused = sorted(scores, key=lambda doc: -scores[doc])
    return fused if limit is None else fused[:limit]


def minmax_fusion(
    score_maps: Sequence[Mapping[Hashable, float]],
    weights: Sequence[float],
    *,
    limit: int | None = None,
) -> list[Hashable]:
    """Fuse scored result lists by a weighted sum of per-list min-max normalised scores.

    Each list's scores are mapped to [0, 1] (a list whose scores are all equal maps
    to 1); an id missing from a list gets 0 from it. Ties keep first-seen order.
    """
    if len(weights) != len(score_maps):
        raise ValueError(
            f"weights has {len(weights)} values for {len(score_maps)} score lists; "
            "give one weight per list"
        )
    fused: dict[Hashable, float] = {}
    for scores, weight in zip(score_maps, weights):
        if not scores:
            continue
        low, high = min(scores.values()), max(scores.values())
        span = high - low
        for doc, score in scores.items():
            normalised = (score - low) / span if span > 0 else 1.0
            fused[doc] = fused.get(doc, 0.0) + weight * normalised
    ranked = sorted(fused, key=lambda doc: -fused[doc])
    return ranked if limit is None else ranked[:limit]


def two_stage_scores(
    query: np.ndarray,
    abstract_vectors: np.ndarray,
    title_vectors: np.ndarray,
    *,
    candidates: int = 1000,
    k: int = 100,
    exclude: Collection[int] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """Rank by the two-stage method: abstract top-``candidates``, then the mean of both cosines.

    Vectors are L2-normalised rows, so the inner product is the cosine similarity.

    Args:
        query: ``(d,)`` query vector.
        abstract_vectors, title_vectors: ``(n, d)`` rows for the same n documents.
        candidates: stage-one size, the number of nearest abstracts kept (default 1000).
        k: results returned (default 100).
        exclude: row indices that never appear in the result (the query patent itself).

    Returns:
        ``(rows, scores)``: the best ``k`` row indices and their final scores, best first.
    """
    if abstract_vectors.shape != title_vectors.shape:
        raise ValueError(
            f"abstract_vectors {abstract_vectors.shape} and title_vectors "
            f"{title_vectors.shape} must have the same shape"
        )
    abstract_scores = abstract_vectors @ query
    if exclude:
        abstract_scores = abstract_scores.copy()
        abstract_scores[list(exclude)] = -np.inf
    stage_one = top_k_rows(abstract_scores, candidates)
    stage_one = stage_one[np.isfinite(abstract_scores[stage_one])]
    final = (abstract_scores[stage_one] + title_vectors[stage_one] @ query) / 2.0
    order = np.argsort(-final, kind="stable")[:k]
    return stage_one[order], final[order]


def top_k_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """Return the indices of the ``k`` highest scores, best first (ties: lower index first)."""
    _check_k(k)
    k = min(k, scores.shape[0])
    part = np.argpartition(-scores, k - 1)[:k]
    # Sort the partition by (-score, index) so ties are broken deterministically.
    return part[np.lexsort((part, -scores[part]))]
