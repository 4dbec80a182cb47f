"""Dense retrieval quality of a model on the evaluation query sets.

Each query set is scored two ways: ``dense-abstract`` (cosine to the abstract)
and ``two-stage`` (abstract top-1000, then the mean of abstract and title cosine).
The BM25 baseline and fused rankings are in the quality harness, which needs
Elasticsearch; training evaluation needs only the model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

# NOTE: benchmarks/ is part of the repository, not of the installed package, so
# training evaluation runs from a checkout of the repository.
from benchmarks.quality.dense import dense_rankings, two_stage_rankings
from benchmarks.quality.metrics import evaluate_rankings
from benchmarks.quality.querysets import QuerySet, load_query_sets
from encoder.model import PatentEncoder
from training.corpus import Patent, sample_patents

logger = logging.getLogger(__name__)

METHODS = ("dense-abstract", "two-stage")


def prepare_evaluation(
    patents: Sequence[Patent],
    query_files: Sequence[Path],
    corpus_size: int | None,
    seed: int,
) -> tuple[list[Patent], list[QuerySet]]:
    """Load the query sets and pick the evaluation corpus.

    With ``corpus_size`` the corpus is every query and relevant patent plus random
    others up to that size; rankings on it are easier than on the whole corpus, so
    compare such numbers only with each other.
    """
    if not query_files:
        raise ValueError("no evaluation query files; pass --eval-queries FILE.jsonl")
    full = {patent.application_number: (patent.title, patent.abstract) for patent in patents}
    query_sets = [query_set for path in query_files
                  for query_set in load_query_sets(path, full)]
    needed = frozenset(number for query_set in query_sets for query in query_set.queries
                       for number in query.relevant | query.exclude)
    corpus = sample_patents(patents, corpus_size, seed, keep=needed)
    return corpus, query_sets


def evaluate_encoder(
    encoder: PatentEncoder,
    corpus: Sequence[Patent],
    query_sets: Sequence[QuerySet],
    *,
    batch_size: int = 64,
) -> dict[str, dict[str, dict[str, float]]]:
    """Return ``{query set label: {method: metrics}}`` for the dense methods.

    Metrics are those of :func:`benchmarks.quality.metrics.evaluate_rankings`.
    """
    started = time.monotonic()
    doc_ids = [patent.application_number for patent in corpus]
    abstracts = encoder.encode([patent.abstract for patent in corpus], batch_size=batch_size)
    titles = encoder.encode([patent.title for patent in corpus], batch_size=batch_size)
    results: dict[str, dict[str, dict[str, float]]] = {}
    for query_set in query_sets:
        queries = query_set.queries
        if not queries:
            logger.warning("query set %s has no query with a relevant patent in the corpus "
                           "(%d dropped); skipped", query_set.label, query_set.dropped_queries)
            continue
        qrels = {query.query_id: query.relevant for query in queries}
        vectors = encoder.encode([query.text for query in queries], batch_size=batch_size,
                                 show_progress=False)
        rankings = {
            "dense-abstract": dense_rankings(queries, vectors, abstracts, doc_ids, k=100),
            "two-stage": two_stage_rankings(queries, vectors, abstracts, titles, doc_ids,
                                            k=100),
        }
        results[query_set.label] = {
            method: evaluate_rankings(ranking, qrels) for method, ranking in rankings.items()
        }
    logger.info("evaluated %s on %d patents and %d query sets in %.0f s", encoder.name,
                len(corpus), len(query_sets), time.monotonic() - started)
    return results
