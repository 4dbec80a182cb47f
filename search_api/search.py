"""Searches against a live Elasticsearch and vector store: the glue behind the API.

``SearchService`` validates nothing (``search_api.schema`` does that), talks to
Elasticsearch through the async client and runs the encoder and Faiss in a
thread pool, so the event loop never blocks on them.

Filters on the vector side: the service counts the allowed patents first. Up to
``max_filter_ids`` of them, it fetches their ids and searches only among them
(exact when few, an ``IDSelector`` in Faiss otherwise). Above that, it
over-fetches nearest abstracts, keeps those Elasticsearch confirms as allowed,
and doubles the over-fetch until ``n_candidates`` survive or the whole corpus
was searched. Both paths return the same candidates as an unfiltered search
over the allowed patents alone (exactly so for a ``Flat`` index).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from concurrent.futures import Executor
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
from elasticsearch import AsyncElasticsearch

from search_api import ranking
from search_api.ranking import DemandVectors, Ranked, SearchFilters
from search_api.vectors import VectorStore

logger = logging.getLogger(__name__)

# KIPRIS bibliographic page of one application, by 13-digit application number
# (the "biblioFrame" view of kpat.kipris.or.kr that KIPRIS search results open).
KIPRIS_URL = "https://kpat.kipris.or.kr/kpat/biblioa.do?method=biblioFrame&applno={application_number}"

SCORE_FIELDS = ("pqi", "rights", "technology", "commercial")
RESULT_SOURCE = ["application_number", "title", "title_en", "abstract", "scores", "six_t", "ipc",
                 "applicant", "application_date", "register_status"]
ID_PAGE_SIZE = 10_000


def kipris_url(application_number: str) -> str:
    """Return the KIPRIS page of a patent (13-digit application number)."""
    return KIPRIS_URL.format(application_number=application_number)


@dataclass(frozen=True)
class SearchRequest:
    """A validated search request; see ``search_api.schema.parse_search_request``."""

    title: str
    description: str | None = None
    k: int = 10
    mode: str = "two_stage"
    filters: SearchFilters = field(default_factory=SearchFilters)


@dataclass(frozen=True)
class RankingConfig:
    """Ranking settings of the search service.

    Attributes:
        n_candidates: abstracts taken in stage 1 of the two-stage method.
        fusion: ``minmax`` or ``rrf`` for hybrid mode.
        bm25_weight: weight of BM25 in the fusion, in [0, 1].
        bm25_size: BM25 hits fetched for fusion.
        description_mode: how a demand's description is used (``ranking.demand_texts``).
        threshold: best two-stage similarity below which ``no_close_match`` is set.
        lexical_threshold: share of the demand title's distinct terms that its best
            keyword match must contain; below it ``no_close_match`` is set as well.
            0 turns this check off.
        max_filter_ids: largest allowed set whose ids are fetched for a filtered
            vector search; larger sets use over-fetch and post-filter.
    """

    n_candidates: int = 1000
    fusion: str = "minmax"
    bm25_weight: float = 0.5
    bm25_size: int = 300
    description_mode: str = "concat"
    threshold: float = 0.5
    lexical_threshold: float = 0.0
    max_filter_ids: int = 200_000


class SearchUnavailable(RuntimeError):
    """Elasticsearch or the vector store cannot serve the request."""


class SearchService:
    """Runs searches and lookups for the API.

    Args:
        es: async Elasticsearch client.
        index: alias (or index) holding the patents.
        store: the vector store of that index; None allows BM25 mode only.
        encoder: a ``PatentEncoder``; None allows BM25 mode only.
        analyze: Korean analyser for BM25 queries (``ingest.korean.analyze``).
        executor: thread pool for the encoder and Faiss; None uses the loop's default.
    """

    def __init__(self, es: AsyncElasticsearch, index: str, store: VectorStore | None,
                 encoder: Any | None, analyze: Callable[[str], str],
                 config: RankingConfig | None = None, executor: Executor | None = None):
        self.es = es
        self.index = index
        self.store = store
        self.encoder = encoder
        self.analyze = analyze
        self.config = config or RankingConfig()
        self.executor = executor

    async def _run(self, func: Callable, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, func, *args)

    # -- query vectors --------------------------------------------------

    def _encode_demand(self, title: str, description: str | None) -> DemandVectors:
        abstract_text, extra_text = ranking.demand_texts(title, description, self.config.description_mode)
        title_vector = self.encoder.encode_query(title)
        abstract_vector = title_vector if abstract_text == title else self.encoder.encode_query(abstract_text)
        extra = self.encoder.encode_query(extra_text) if extra_text else None
        return DemandVectors(ranking.combine_vectors(abstract_vector, extra), title_vector)

    # -- filters --------------------------------------------------------

    async def count(self, filters: SearchFilters) -> int:
        reply = await self.es.count(index=self.index, query=filters.es_query())
        return int(reply["count"])

    async def allowed_numbers(self, filters: SearchFilters) -> list[str]:
        """Fetch the application numbers of every patent the filters allow."""
        numbers: list[str] = []
        search_after = None
        while True:
            body: dict[str, Any] = {"query": filters.es_query(), "size": ID_PAGE_SIZE,
                                    "_source": False, "sort": [{"application_number": "asc"}],
                                    "track_total_hits": False}
            if search_after is not None:
                body["search_after"] = search_after
            reply = await self.es.search(index=self.index, **body)
            hits = reply["hits"]["hits"]
            numbers.extend(hit["_id"] for hit in hits)
            if len(hits) < ID_PAGE_SIZE:
                return numbers
            search_after = hits[-1]["sort"]

    async def _confirm_allowed(self, numbers: list[str], filters: SearchFilters) -> set[str]:
        query = {"bool": {"filter": [{"ids": {"values": numbers}}, *filters.es_clauses()]}}
        allowed: set[str] = set()
        for start in range(0, len(numbers), ID_PAGE_SIZE):
            chunk = numbers[start:start + ID_PAGE_SIZE]
            query["bool"]["filter"][0] = {"ids": {"values": chunk}}
            reply = await self.es.search(index=self.index, query=query, size=len(chunk),
                                         _source=False, track_total_hits=False)
            allowed.update(hit["_id"] for hit in reply["hits"]["hits"])
        return allowed

    async def dense_candidates(self, vectors: DemandVectors, n: int, filters: SearchFilters) -> np.ndarray:
        """Return up to ``n`` rows nearest by abstract among the patents the filters allow."""
        store = self.store
        if filters.is_empty():
            rows, _ = await self._run(store.search_abstracts, vectors.abstract_query, n, None)
            return rows
        allowed_count = await self.count(filters)
        if allowed_count == 0:
            return np.zeros(0, dtype=np.int64)
        if allowed_count <= self.config.max_filter_ids:
            allowed = store.rows_for(await self.allowed_numbers(filters))
            rows, _ = await self._run(store.search_abstracts, vectors.abstract_query, n, allowed)
            return rows

        # Over-fetch: with a fraction f of the corpus allowed, about n / f
        # neighbours hold n allowed ones; start at 1.5 times that and double.
        fetch = min(len(store), math.ceil(1.5 * n * len(store) / allowed_count))
        while True:
            rows, _ = await self._run(store.search_abstracts, vectors.abstract_query, fetch, None)
            numbers = store.numbers_for(rows)
            allowed = await self._confirm_allowed(numbers, filters)
            survivors = np.asarray([r for r, num in zip(rows, numbers) if num in allowed], dtype=np.int64)
            if len(survivors) >= n or fetch >= len(store):
                logger.debug("Over-fetch of %d found %d allowed candidates", fetch, len(survivors))
                return survivors[:n]
            fetch = min(len(store), fetch * 2)

    # -- BM25 -----------------------------------------------------------

    async def bm25(self, title: str, description: str | None, filters: SearchFilters,
                   size: int) -> list[tuple[str, float]]:
        """Return (application number, BM25 score) of the best ``size`` keyword matches."""
        title_terms = await self._run(self.analyze, title)
        text = f"{title} {description}" if description else title
        abstract_terms = title_terms if text == title else await self._run(self.analyze, text)
        if not title_terms.strip() and not abstract_terms.strip():
            return []
        body = ranking.bm25_query(title_terms, abstract_terms, filters, size)
        reply = await self.es.search(index=self.index, **body)
        return [(hit["_id"], float(hit["_score"])) for hit in reply["hits"]["hits"]]

    async def lexical_coverage(self, title: str, filters: SearchFilters,
                               exclude: frozenset[str] = frozenset()) -> float:
        """Return the share of the title's distinct terms found in its best keyword match.

        The best match is the top BM25 hit for the title alone, among the patents
        the filters allow and not in ``exclude``. A demand whose words appear in
        no patent (an unknown field, a garbled title) gets a low share even when
        the encoder, which maps every text somewhere, finds a near vector.
        Returns 0.0 when the title has no terms or nothing matches.
        """
        title_terms = await self._run(self.analyze, title)
        terms = set(title_terms.split())
        if not terms:
            return 0.0
        body = ranking.bm25_query(title_terms, title_terms, filters, 1 + len(exclude))
        body["_source"] = ["title_terms", "abstract_terms"]
        reply = await self.es.search(index=self.index, **body)
        for hit in reply["hits"]["hits"]:
            if hit["_id"] in exclude:
                continue
            source = hit.get("_source") or {}
            found = set(source.get("title_terms", "").split())
            found.update(source.get("abstract_terms", "").split())
            return len(terms & found) / len(terms)
        return 0.0

    # -- the search -----------------------------------------------------

    def _require_vectors(self, mode: str) -> None:
        if self.store is None or self.encoder is None:
            raise SearchUnavailable(
                f"mode {mode!r} needs the encoder and the vector store, which are not loaded; "
                "build them with `patentmatch index build` or use mode 'bm25'"
            )

    async def rank(self, request: SearchRequest) -> list[Ranked]:
        """Rank patents for ``request``; the mode picks the method."""
        results, _ = await self.rank_with_best(request)
        return results

    async def rank_with_best(self, request: SearchRequest,
                             exclude: frozenset[str] = frozenset()) -> tuple[list[Ranked], float]:
        """Rank patents and return the best two-stage similarity among the candidates.

        Patents in ``exclude`` (application numbers) are dropped from every
        stage, as if they were not indexed.

        That similarity (mean of abstract and title cosine) decides
        ``no_close_match``. It is taken over the dense candidates in the
        vector modes, whichever patents the mode returns, and over the
        returned patents in BM25 mode. So it means the same in every mode
        and matches how ``benchmarks/ranking_quality.py`` calibrates the threshold.
        """
        config = self.config
        mode = request.mode
        if mode == "bm25":
            hits = await self.bm25(request.title, request.description, request.filters,
                                   request.k + len(exclude))
            results = [Ranked(-1, number, score, bm25_score=score) for number, score in hits
                       if number not in exclude][:request.k]
            if self.store is not None and self.encoder is not None:
                vectors = await self._run(self._encode_demand, request.title, request.description)
                self._add_similarities(results, vectors)
            return results, ranking.best_similarity(results)

        self._require_vectors(mode)
        vectors = await self._run(self._encode_demand, request.title, request.description)
        n = config.n_candidates if mode in ("two_stage", "hybrid") else request.k
        candidates = await self.dense_candidates(vectors, n + len(exclude), request.filters)
        if exclude:
            candidates = np.asarray([r for r in candidates if self.store.application_numbers[r] not in exclude],
                                    dtype=np.int64)[:n]
        _, _, final = await self._run(ranking.two_stage_scores, self.store, vectors, candidates)
        best = float(final.max()) if len(final) else float("-inf")
        if mode == "dense":
            results = await self._run(lambda: ranking.rank_dense(self.store, vectors, request.k,
                                                                 candidates=candidates))
        elif mode == "two_stage":
            results = await self._run(lambda: ranking.rank_two_stage(self.store, vectors, request.k,
                                                                     candidates=candidates))
        else:
            hits = await self.bm25(request.title, request.description, request.filters,
                                   config.bm25_size + len(exclude))
            hits = [hit for hit in hits if hit[0] not in exclude][:config.bm25_size]
            results = await self._run(lambda: ranking.rank_hybrid(
                self.store, vectors, hits, request.k, fusion=config.fusion,
                bm25_weight=config.bm25_weight, dense_candidates=candidates))
        return results, max(best, ranking.best_similarity(results))

    def _add_similarities(self, results: list[Ranked], vectors: DemandVectors) -> None:
        for item in results:
            row = self.store.row_of.get(item.application_number)
            if row is None:
                continue
            item.row = row
            rows = np.asarray([row])
            item.abstract_similarity = float(self.store.abstract_similarity(vectors.abstract_query, rows)[0])
            item.title_similarity = float(self.store.title_similarity(vectors.title_query, rows)[0])

    async def search(self, request: SearchRequest) -> dict[str, Any]:
        """Run a search and return the JSON reply of ``POST /v1/search``."""
        started = time.perf_counter()
        ranked, best = await self.rank_with_best(request)
        coverage = await self.lexical_coverage(request.title, request.filters)
        documents = await self.fetch_documents([item.application_number for item in ranked])
        results = []
        for rank, item in enumerate(ranked, start=1):
            source = documents.get(item.application_number)
            if source is None:
                logger.warning("Patent %s is in the vector store but not in %s; skipped",
                               item.application_number, self.index)
                continue
            results.append(result_json(rank, item, source))
        for rank, item in enumerate(results, start=1):
            item["rank"] = rank
        return {
            "query": {"title": request.title, "description": request.description, "k": request.k,
                      "filters": filters_json(request.filters)},
            "mode": request.mode,
            "no_close_match": self.no_close_match(best, coverage),
            "threshold": self.config.threshold,
            "best_similarity": round(best, 4) if math.isfinite(best) else None,
            "lexical_coverage": round(coverage, 4),
            "lexical_threshold": self.config.lexical_threshold,
            "took_ms": round((time.perf_counter() - started) * 1000.0, 2),
            "results": results,
        }

    def no_close_match(self, best_similarity: float, coverage: float) -> bool:
        """Flag a demand whose best match is weak in meaning or in words.

        Either signal alone can fail: the encoder puts a garbled title near
        some patent anyway, and a paraphrase shares few words with its match.
        Each threshold is calibrated to pass 95% of the development queries
        that have a relevant patent in their top 10.
        """
        return best_similarity < self.config.threshold or coverage < self.config.lexical_threshold

    async def fetch_documents(self, numbers: list[str]) -> dict[str, dict]:
        if not numbers:
            return {}
        reply = await self.es.mget(index=self.index, ids=numbers, source_includes=RESULT_SOURCE)
        return {doc["_id"]: doc["_source"] for doc in reply["docs"] if doc.get("found")}

    async def get_patent(self, number: str) -> dict | None:
        """Return the stored document of one patent plus its KIPRIS link, or None."""
        reply = await self.es.options(ignore_status=404).get(
            index=self.index, id=number, source_excludes=["title_terms", "abstract_terms"])
        if not reply.get("found"):
            return None
        document = dict(reply["_source"])
        document["kipris_url"] = kipris_url(number)
        document["in_vector_store"] = self.store is not None and number in self.store.row_of
        return document

    async def score_stats(self, six_t: str | None, bins: int = 20, sample: int = 2000) -> dict[str, Any]:
        """Return per-score distributions for a 6T category (all patents when None).

        Each score gets count, min, max, mean, quantiles keyed "0.05" ... "0.95",
        a histogram of ``bins`` equal-width bins (``edges`` has one entry more
        than ``counts``; the last bin includes its upper edge), and up to
        ``sample`` values drawn at random (seeded) for violin plots. A score
        nobody has gets null min/max/mean and empty quantiles and lists.
        """
        query: dict = {"bool": {"filter": [{"exists": {"field": "scores"}}]}}
        if six_t:
            query["bool"]["filter"].append({"term": {"six_t": six_t}})
        aggs: dict[str, Any] = {"sources": {"terms": {"field": "scores.source", "size": 10}}}
        for name in SCORE_FIELDS:
            aggs[f"{name}_stats"] = {"stats": {"field": f"scores.{name}"}}
            aggs[f"{name}_pct"] = {"percentiles": {"field": f"scores.{name}",
                                                   "percents": [5, 25, 50, 75, 95]}}
        reply = await self.es.search(index=self.index, query=query, size=0, aggs=aggs)
        sampled = await self.es.search(
            index=self.index, size=sample, _source=[f"scores.{n}" for n in SCORE_FIELDS],
            query={"function_score": {"query": query, "random_score": {"seed": 7, "field": "_seq_no"},
                                      "boost_mode": "replace"}},
        )
        rows = [hit["_source"].get("scores", {}) for hit in sampled["hits"]["hits"]]
        result: dict[str, Any] = {
            "six_t": six_t,
            "count": reply["hits"]["total"]["value"],
            "score_sources": {b["key"]: b["doc_count"] for b in reply["aggregations"]["sources"]["buckets"]},
            "scores": {},
        }
        for name in SCORE_FIELDS:
            stats = reply["aggregations"][f"{name}_stats"]
            values = sorted(float(r[name]) for r in rows if r.get(name) is not None)
            entry: dict[str, Any] = {"count": stats["count"], "min": stats["min"], "max": stats["max"],
                                     "mean": stats["avg"], "quantiles": {}, "histogram": None,
                                     "values": values}
            if stats["count"]:
                for key, value in reply["aggregations"][f"{name}_pct"]["values"].items():
                    entry["quantiles"][f"{float(key) / 100:g}"] = value
                entry["histogram"] = await self._histogram(query, name, stats["min"], stats["max"], bins)
            else:
                entry["histogram"] = {"edges": [], "counts": []}
            result["scores"][name] = entry
        return result

    async def _histogram(self, query: dict, name: str, low: float, high: float, bins: int) -> dict:
        width = (high - low) / bins if high > low else 1.0
        ranges = [{"from": low + i * width, "to": low + (i + 1) * width} for i in range(bins)]
        # Open outer ends: the first bin takes the minimum and the last the
        # maximum even where float fields round the bounds.
        del ranges[0]["from"]
        del ranges[-1]["to"]
        reply = await self.es.search(index=self.index, query=query, size=0,
                                     aggs={"h": {"range": {"field": f"scores.{name}", "ranges": ranges}}})
        buckets = reply["aggregations"]["h"]["buckets"]
        return {"edges": [low + i * width for i in range(bins)] + [high],
                "counts": [b["doc_count"] for b in buckets]}


def filters_json(filters: SearchFilters) -> dict[str, Any]:
    data = asdict(filters)
    for key in ("application_date_from", "application_date_to"):
        if data[key] is not None:
            data[key] = data[key].isoformat()
    data["six_t"] = list(filters.six_t)
    data["register_status"] = list(filters.register_status)
    return data


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


def result_json(rank: int, item: Ranked, source: dict) -> dict[str, Any]:
    """Build one entry of ``results`` from a ranked item and its document."""
    scores = source.get("scores") or None
    return {
        "rank": rank,
        "application_number": item.application_number,
        "title": source.get("title"),
        "title_en": source.get("title_en"),
        "abstract": source.get("abstract"),
        "abstract_similarity": _rounded(item.abstract_similarity),
        "title_similarity": _rounded(item.title_similarity),
        "bm25_score": _rounded(item.bm25_score),
        "score": _rounded(item.score),
        "scores": scores,
        "score_source": scores.get("source") if scores else None,
        "six_t": source.get("six_t"),
        "ipc": source.get("ipc") or [],
        "applicant": source.get("applicant"),
        "application_date": source.get("application_date"),
        "register_status": source.get("register_status"),
        "kipris_url": kipris_url(item.application_number),
    }
