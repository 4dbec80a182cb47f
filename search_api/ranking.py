"""Ranking functions: two-stage dense, dense abstract-only, BM25 and hybrid fusion.

Everything here is plain Python on numpy arrays, plus the Elasticsearch query
bodies the search needs; no web code. ``search_api.search`` runs these against
a live cluster and vector store.

The two-stage method: the ``n_candidates`` (default 1000) patents whose
abstracts are nearest to the demand, then the cosine similarity of the demand
title to each candidate's title; the final score is the mean of the two
similarities. Both similarities are exact dot products with the stored
vectors, whatever index picked the candidates.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Iterable, Mapping, Sequence

import numpy as np

from search_api.vectors import VectorStore

MODES = ("two_stage", "hybrid", "bm25", "dense")
FUSIONS = ("minmax", "rrf")
DESCRIPTION_MODES = ("concat", "separate", "title_only")
SIX_T_VALUES = ("IT", "BT", "NT", "ST", "ET", "CT", "unclassified")

# Reciprocal rank fusion constant; 60 is the value commonly used.
RRF_K = 60


@dataclass(frozen=True)
class SearchFilters:
    """Filters applied to every stage of a search; None or empty means no filter.

    Attributes:
        ipc_prefix: IPC code prefix in canonical form, e.g. ``G06N`` or ``H01L 21``.
        six_t: allowed 6T categories.
        application_date_from: first application date, inclusive.
        application_date_to: last application date, inclusive.
        applicant: phrase that must occur in the applicant string.
        register_status: allowed statuses (등록, 공개, ...).
    """

    ipc_prefix: str | None = None
    six_t: tuple[str, ...] = ()
    application_date_from: date | None = None
    application_date_to: date | None = None
    applicant: str | None = None
    register_status: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        return self.es_clauses() == []

    def es_clauses(self) -> list[dict]:
        """Return the Elasticsearch ``bool.filter`` clauses for these filters."""
        clauses: list[dict] = []
        if self.ipc_prefix:
            clauses.append({"prefix": {"ipc": self.ipc_prefix}})
        if self.six_t:
            clauses.append({"terms": {"six_t": list(self.six_t)}})
        if self.application_date_from or self.application_date_to:
            bounds = {}
            if self.application_date_from:
                bounds["gte"] = self.application_date_from.isoformat()
            if self.application_date_to:
                bounds["lte"] = self.application_date_to.isoformat()
            clauses.append({"range": {"application_date": bounds}})
        if self.applicant:
            clauses.append({"match_phrase": {"applicant": self.applicant}})
        if self.register_status:
            clauses.append({"terms": {"register_status": list(self.register_status)}})
        return clauses

    def es_query(self) -> dict:
        """Return a query that matches exactly the allowed patents."""
        clauses = self.es_clauses()
        return {"bool": {"filter": clauses}} if clauses else {"match_all": {}}


def canonical_ipc_prefix(value: str) -> str:
    """Bring an IPC prefix to the indexed form: ``g06n 3/08`` -> ``G06N 3/08``.

    A missing space between subclass and group (``H01L21``) is inserted, since
    the index stores ``H01L 21/67``.
    """
    text = re.sub(r"\s+", " ", value.strip().upper())
    match = re.fullmatch(r"([A-H](?:\d{2}(?:[A-Z])?)?)(?: ?(\d{1,4}(?:/\d{0,6})?))?", text)
    if match is None:
        raise ValueError(
            f"IPC prefix {value!r} is not of the form section, class, subclass, group "
            "(e.g. 'G', 'G06', 'G06N', 'G06N 3/08')"
        )
    subclass, group = match.groups()
    if group and len(subclass) != 4:
        raise ValueError(f"IPC prefix {value!r} has a group but no full subclass such as 'G06N'")
    return f"{subclass} {group}" if group else subclass


##### demand vectors


@dataclass(frozen=True)
class DemandVectors:
    """Query vectors of one demand.

    Attributes:
        abstract_query: compared with patent abstracts (stage 1).
        title_query: compared with patent titles (stage 2).
    """

    abstract_query: np.ndarray
    title_query: np.ndarray


def demand_texts(title: str, description: str | None, description_mode: str) -> tuple[str, str | None]:
    """Return (text for the abstract stage, extra text or None) for a demand.

    ``concat``: the abstract stage reads title and description as one text;
    ``separate``: both are encoded on their own and their vectors averaged
    (``demand_vectors``); ``title_only``: the description is ignored.
    """
    if description_mode not in DESCRIPTION_MODES:
        raise ValueError(f"description_mode must be one of {DESCRIPTION_MODES}, found {description_mode!r}")
    description = (description or "").strip()
    if not description or description_mode == "title_only":
        return title, None
    if description_mode == "concat":
        return f"{title}. {description}", None
    return title, description


def combine_vectors(title_vector: np.ndarray, extra: np.ndarray | None) -> np.ndarray:
    """Average two unit vectors and renormalise; ``extra`` None returns the title vector."""
    if extra is None:
        return title_vector
    mean = title_vector + extra
    norm = float(np.linalg.norm(mean))
    return title_vector if norm == 0.0 else (mean / norm).astype(np.float32)


##### dense ranking


@dataclass
class Ranked:
    """One ranked patent; similarities are cosine in [-1, 1], None when not computed."""

    row: int
    application_number: str
    score: float
    abstract_similarity: float | None = None
    title_similarity: float | None = None
    bm25_score: float | None = None
    extra: dict = field(default_factory=dict)


def two_stage_scores(store: VectorStore, vectors: DemandVectors, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (abstract similarity, title similarity, final = their mean) for ``rows``."""
    abstract = store.abstract_similarity(vectors.abstract_query, rows)
    title = store.title_similarity(vectors.title_query, rows)
    return abstract, title, (abstract + title) / 2.0


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    # A stable sort keeps ties in candidate order, so results are reproducible.
    return np.argsort(-scores, kind="stable")[:k]


