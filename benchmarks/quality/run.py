"""Run every ranking method on every query set and write JSON and a markdown table.

Methods (each reported separately; ``es`` needs a cluster, the rest run locally):

- ``bm25-es``: Elasticsearch BM25 (``combined_fields``) over ``title_terms`` and
  ``abstract_terms``, the patents indexed by the ingest job into a throwaway alias.
- ``bm25-rank_bm25``: rank_bm25 ``BM25Okapi`` defaults over the same Kiwi morphemes
  (title and abstract as one bag of terms), in memory.
- ``dense-abstract``: cosine of the query to each abstract.
- ``dense-title``: cosine of the query to each title.
- ``two-stage``: abstract top-``candidates``, then the mean of abstract and title cosine.
- ``two-stage-split`` (prior-art title+abstract only): as ``two-stage``, but the query
  vector is the normalised sum of the title's and the abstract's vectors, so a
  long abstract cannot push the title out of the token window.
- ``hybrid-rrf``: reciprocal rank fusion (k = 60) of BM25 and ``two-stage``.
- ``hybrid-minmax``: equal-weight sum of per-query min-max normalised BM25 and
  ``two-stage`` scores.

The hybrids use Elasticsearch BM25 when it ran, otherwise rank_bm25.
"""

from __future__ import annotations

import json
import logging
import platform
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmarks.quality.bm25 import ElasticsearchBM25, RankBM25, analyze_all, bm25_rankings
from benchmarks.quality.dense import (
    dense_rankings,
    mean_query_vectors,
    two_stage_scores_by_query,
)
from benchmarks.quality.metrics import evaluate_rankings, minmax_fusion, reciprocal_rank_fusion
from benchmarks.quality.querysets import PRIOR_ART, QuerySet, load_query_sets

logger = logging.getLogger(__name__)

METRIC_COLUMNS = ("ndcg@10", "recall@10", "recall@100", "mrr")
REPO_ROOT = Path(__file__).resolve().parents[2]
DENSE_METHODS = ("dense-abstract", "dense-title", "two-stage", "two-stage-split")
BM25_METHODS = ("bm25-es", "bm25-rank_bm25")


@dataclass
class HarnessConfig:
    """Inputs and options of one harness run."""

    queries: list[Path]
    corpus: Path
    model: str | None = None
    es_url: str = ""
    alias: str = "bench-quality-patents"
    use_es: bool = True
    use_rank_bm25: bool = True
    candidates: int = 1000
    depth: int = 1000
    batch_size: int = 64
    max_seq_length: int | None = None
    rrf_k: float = 60.0
    bm25_weight: float = 0.5
    command: str = field(default_factory=lambda: " ".join(sys.argv))


