"""BM25 baselines: Elasticsearch on the Korean-analysed fields, and rank_bm25 in memory.

Both see the same Kiwi morphemes (:func:`ingest.korean.analyze`): the index stores
them in the whitespace-analysed ``title_terms`` and ``abstract_terms`` fields,
and each query is analysed the same way before it is sent.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks.quality.metrics import top_k_rows
from benchmarks.quality.querysets import Query

logger = logging.getLogger(__name__)

ScoredRanking = dict[str, float]
# Elasticsearch rejects more than index.max_result_window (10,000) hits per page.
MAX_HITS = 10_000


def analyze_all(texts: Sequence[str], show_progress: bool = False) -> list[str]:
    """Return the Kiwi morphemes of each text, space-joined, in input order."""
    from ingest.korean import analyze_many

    return list(analyze_many(texts))


class RankBM25:
    """Okapi BM25 from the ``rank_bm25`` package with its defaults (k1 1.5, b 0.75, epsilon 0.25).

    Each document is its title and abstract morphemes as one bag of terms.
    """

    def __init__(self, doc_ids: Sequence[str], doc_terms: Sequence[str]) -> None:
        from rank_bm25 import BM25Okapi

        if len(doc_ids) != len(doc_terms):
            raise ValueError(f"{len(doc_ids)} ids but {len(doc_terms)} documents")
        self.doc_ids = list(doc_ids)
        self._row_of = {number: row for row, number in enumerate(self.doc_ids)}
        # rank_bm25 divides by the mean length, so an all-empty corpus is an error;
        # an empty document gets one placeholder term that no query contains.
        self._bm25 = BM25Okapi([terms.split() or ["\0"] for terms in doc_terms])

    def search(self, query_terms: str, k: int, exclude: frozenset[str] = frozenset()
               ) -> ScoredRanking:
        """Return the best ``k`` ids with their BM25 scores, best first."""
        tokens = query_terms.split()
        if not tokens:
            return {}
        scores = np.asarray(self._bm25.get_scores(tokens), dtype=np.float64)
        rows_out = [self._row_of[number] for number in exclude if number in self._row_of]
        scores[rows_out] = -np.inf
        rows = top_k_rows(scores, k)
        return {self.doc_ids[row]: float(scores[row]) for row in rows
                if np.isfinite(scores[row]) and scores[row] > 0}


class ElasticsearchBM25:
    """BM25 on a throwaway alias filled by the ingest job; :meth:`close` deletes it.

    Args:
        es_url: the cluster (for example ``http://127.0.0.1:9200``).
        alias: alias of the throwaway index; it and every index whose name starts
            with it are deleted at the start (leftovers of a crashed run) and by
            :meth:`close`.
        query_type: ``combined_fields`` scores title and abstract terms as one field
            (BM25F, closest to one bag of terms) or ``most_fields`` sums per-field
            scores.
    """

    def __init__(self, es_url: str, alias: str, *, query_type: str = "combined_fields",
                 request_timeout: float = 60.0) -> None:
        from elasticsearch import Elasticsearch

        if query_type not in ("combined_fields", "most_fields"):
            raise ValueError(f"query_type must be combined_fields or most_fields, "
                             f"found {query_type!r}")
        if not alias or "*" in alias:
            raise ValueError(f"alias must be a plain index alias, found {alias!r}")
        self.es_url = es_url
        self.alias = alias
        self.query_type = query_type
        self.client = Elasticsearch(es_url, request_timeout=request_timeout)
        self._ingested = False

    def ingest(self, corpus_path: Path) -> dict:
        """Index ``corpus_path`` behind the alias with :func:`ingest.job.run_ingest`."""
        from ingest.job import run_ingest
        from patentmatch.config import load_settings

        self._delete()
        with tempfile.TemporaryDirectory(prefix="bench-quality-") as cache:
            settings = dataclasses.replace(load_settings(), es_url=self.es_url,
                                           index_alias=self.alias, cache_dir=Path(cache))
            summary = run_ingest([corpus_path], settings, resume=False, client=self.client,
                                 show_progress=False)
        self._ingested = True
        logger.info("indexed %d patents behind %s (%d rejected)", summary.indexed,
                    self.alias, summary.rejected)
        return {"indexed": summary.indexed, "rejected": summary.rejected,
                "seconds": round(summary.seconds, 1)}

    def count(self) -> int:
        return int(self.client.count(index=self.alias)["count"])

    def search(self, query_terms: str, k: int, exclude: frozenset[str] = frozenset()
               ) -> ScoredRanking:
        """Return the best ``k`` (at most 10,000) ids with their BM25 scores, best first."""
        if not query_terms.strip():
            return {}
        size = min(k, MAX_HITS)
        body = {
            "bool": {
                "must": {self.query_type: {"query": query_terms,
                                           "fields": ["title_terms", "abstract_terms"]}},
                "must_not": [{"ids": {"values": sorted(exclude)}}] if exclude else [],
            }
        }
        response = self.client.search(index=self.alias, query=body, size=size,
                                      source=False, track_total_hits=False)
        return {hit["_id"]: float(hit["_score"]) for hit in response["hits"]["hits"]}

    def _delete(self) -> None:
        # Delete by exact names: clusters with action.destructive_requires_name
        # (the default since Elasticsearch 8) reject wildcard deletes.
        names = list(self.client.indices.get(index=f"{self.alias}*", allow_no_indices=True,
                                             expand_wildcards="all"))
        names = [name for name in names if name == self.alias
                 or name.startswith(f"{self.alias}-")]
        if names:
            self.client.indices.delete(index=",".join(names))

    def close(self) -> None:
        """Delete the throwaway index and alias and close the client."""
        try:
            self._delete()
            logger.info("deleted the throwaway index %s*", self.alias)
        finally:
            self.client.close()


def bm25_rankings(engine, queries: Sequence[Query], query_terms: Sequence[str], k: int
                  ) -> dict[str, ScoredRanking]:
    """Search every query with ``engine`` (either class above); excluded ids never appear."""
    return {query.query_id: engine.search(terms, k, query.exclude)
            for query, terms in zip(queries, query_terms)}