def rank_two_stage(store: VectorStore, vectors: DemandVectors, k: int, n_candidates: int = 1000,
                   candidates: np.ndarray | None = None,
                   allowed_rows: np.ndarray | None = None) -> list[Ranked]:
    """Rank by the two-stage method and return the top ``k``.

    Args:
        candidates: rows to re-rank; None searches the ``n_candidates`` nearest
            abstracts (restricted to ``allowed_rows`` when given).
    """
    if candidates is None:
        candidates, _ = store.search_abstracts(vectors.abstract_query, n_candidates, allowed_rows)
    abstract, title, final = two_stage_scores(store, vectors, candidates)
    return _ranked(store, candidates, final, abstract, title, k)


def rank_dense(store: VectorStore, vectors: DemandVectors, k: int,
               allowed_rows: np.ndarray | None = None,
               candidates: np.ndarray | None = None) -> list[Ranked]:
    """Rank by abstract similarity alone; the title similarity is reported, not used."""
    if candidates is None:
        candidates, _ = store.search_abstracts(vectors.abstract_query, k, allowed_rows)
    abstract, title, _ = two_stage_scores(store, vectors, candidates)
    return _ranked(store, candidates, abstract, abstract, title, k)


def _ranked(store: VectorStore, candidates: np.ndarray, score: np.ndarray,
            abstract: np.ndarray, title: np.ndarray, k: int) -> list[Ranked]:
    """Return the ``k`` candidates with the highest ``score``, best first."""
    return [
        Ranked(int(candidates[i]), store.application_numbers[int(candidates[i])], float(score[i]),
               float(abstract[i]), float(title[i]))
        for i in _top(score, k)
    ]


##### BM25 and fusion


def bm25_query(title_terms: str, abstract_terms: str, filters: SearchFilters,
               size: int, title_boost: float = 2.0) -> dict:
    """Return the search body for BM25 on the Kiwi-analysed fields.

    Args:
        title_terms: analysed demand text matched against ``title_terms``.
        abstract_terms: analysed demand text matched against ``abstract_terms``.
        title_boost: weight of a title match relative to an abstract match.
    """
    should = []
    if title_terms.strip():
        should.append({"match": {"title_terms": {"query": title_terms, "boost": title_boost}}})
    if abstract_terms.strip():
        should.append({"match": {"abstract_terms": {"query": abstract_terms}}})
    return {
        "query": {"bool": {"should": should, "minimum_should_match": 1,
                           "filter": filters.es_clauses()}},
        "size": size,
        "_source": False,
        "track_total_hits": False,
    }


def min_max(scores: np.ndarray) -> np.ndarray:
    """Scale to [0, 1]; a constant list maps to all ones."""
    if len(scores) == 0:
        return scores
    low, high = float(np.min(scores)), float(np.max(scores))
    if high - low < 1e-12:
        return np.ones_like(scores, dtype=np.float64)
    return (scores - low) / (high - low)