def run_harness(config: HarnessConfig) -> dict[str, Any]:
    """Compute every method's metrics on every query set; returns the JSON report."""
    from encoder import load_encoder
    from training.corpus import read_patents

    started = time.monotonic()
    patents = read_patents(config.corpus)
    corpus = {patent.application_number: (patent.title, patent.abstract)
              for patent in patents}
    doc_ids = [patent.application_number for patent in patents]
    query_sets = [query_set for path in config.queries
                  for query_set in load_query_sets(path, corpus)]
    query_sets = [query_set for query_set in query_sets if _usable(query_set)]

    # 1. Dense vectors of the corpus.
    encoder = load_encoder(config.model, max_seq_length=config.max_seq_length)
    encode_started = time.monotonic()
    abstracts = encoder.encode([patent.abstract for patent in patents],
                               batch_size=config.batch_size)
    titles = encoder.encode([patent.title for patent in patents], batch_size=config.batch_size)
    encode_seconds = time.monotonic() - encode_started

    # 2. BM25 engines over Kiwi morphemes.
    engines: dict[str, Any] = {}
    es_info: dict[str, Any] | None = None
    es_engine = None
    if config.use_es:
        if not config.es_url:
            raise ValueError("no Elasticsearch URL: pass --es-url or set ES_URL, or "
                             "pass --no-es to skip the Elasticsearch baseline")
        es_engine = ElasticsearchBM25(config.es_url, config.alias)
    try:
        if es_engine is not None:
            es_info = es_engine.ingest(config.corpus)
            engines["bm25-es"] = es_engine
        if config.use_rank_bm25:
            logger.info("analysing %d patents with Kiwi for rank_bm25", len(patents))
            terms = analyze_all([f"{patent.title} {patent.abstract}" for patent in patents])
            engines["bm25-rank_bm25"] = RankBM25(doc_ids, terms)

        results = {}
        for query_set in query_sets:
            results[query_set.label] = _evaluate_set(
                query_set, encoder, engines, abstracts, titles, doc_ids, config)
    finally:
        if es_engine is not None:
            es_engine.close()

    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": config.command,
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, "
                   f"{_cpu_count()} cores, device {encoder.device}",
        "corpus": {"path": display_path(config.corpus), "patents": len(patents)},
        "model": {"name": encoder.name, "fingerprint": encoder.fingerprint,
                  "dimension": encoder.dimension, "max_seq_length": encoder.max_seq_length,
                  "encode_seconds": round(encode_seconds, 1)},
        "elasticsearch": {"url": config.es_url, "alias": config.alias, **(es_info or {})}
        if es_info else None,
        "settings": {"candidates": config.candidates, "depth": config.depth,
                     "rrf_k": config.rrf_k, "bm25_weight": config.bm25_weight},
        "query_sets": {query_set.label: {
            "source": display_path(query_set.source), "kind": query_set.kind, "variant": query_set.variant,
            "queries": len(query_set.queries),
            "dropped_queries": query_set.dropped_queries,
            "dropped_relevant": query_set.dropped_relevant,
        } for query_set in query_sets},
        "results": results,
        "seconds": round(time.monotonic() - started, 1),
    }


