"""Query sets for the quality harness, read from JSONL files of two shapes.

Prior-art pairs (one line per cited document)::

    {"query_application_number": "...", "relevant_application_number": "..."}

The query is the query patent's own text, taken from the corpus, and the query
patent is excluded from its results. Lines sharing a query patent form one query.

Free-text questions (freedom-to-operate and alike)::

    {"query_id": "...", "query": "text", "relevant_application_numbers": ["..."]}

A relevant patent missing from the corpus cannot be retrieved; it is dropped and
counted, and a query left without relevant patents is dropped and counted too.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

PRIOR_ART = "prior-art"
QUESTIONS = "questions"
# Query text variants of a prior-art query patent.
PRIOR_ART_VARIANTS = ("title+abstract", "title")


class QuerySetError(ValueError):
    """A query file has an unknown shape or invalid lines; the message names the file and line."""


@dataclass(frozen=True)
class Query:
    """One evaluation query: its text, the relevant patents and the patents to leave out."""

    query_id: str
    text: str
    relevant: frozenset[str]
    exclude: frozenset[str] = frozenset()
    title: str = ""
    abstract: str = ""


@dataclass
class QuerySet:
    """Queries of one file under one variant, with what loading dropped."""

    name: str
    kind: str
    variant: str
    queries: list[Query]
    dropped_relevant: int = 0
    dropped_queries: int = 0
    source: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        """Short label for tables: file stem, plus the variant for prior-art sets."""
        return f"{self.name} [{self.variant}]" if self.kind == PRIOR_ART else self.name


def detect_kind(record: Mapping[str, object], path: Path, line_number: int) -> str:
    """Return ``prior-art`` or ``questions`` from the keys of one JSONL record."""
    if "query_application_number" in record and "relevant_application_number" in record:
        return PRIOR_ART
    if "query" in record and "relevant_application_numbers" in record:
        return QUESTIONS
    raise QuerySetError(
        f"{path}:{line_number}: unknown query shape with keys {sorted(record)!r}; expected "
        "query_application_number + relevant_application_number, or query + "
        "relevant_application_numbers"
    )


def _read_jsonl(path: Path) -> list[tuple[int, dict]]:
    if not path.is_file():
        raise FileNotFoundError(f"query file not found: {str(path)!r}")
    records = []
    with path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                records.append((line_number, json.loads(line)))
            except json.JSONDecodeError as exc:
                raise QuerySetError(f"{path}:{line_number}: invalid JSON: {exc}") from exc
    if not records:
        raise QuerySetError(f"{path}: no queries")
    return records


def load_query_sets(
    path: str | Path,
    corpus: Mapping[str, tuple[str, str]],
    variants: tuple[str, ...] = PRIOR_ART_VARIANTS,
) -> list[QuerySet]:
    """Load one query file; prior-art files give one set per variant in ``variants``.

    Args:
        corpus: application number -> (title, abstract) of every searchable patent.
        variants: prior-art query text variants, a subset of ``PRIOR_ART_VARIANTS``.
    """
    path = Path(path)
    unknown = [variant for variant in variants if variant not in PRIOR_ART_VARIANTS]
    if unknown:
        raise ValueError(f"unknown variants {unknown!r}; choose from {PRIOR_ART_VARIANTS!r}")
    records = _read_jsonl(path)
    kind = detect_kind(records[0][1], path, records[0][0])
    for line_number, record in records:
        if detect_kind(record, path, line_number) != kind:
            raise QuerySetError(f"{path}:{line_number}: mixes query shapes; one file, one shape")
    if kind == PRIOR_ART:
        return [_prior_art_set(path, records, corpus, variant) for variant in variants]
    return [_question_set(path, records, corpus)]


def _prior_art_set(path, records, corpus, variant: str) -> QuerySet:
    relevant: dict[str, set[str]] = {}
    dropped_relevant = 0
    for _, record in records:
        query_number = str(record["query_application_number"])
        target = str(record["relevant_application_number"])
        relevant.setdefault(query_number, set())
        if target in corpus and target != query_number:
            relevant[query_number].add(target)
        else:
            dropped_relevant += 1
    queries = []
    dropped_queries = 0
    for query_number, targets in relevant.items():
        if query_number not in corpus or not targets:
            dropped_queries += 1
            continue
        title, abstract = corpus[query_number]
        text = title if variant == "title" else f"{title} {abstract}".strip()
        queries.append(Query(query_number, text, frozenset(targets),
                             frozenset({query_number}), title, abstract))
    return QuerySet(path.stem, PRIOR_ART, variant, queries, dropped_relevant,
                    dropped_queries, str(path))


def _question_set(path, records, corpus) -> QuerySet:
    queries = []
    dropped_relevant = 0
    dropped_queries = 0
    for line_number, record in records:
        text = str(record.get("query") or "").strip()
        if not text:
            raise QuerySetError(f"{path}:{line_number}: empty query text")
        query_id = str(record.get("query_id") or line_number)
        targets = {str(number) for number in record["relevant_application_numbers"]}
        found = frozenset(number for number in targets if number in corpus)
        dropped_relevant += len(targets) - len(found)
        if not found:
            dropped_queries += 1
            continue
        queries.append(Query(query_id, text, found, title=text))
    return QuerySet(path.stem, QUESTIONS, "text", queries, dropped_relevant,
                    dropped_queries, str(path))