def fuse_min_max(dense: Mapping[str, float], bm25: Mapping[str, float], bm25_weight: float) -> dict[str, float]:
    """Fuse two score lists after min-max scaling each over its own entries.

    An id missing from one list gets 0 from that list. A list whose scores are
    all equal scales to all ones.
    """
    if not 0.0 <= bm25_weight <= 1.0:
        raise ValueError(f"bm25_weight must be in [0, 1], found {bm25_weight!r}")
    dense_scaled = dict(zip(dense, min_max(np.fromiter(dense.values(), np.float64, len(dense)))))
    bm25_scaled = dict(zip(bm25, min_max(np.fromiter(bm25.values(), np.float64, len(bm25)))))
    return {
        i: bm25_weight * float(bm25_scaled.get(i, 0.0)) + (1.0 - bm25_weight) * float(dense_scaled.get(i, 0.0))
        for i in dict.fromkeys([*dense, *bm25])
    }


def fuse_rrf(rankings: Iterable[Sequence[str]], k: int = RRF_K,
             weights: Sequence[float] | None = None) -> dict[str, float]:
    """Reciprocal rank fusion: sum over lists of weight / (k + rank), rank from 1."""
    fused: dict[str, float] = {}
    rankings = list(rankings)
    weights = list(weights) if weights is not None else [1.0] * len(rankings)
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + weight / (k + rank)
    return fused


def rank_hybrid(store: VectorStore, vectors: DemandVectors, bm25_hits: Sequence[tuple[str, float]],
                k: int, n_candidates: int = 1000, fusion: str = "minmax", bm25_weight: float = 0.5,
                allowed_rows: np.ndarray | None = None,
                dense_candidates: np.ndarray | None = None) -> list[Ranked]:
    """Fuse the two-stage dense ranking with BM25 hits and return the top ``k``.

    Dense scores of BM25 hits outside the dense candidates are computed exactly
    from the stored vectors, so every fused patent has both scores.

    Args:
        bm25_hits: (application number, BM25 score), best first, already filtered.
        fusion: ``minmax`` (weighted sum of min-max scaled scores) or ``rrf``.
        bm25_weight: weight of BM25 in both fusions, in [0, 1].
    """
    if fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {FUSIONS}, found {fusion!r}")
    if dense_candidates is None:
        dense_candidates, _ = store.search_abstracts(vectors.abstract_query, n_candidates, allowed_rows)
    bm25_scores = {number: score for number, score in bm25_hits if number in store.row_of}
    dense_numbers = set(store.numbers_for(dense_candidates))
    extra_rows = store.rows_for(n for n in bm25_scores if n not in dense_numbers)
    rows = np.concatenate([np.asarray(dense_candidates, dtype=np.int64), extra_rows])
    abstract, title, final = two_stage_scores(store, vectors, rows)
    numbers = store.numbers_for(rows)
    dense_scores = dict(zip(numbers, final.tolist()))

    if fusion == "minmax":
        fused = fuse_min_max(dense_scores, bm25_scores, bm25_weight)
    else:
        dense_order = [numbers[i] for i in _top(final, len(final))]
        fused = fuse_rrf([dense_order, list(bm25_scores)], weights=[1.0 - bm25_weight, bm25_weight])

    position = {number: i for i, number in enumerate(numbers)}
    best = sorted(fused, key=lambda n: (-fused[n], position[n]))[:k]
    return [
        Ranked(int(rows[position[n]]), n, float(fused[n]), float(abstract[position[n]]),
               float(title[position[n]]), bm25_scores.get(n))
        for n in best
    ]


def best_similarity(results: Sequence[Ranked]) -> float:
    """Return the best two-stage similarity (mean of both cosines) among ``results``.

    Fused and BM25 scores are relative to one query and have no absolute
    meaning, so the "no close match" decision uses the similarities instead.
    Returns -inf when no result has both similarities.
    """
    best = -math.inf
    for item in results:
        if item.abstract_similarity is not None and item.title_similarity is not None:
            best = max(best, (item.abstract_similarity + item.title_similarity) / 2.0)
    return best


def no_close_match(results: Sequence[Ranked], threshold: float) -> bool:
    """True when no result's two-stage similarity reaches ``threshold``."""
    return best_similarity(results) < threshold