def display_path(path: str | Path) -> str:
    """Return ``path`` relative to the repository when it is inside it, else unchanged."""
    resolved = Path(path).resolve()
    try:
        return str(resolved.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def _usable(query_set: QuerySet) -> bool:
    if query_set.queries:
        return True
    logger.warning("%s: no query has a relevant patent in the corpus; skipped",
                   query_set.label)
    return False


def _cpu_count() -> int:
    import os

    return os.cpu_count() or 1


def _evaluate_set(query_set, encoder, engines, abstracts, titles, doc_ids, config):
    queries = query_set.queries
    qrels = {query.query_id: query.relevant for query in queries}
    rankings: dict[str, dict[str, list[str]]] = {}

    terms = analyze_all([query.text for query in queries])
    bm25_scores: dict[str, dict[str, dict[str, float]]] = {}
    for name, engine in engines.items():
        bm25_scores[name] = bm25_rankings(engine, queries, terms, config.depth)
        rankings[name] = {qid: list(scores) for qid, scores in bm25_scores[name].items()}

    vectors = encoder.encode([query.text for query in queries], show_progress=False)
    rankings["dense-abstract"] = dense_rankings(queries, vectors, abstracts, doc_ids,
                                                k=config.depth)
    rankings["dense-title"] = dense_rankings(queries, vectors, titles, doc_ids,
                                             k=config.depth)
    two_stage = two_stage_scores_by_query(queries, vectors, abstracts, titles, doc_ids,
                                          candidates=config.candidates, k=config.depth)
    rankings["two-stage"] = {qid: list(scores) for qid, scores in two_stage.items()}

    if query_set.kind == PRIOR_ART and query_set.variant == "title+abstract":
        split = mean_query_vectors(
            encoder.encode([query.title for query in queries], show_progress=False),
            encoder.encode([query.abstract for query in queries], show_progress=False),
        )
        split_scores = two_stage_scores_by_query(
            queries, split, abstracts, titles, doc_ids, candidates=config.candidates,
            k=config.depth)
        rankings["two-stage-split"] = {qid: list(scores)
                                       for qid, scores in split_scores.items()}

    fused_source = "bm25-es" if "bm25-es" in bm25_scores else "bm25-rank_bm25"
    if fused_source in bm25_scores:
        lexical = bm25_scores[fused_source]
        rankings["hybrid-rrf"] = {
            query.query_id: reciprocal_rank_fusion(
                [list(lexical[query.query_id]), list(two_stage[query.query_id])],
                k=config.rrf_k, limit=config.depth)
            for query in queries
        }
        rankings["hybrid-minmax"] = {
            query.query_id: minmax_fusion(
                [lexical[query.query_id], two_stage[query.query_id]],
                [config.bm25_weight, 1.0 - config.bm25_weight], limit=config.depth)
            for query in queries
        }
    return {method: evaluate_rankings(ranking, qrels) for method, ranking in rankings.items()}


def write_json(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def render_markdown(report: dict[str, Any]) -> str:
    """Return the report as a markdown page: one table per query set, best nDCG@10 in bold."""
    model = report["model"]
    lines = [
        "# Retrieval quality on the dev query sets",
        "",
        f"- Created: {report['created']}",
        f"- Command: `{report['command']}`",
        f"- Machine: {report['machine']}",
        f"- Corpus: {report['corpus']['patents']} patents from `{report['corpus']['path']}`",
        f"- Model: `{model['name']}` (SHA-256 {model['fingerprint'][:16]}..., "
        f"{model['dimension']} dimensions, max_seq_length {model['max_seq_length']}; "
        f"encoding the corpus took {model['encode_seconds']} s)",
        f"- Two-stage candidates: {report['settings']['candidates']}; fusion depth "
        f"{report['settings']['depth']}; RRF k {report['settings']['rrf_k']}; min-max "
        f"BM25 weight {report['settings']['bm25_weight']}",
    ]
    if report.get("elasticsearch"):
        es = report["elasticsearch"]
        lines.append(f"- Elasticsearch: {es['indexed']} patents ingested into the throwaway "
                     f"alias `{es['alias']}` (deleted afterwards)")
    else:
        lines.append("- Elasticsearch: not used in this run (`--no-es`)")
    lines += ["", "## Summary", ""]
    lines += [f"- {line}" for line in summary_lines(report)]
    lines.append("")
    for label, methods in report["results"].items():
        info = report["query_sets"][label]
        lines += [
            f"## {label}",
            "",
            f"{info['queries']} queries from `{info['source']}`"
            + (f"; {info['dropped_queries']} queries and {info['dropped_relevant']} "
               "relevant patents not in the corpus were dropped"
               if info["dropped_queries"] or info["dropped_relevant"] else ""),
            "",
            "| method | nDCG@10 | Recall@10 | Recall@100 | MRR |",
            "|---|---|---|---|---|",
        ]
        best = max(values["ndcg@10"] for values in methods.values())
        for method, values in methods.items():
            cells = [f"{values[column]:.3f}" for column in METRIC_COLUMNS]
            if values["ndcg@10"] == best:
                cells[0] = f"**{cells[0]}**"
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def summary_lines(report: dict[str, Any]) -> list[str]:
    """Return one sentence per query set: the best method, and dense-only against BM25."""
    lines = []
    for label, methods in report["results"].items():
        best = max(methods, key=lambda method: methods[method]["ndcg@10"])
        line = f"{label}: best nDCG@10 {methods[best]['ndcg@10']:.3f} by {best}."
        dense = [method for method in DENSE_METHODS if method in methods]
        lexical = [method for method in BM25_METHODS if method in methods]
        if dense and lexical:
            top_dense = max(dense, key=lambda method: methods[method]["ndcg@10"])
            top_bm25 = max(lexical, key=lambda method: methods[method]["ndcg@10"])
            dense_score = round(methods[top_dense]["ndcg@10"], 3)
            bm25_score = round(methods[top_bm25]["ndcg@10"], 3)
            verdict = ("beats" if dense_score > bm25_score
                       else "ties with" if dense_score == bm25_score else "loses to")
            line += (f" The best dense-only method ({top_dense}, "
                     f"{methods[top_dense]['ndcg@10']:.3f}) {verdict} BM25 ({top_bm25}, "
                     f"{methods[top_bm25]['ndcg@10']:.3f}).")
        lines.append(line)
    return lines


def summarise(report: dict[str, Any]) -> str:
    """Return a plain-text table of every result, for the terminal."""
    rows = [f"{'query set':42} {'method':18} " + " ".join(f"{c:>10}" for c in METRIC_COLUMNS)]
    for label, methods in report["results"].items():
        for method, values in methods.items():
            rows.append(f"{label:42} {method:18} "
                        + " ".join(f"{values[c]:10.3f}" for c in METRIC_COLUMNS))
    return "\n".join(rows)
