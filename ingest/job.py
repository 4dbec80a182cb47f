"""The ingest run: read, normalise, merge, analyse, bulk-index, join scores.

Pipeline per input file: reader -> :func:`normalize_record` -> batches of
``Settings.bulk_chunk_size`` records -> merge with duplicates and with the stored
document -> Kiwi terms -> ``streaming_bulk``. Each batch is indexed before the
next one is read, so later batches see earlier ones through a realtime ``mget``.

Merge rules (docs/architecture.md fields):

- Within one run the first record seen for an application number wins: a later
  duplicate only fills fields the first lacks, adds list values (IPC, CPC,
  applicants, sources) and may replace a truncated or shorter abstract. Any
  other differing value, the title first of all, is written to the rejects file
  as a ``conflict`` naming both values and the one kept.
- Against a document stored by an earlier run, the record being ingested wins
  for the fields it has. Stored fields it lacks (scores, fields from other
  formats) are kept, and list values are combined.
- A document whose merged form equals the stored one (``ingested_at`` aside) is
  not sent: it counts as ``unchanged``. Re-running an ingest therefore changes
  nothing and is fast, because unchanged text is not analysed again.

Resuming: after every batch a checkpoint (written to a temporary file, then
``os.replace``) records how many entries of each input are done. A run with the
same inputs and alias picks up from there, in the same target index. Any other
run starts over, which is safe because indexing is idempotent.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import resource
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from elasticsearch import Elasticsearch
from elasticsearch.helpers import streaming_bulk
from tqdm.auto import tqdm

from ingest.index import (
    AliasStateError,
    create_index,
    current_index,
    es_client,
    new_index_name,
    swap_alias,
)
from ingest.korean import analyze_many
from ingest.normalize import (
    UNCLASSIFIED,
    SixTTable,
    content_hash,
    load_six_t_table,
    looks_truncated,
    normalize_record,
)
from ingest.readers import ReaderError, read_patents
from ingest.records import RecordError, Reject, SourceRecord
from ingest.scores import read_scores
from patentmatch.config import Settings

logger = logging.getLogger(__name__)

Doc = dict[str, Any]

LIST_FIELDS = ("ipc", "ipc_subclass", "cpc", "applicants", "sources")
# Fields recomputed after a merge, never compared as conflicts.
DERIVED_FIELDS = ("ipc_subclass", "six_t", "six_t_source", "content_hash",
                  "abstract_truncated", "title_terms", "abstract_terms", "ingested_at")
CHECKPOINT_VERSION = 1
# Bulk item statuses that mean an overloaded or unavailable cluster.
TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})


@dataclass
class IngestSummary:
    """Counts of one ingest run.

    Attributes:
        alias: the alias readers query.
        index: the concrete index written.
        read: patent entries read (records plus unreadable entries).
        indexed: new documents created.
        updated: stored documents that changed.
        unchanged: documents identical to the stored ones, not sent.
        merged: duplicate records merged into one seen earlier in the run.
        rejected: entries not indexed (reader rejects, invalid records, bulk
            failures); each is in the rejects file.
        conflicts: duplicates whose values disagreed (the rejects file names them).
        warnings: records kept with a field left out.
        scores_read / scores_applied / scores_unchanged / scores_unknown /
        scores_rejected: the same for evaluation rows; ``scores_unknown`` rows
            name a patent that is not in the index.
        seconds: wall time of the run.
        rejects_path: the JSONL file with every reject, conflict and warning.
        resumed: True when the run continued from a checkpoint.
        alias_swapped: True when the alias was pointed at a new index.
    """

    alias: str
    index: str
    read: int = 0
    indexed: int = 0
    updated: int = 0
    unchanged: int = 0
    merged: int = 0
    rejected: int = 0
    conflicts: int = 0
    warnings: int = 0
    scores_read: int = 0
    scores_applied: int = 0
    scores_unchanged: int = 0
    scores_unknown: int = 0
    scores_rejected: int = 0
    seconds: float = 0.0
    rejects_path: Path | None = None
    resumed: bool = False
    alias_swapped: bool = False

    @property
    def docs_per_s(self) -> float:
        """Patent documents processed (indexed, updated, unchanged) per second."""
        done = self.indexed + self.updated + self.unchanged
        return done / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["rejects_path"] = str(self.rejects_path) if self.rejects_path else None
        out["docs_per_s"] = round(self.docs_per_s, 1)
        out["seconds"] = round(self.seconds, 2)
        return out


class IngestError(RuntimeError):
    """The run cannot start or go on (no cluster, bad alias state, bad arguments)."""


#####################################################################
# Rejects file and checkpoint
#####################################################################


class RejectsWriter:
    """Appends rejects, conflicts and warnings as JSON Lines and counts them."""

    def __init__(self, path: Path, append: bool) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle: IO[str] = path.open("a" if append else "w", encoding="utf-8")
        self.counts: dict[str, int] = {}

    def write(self, reject: Reject) -> None:
        self._handle.write(json.dumps(reject.to_json(), ensure_ascii=False) + "\n")
        self.counts[reject.kind] = self.counts.get(reject.kind, 0) + 1
        level = logging.DEBUG if reject.kind == "warning" else logging.INFO
        logger.log(level, "%s %s: %s", reject.kind, reject.source, reject.reason)

    def flush(self) -> None:
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


def _file_identity(path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


class Checkpoint:
    """Progress per input, saved atomically (temporary file + ``os.replace``)."""

    def __init__(self, path: Path, state: dict[str, Any]) -> None:
        self.path = path
        self.state = state

    @classmethod
    def fresh(cls, path: Path, run_key: str, index: str, rejects: Path,
              new_index: bool) -> Checkpoint:
        return cls(path, {"version": CHECKPOINT_VERSION, "run_key": run_key,
                          "index": index, "rejects_path": str(rejects),
                          "new_index": new_index, "inputs": {}})

    @classmethod
    def load(cls, path: Path, run_key: str) -> Checkpoint | None:
        """Load this run's checkpoint; ``None`` when missing, unreadable or from another run."""
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            logger.warning("ignoring unreadable checkpoint %s: %s", path, exc)
            return None
        if state.get("version") != CHECKPOINT_VERSION or state.get("run_key") != run_key:
            logger.info("checkpoint %s belongs to other inputs or options; starting over",
                        path)
            return None
        return cls(path, state)

    def done(self, key: str, identity: dict[str, Any]) -> int:
        """Entries of input ``key`` already processed; 0 when the file changed."""
        entry = self.state["inputs"].get(key)
        if entry is None:
            return 0
        if entry.get("identity") != identity:
            logger.warning("%s changed since the checkpoint; reading it from the start", key)
            return 0
        return int(entry.get("done", 0))

    def finished(self, key: str, identity: dict[str, Any]) -> bool:
        """True when input ``key``, unchanged since, was read to its end."""
        entry = self.state["inputs"].get(key, {})
        return bool(entry.get("finished")) and entry.get("identity") == identity

    def update(self, key: str, identity: dict[str, Any], done: int,
               finished: bool = False) -> None:
        self.state["inputs"][key] = {"identity": identity, "done": done,
                                     "finished": finished}
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as handle:
            json.dump(self.state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


#####################################################################
# Merging
#####################################################################


def _union(first: list[Any] | None, second: list[Any] | None) -> list[Any]:
    return list(dict.fromkeys([*(first or []), *(second or [])]))


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def merge_duplicate(first: Doc, later: Doc) -> tuple[Doc, list[str]]:
    """Merge a later duplicate into the first record seen; return (doc, conflicts).

    The first record's values win. The later one fills empty fields and adds
    list values. It replaces the abstract when the first is truncated or empty
    and the later one is longer. Each other disagreement is described in
    ``conflicts`` (field, both values, the one kept).
    """
    merged = dict(first)
    conflicts: list[str] = []
    for name, value in later.items():
        if name in DERIVED_FIELDS or _empty(value):
            continue
        if name in LIST_FIELDS:
            merged[name] = _union(merged.get(name), value)
            continue
        kept = merged.get(name)
        if _empty(kept):
            merged[name] = value
            continue
        if kept == value:
            continue
        if name == "abstract":
            if (first.get("abstract_truncated") or looks_truncated(kept)) and \
                    len(value) > len(kept):
                merged[name] = value
                merged["abstract_truncated"] = bool(later.get("abstract_truncated"))
            continue
        if name == "scores":
            continue
        conflicts.append(f"{name} {_short(value)!r} differs from {_short(kept)!r}; "
                         "kept the first-seen value")
    return merged, conflicts


def merge_with_stored(new: Doc, stored: Doc) -> Doc:
    """Merge a record into the document an earlier run stored.

    The record wins for the fields it has, stored fields it lacks stay and lists
    combine. A truncated abstract does not replace a longer stored one: that
    is the rule :func:`merge_duplicate` applies, so re-running an ingest whose
    duplicates were merged gives the same document.
    """
    merged = dict(stored)
    for name, value in new.items():
        if name in LIST_FIELDS:
            merged[name] = _union(value, stored.get(name))
        elif name in ("abstract", "abstract_truncated") and _keeps_stored_abstract(new, stored):
            continue
        elif not _empty(value) or name not in stored:
            merged[name] = value
    return merged


def _keeps_stored_abstract(new: Doc, stored: Doc) -> bool:
    new_abstract = new.get("abstract") or ""
    stored_abstract = stored.get("abstract") or ""
    new_truncated = bool(new.get("abstract_truncated")) or looks_truncated(new_abstract)
    return (not new_abstract or new_truncated) and len(stored_abstract) > len(new_abstract)


def _short(value: Any, limit: int = 120) -> Any:
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + "..."
    return value


def finalize(doc: Doc, table: SixTTable) -> Doc:
    """Recompute the derived fields after a merge."""
    ipc = doc.get("ipc") or []
    if ipc:
        doc["ipc_subclass"] = list(dict.fromkeys(code[:4] for code in ipc))
    if doc.get("six_t_source") != "input":
        derived = table.classify(ipc)
        doc["six_t"], doc["six_t_source"] = (derived, "table") if derived else \
            (UNCLASSIFIED, "none")
    doc["abstract_truncated"] = bool(doc.get("abstract_truncated")) or \
        looks_truncated(doc.get("abstract", ""))
    doc["content_hash"] = content_hash(doc["title"], doc.get("abstract", ""))
    return doc


def _comparable(doc: Doc | None) -> Doc | None:
    if doc is None:
        return None
    return {k: v for k, v in doc.items() if k != "ingested_at"}


def _title_text(doc: Doc) -> str:
    return " ".join(filter(None, (doc.get("title"), doc.get("title_en"))))


#####################################################################
# The run
#####################################################################


@dataclass
class _Pending:
    """A normalised record waiting in the current batch."""

    doc: Doc
    source: str


@dataclass
class _Run:
    settings: Settings
    client: Elasticsearch
    index: str
    table: SixTTable
    rejects: RejectsWriter
    summary: IngestSummary
    check_stored: bool
    # Application numbers indexed (seen) and scored in this run; about 70 bytes
    # each, so some 110 MB for the full 1.6 million patents.
    seen: set[int] = field(default_factory=set)
    scored: set[str] = field(default_factory=set)
    bar: Any = None
    started: float = field(default_factory=time.monotonic)

    # --- patents -----------------------------------------------------

    def ingest_patents(self, items: Iterable[Any], key: str, identity: dict[str, Any],
                       checkpoint: Checkpoint, skip: int) -> None:
        batch: dict[str, _Pending] = {}
        last_position = skip - 1
        for item in items:
            if item.position < skip:
                continue
            last_position = max(last_position, item.position)
            self.summary.read += 1
            if self.bar is not None:
                self.bar.update(1)
            if isinstance(item, Reject):
                self._reject(item)
                continue
            try:
                normalized = normalize_record(item, self.table)
            except RecordError as exc:
                self._reject(Reject(item.source, str(exc),
                                    application_number=_raw_number(item),
                                    raw=item.fields, position=item.position))
                continue
            for warning in normalized.warnings:
                self.rejects.write(Reject(item.source, warning, kind="warning",
                                          application_number=normalized.doc[
                                              "application_number"]))
                self.summary.warnings += 1
            self._add_to_batch(batch, normalized.doc, item.source)
            if len(batch) >= self.settings.bulk_chunk_size:
                self._flush_patents(batch)
                batch = {}
                checkpoint.update(key, identity, last_position + 1)
                self._log_batch(key, last_position + 1)
        self._flush_patents(batch)
        checkpoint.update(key, identity, last_position + 1, finished=True)
        self._log_batch(key, last_position + 1)

    def _log_batch(self, key: str, done: int) -> None:
        summary = self.summary
        logger.debug(
            "%s: %d entries done; run totals: indexed %d, updated %d, unchanged %d, "
            "rejected %d; %.0f s, max RSS %.0f MiB", key, done, summary.indexed,
            summary.updated, summary.unchanged, summary.rejected,
            time.monotonic() - self.started, _max_rss_mib(),
        )

    def _add_to_batch(self, batch: dict[str, _Pending], doc: Doc, source: str) -> None:
        number = doc["application_number"]
        pending = batch.get(number)
        if pending is None:
            batch[number] = _Pending(doc, source)
            return
        self._merge_report(pending, doc, source)

    def _merge_report(self, pending: _Pending, doc: Doc, source: str) -> None:
        merged, conflicts = merge_duplicate(pending.doc, doc)
        pending.doc = merged
        self.summary.merged += 1
        for conflict in conflicts:
            self.summary.conflicts += 1
            self.rejects.write(Reject(source, f"duplicate of the record at "
                                      f"{pending.source}: {conflict}", kind="conflict",
                                      application_number=doc["application_number"]))

    def _flush_patents(self, batch: dict[str, _Pending]) -> None:
        if not batch:
            return
        numbers = list(batch)
        fetch = [n for n in numbers if self.check_stored or int(n) in self.seen]
        stored = self._mget(fetch)

        actions: list[dict[str, Any]] = []
        to_analyse: list[tuple[Doc, Doc | None]] = []
        for number in numbers:
            pending = batch[number]
            old = stored.get(number)
            if old is not None and int(number) in self.seen:
                # A duplicate of a record indexed earlier in this run.
                earlier = _Pending(old, (old.get("sources") or ["an earlier batch"])[-1])
                self._merge_report(earlier, pending.doc, pending.source)
                doc = earlier.doc
            elif old is not None:
                doc = merge_with_stored(pending.doc, old)
            else:
                doc = pending.doc
            doc = finalize(doc, self.table)
            to_analyse.append((doc, old))
        self._add_terms(to_analyse)

        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        for doc, old in to_analyse:
            if _comparable(doc) == _comparable(old):
                self.summary.unchanged += 1
                continue
            doc["ingested_at"] = now
            actions.append({"_op_type": "index", "_index": self.index,
                            "_id": doc["application_number"], "_source": doc,
                            "_created": old is None})
        self._bulk(actions, kind="patent")
        self.seen.update(int(n) for n in numbers)
        self.rejects.flush()

    def _add_terms(self, pairs: list[tuple[Doc, Doc | None]]) -> None:
        """Fill ``title_terms``/``abstract_terms``, reusing the stored ones when the text is equal."""
        titles: list[tuple[Doc, str]] = []
        abstracts: list[tuple[Doc, str]] = []
        for doc, old in pairs:
            if old is not None and _title_text(old) == _title_text(doc) and "title_terms" in old:
                doc["title_terms"] = old["title_terms"]
            else:
                titles.append((doc, _title_text(doc)))
            if old is not None and old.get("abstract") == doc.get("abstract") and \
                    "abstract_terms" in old:
                doc["abstract_terms"] = old["abstract_terms"]
            else:
                abstracts.append((doc, doc.get("abstract", "")))
        analysed = list(analyze_many(text for _, text in titles + abstracts))
        for (doc, _), terms in zip(titles, analysed[:len(titles)]):
            doc["title_terms"] = terms
        for (doc, _), terms in zip(abstracts, analysed[len(titles):]):
            doc["abstract_terms"] = terms

    # --- scores --------------------------------------------------------

    def ingest_scores(self, items: Iterable[Any], key: str, identity: dict[str, Any],
                      checkpoint: Checkpoint, skip: int) -> None:
        batch: dict[str, tuple[dict[str, Any], str]] = {}
        last_position = skip - 1
        for item in items:
            if item.position < skip:
                continue
            last_position = max(last_position, item.position)
            self.summary.scores_read += 1
            if isinstance(item, Reject):
                self.summary.scores_rejected += 1
                self.rejects.write(item)
                continue
            number = item.fields["application_number"]
            scores = item.fields["scores"]
            if number in batch:
                earlier_scores, earlier_source = batch[number]
                if _newer_evaluation(scores, earlier_scores):
                    batch[number] = (scores, item.source)
                    self._score_conflict(number, earlier_source, item.source)
                else:
                    self._score_conflict(number, item.source, earlier_source)
                continue
            batch[number] = (scores, item.source)
            if len(batch) >= self.settings.bulk_chunk_size:
                self._flush_scores(batch)
                batch = {}
                checkpoint.update(key, identity, last_position + 1)
        self._flush_scores(batch)
        checkpoint.update(key, identity, last_position + 1, finished=True)

    def _score_conflict(self, number: str, dropped: str, kept: str) -> None:
        self.summary.conflicts += 1
        self.rejects.write(Reject(
            dropped, f"second evaluation of {number}; kept the one at {kept} (the later "
            "evaluation_date wins, on a tie the first one read)", kind="conflict",
            application_number=number))

    def _flush_scores(self, batch: dict[str, tuple[dict[str, Any], str]]) -> None:
        if not batch:
            return
        stored = self._mget(list(batch))
        actions = []
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        for number, (scores, source) in batch.items():
            doc = stored.get(number)
            if doc is None:
                self.summary.scores_unknown += 1
                self.rejects.write(Reject(source, f"evaluation for {number}, which is not "
                                          "in the index; ingest the patent first",
                                          kind="unknown_patent", application_number=number))
                continue
            earlier = doc.get("scores")
            if earlier and earlier != scores:
                # The later evaluation wins, whether the stored one comes from
                # this run or an earlier one, so a re-run keeps the same scores.
                # On equal dates a row of this run beats a stored one from
                # earlier runs (a corrected file), but not one from this run.
                older = _newer_evaluation(earlier, scores) or (
                    number in self.scored and not _newer_evaluation(scores, earlier))
                if older:
                    self._score_conflict(number, source, "the stored evaluation")
                    continue
                if number in self.scored:
                    self._score_conflict(number, "an earlier row of this run", source)
            self.scored.add(number)
            if earlier == scores:
                self.summary.scores_unchanged += 1
                continue
            doc["scores"] = scores
            doc["ingested_at"] = now
            actions.append({"_op_type": "index", "_index": self.index, "_id": number,
                            "_source": doc})
        self._bulk(actions, kind="score")
        self.rejects.flush()

    # --- Elasticsearch -------------------------------------------------

    def _mget(self, numbers: list[str]) -> dict[str, Doc]:
        if not numbers:
            return {}
        reply = self.client.mget(index=self.index, ids=numbers, realtime=True)
        return {d["_id"]: d["_source"] for d in reply["docs"] if d.get("found")}

    def _bulk(self, actions: list[dict[str, Any]], kind: str) -> None:
        if not actions:
            return
        created = {a["_id"]: a.pop("_created", False) for a in actions}
        results = streaming_bulk(
            self.client, actions,
            chunk_size=self.settings.bulk_chunk_size,
            max_retries=self.settings.bulk_max_retries,
            initial_backoff=1.0,
            max_backoff=self.settings.bulk_max_backoff_s,
            raise_on_error=False,
            raise_on_exception=False,
        )
        for ok, info in results:
            item = info.get("index", info)
            number = item.get("_id")
            if not ok:
                error = item.get("error", item)
                reason = error.get("reason", error) if isinstance(error, dict) else error
                status = item.get("status")
                if "exception" in item or status in TRANSIENT_STATUSES:
                    # The cluster, not the document, failed: stop before the
                    # checkpoint moves past documents that were not indexed.
                    raise IngestError(
                        f"Elasticsearch failed on a {kind} bulk request after "
                        f"{self.settings.bulk_max_retries} retries (status {status}): "
                        f"{reason}; progress up to the previous batch is saved, run the "
                        "same command again to resume"
                    )
                self._reject(Reject(f"{self.index}/{number}", f"Elasticsearch rejected the "
                                    f"{kind} document (status {status}): {reason}",
                                    application_number=number))
                continue
            if kind == "score":
                self.summary.scores_applied += 1
            elif created.get(number):
                self.summary.indexed += 1
            else:
                self.summary.updated += 1

    def _reject(self, reject: Reject) -> None:
        self.summary.rejected += 1
        self.rejects.write(reject)


def _max_rss_mib() -> float:
    """Peak resident memory of this process in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _newer_evaluation(scores: dict[str, Any], than: dict[str, Any]) -> bool:
    """True when ``scores`` has a strictly later evaluation_date than ``than``."""
    return (scores.get("evaluation_date") or "") > (than.get("evaluation_date") or "")


def _raw_number(record: SourceRecord) -> str | None:
    value = record.fields.get("application_number")
    return None if value is None else str(value)


def _show_progress(show_progress: bool | None) -> bool:
    if show_progress is not None:
        return show_progress
    return logger.getEffectiveLevel() <= logging.INFO


def _run_key(paths: Sequence[Path], scores: Sequence[Path], alias: str, new_index: bool) -> str:
    text = json.dumps([[str(p) for p in paths], [str(p) for p in scores], alias, new_index])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def run_ingest(
    paths: Iterable[str | Path],
    settings: Settings,
    *,
    scores: Iterable[str | Path] = (),
    rejects_path: str | Path | None = None,
    new_index: bool = False,
    keep_old: bool = False,
    resume: bool = True,
    client: Elasticsearch | None = None,
    show_progress: bool | None = None,
) -> IngestSummary:
    """Ingest patent files and KPEG evaluation files into ``settings.index_alias``.

    Args:
        paths: patent inputs (files or KIPRIS Plus bulk folders), any format of
            :mod:`ingest.readers`.
        settings: cluster, alias, bulk sizes, 6T table and cache folder.
        scores: KPEG evaluation CSVs, joined onto the patents after all patent
            files (including patents already in the index).
        rejects_path: JSONL file for rejects, conflicts and warnings. Default:
            ``<cache_dir>/ingest/<alias>-rejects.jsonl``.
        new_index: build a fresh ``<alias>-v<timestamp>`` index and point the
            alias at it at the end. When the alias does not exist yet, this is
            what happens anyway. Default (False): update the index behind the alias.
        keep_old: with ``new_index``, keep the indices the alias pointed to
            instead of deleting them.
        resume: continue from this run's checkpoint when there is one.
        client: an Elasticsearch client; default: one for ``settings.es_url``.
        show_progress: tqdm bar; default: when logging is at INFO or lower.

    Returns:
        The counts; also logged.

    Raises:
        IngestError: no input, an input that does not exist, or an alias that
            cannot be written.
    """
    started = time.monotonic()
    paths = [Path(p) for p in paths]
    score_paths = [Path(p) for p in scores]
    if not paths and not score_paths:
        raise IngestError("nothing to ingest: give at least one patent file or --scores file")
    if new_index and not paths:
        raise IngestError("--new-index needs patent files: a new index built from scores "
                          "alone would be empty; drop --new-index to join the scores onto "
                          "the current index")
    for path in (*paths, *score_paths):
        if not path.exists():
            raise IngestError(f"input {str(path)!r} does not exist; check the path")
    paths = list(dict.fromkeys(p.resolve() for p in paths))
    score_paths = list(dict.fromkeys(p.resolve() for p in score_paths))
    alias = settings.index_alias
    client = client or es_client(settings)
    table = load_six_t_table(settings.six_t_table)

    # 1. Where to write: the index behind the alias, or a new one.
    try:
        current = current_index(client, alias)
    except AliasStateError as exc:
        raise IngestError(str(exc)) from exc
    build_new = new_index or current is None
    run_key = _run_key(paths, score_paths, alias, build_new)
    checkpoint_path = settings.cache_dir / "ingest" / f"{alias}.checkpoint.json"
    checkpoint = Checkpoint.load(checkpoint_path, run_key) if resume else None
    if checkpoint is None:
        _warn_abandoned_index(checkpoint_path, client, current)
    if checkpoint is not None and not client.indices.exists(index=checkpoint.state["index"]):
        logger.info("the index %s of the checkpoint is gone; starting over",
                    checkpoint.state["index"])
        checkpoint = None
    resumed = checkpoint is not None
    if resumed:
        index = checkpoint.state["index"]
        rejects_file = Path(rejects_path or checkpoint.state["rejects_path"])
        logger.info("resuming into %s from %s", index, checkpoint_path)
    else:
        if build_new:
            index = new_index_name(alias)
            create_index(client, index)
        else:
            index = current
        rejects_file = Path(rejects_path) if rejects_path else \
            settings.cache_dir / "ingest" / f"{alias}-rejects.jsonl"
        checkpoint = Checkpoint.fresh(checkpoint_path, run_key, index, rejects_file,
                                      build_new)
        checkpoint.save()

    summary = IngestSummary(alias=alias, index=index, rejects_path=rejects_file,
                            resumed=resumed)
    rejects = RejectsWriter(rejects_file, append=resumed)
    run = _Run(settings, client, index, table, rejects, summary,
               check_stored=not build_new or resumed)
    bar = tqdm(unit="rec", desc="ingest", disable=not _show_progress(show_progress),
               dynamic_ncols=True)
    run.bar = bar
    try:
        # 2. Patent files, then 3. evaluation files.
        for kind, inputs in (("patents", paths), ("scores", score_paths)):
            for path in inputs:
                _ingest_one(run, kind, path, checkpoint)
        # 4. Make the documents visible, and the new index the alias's target.
        client.indices.refresh(index=index)
        if build_new:
            swap_alias(client, alias, index, keep_old=keep_old)
            summary.alias_swapped = True
    finally:
        bar.close()
        rejects.close()
    checkpoint.remove()

    summary.rejected += summary.scores_rejected
    summary.seconds = time.monotonic() - started
    logger.info(
        "ingest into %s (alias %s): read %d, indexed %d, updated %d, unchanged %d, "
        "merged %d, rejected %d, conflicts %d, warnings %d; scores read %d, applied %d, "
        "unchanged %d, unknown patent %d; %.1f docs/s over %.1f s; rejects in %s",
        index, alias, summary.read, summary.indexed, summary.updated, summary.unchanged,
        summary.merged, summary.rejected, summary.conflicts, summary.warnings,
        summary.scores_read, summary.scores_applied, summary.scores_unchanged,
        summary.scores_unknown, summary.docs_per_s, summary.seconds, rejects_file,
    )
    return summary


def _warn_abandoned_index(checkpoint_path: Path, client: Elasticsearch,
                          current: str | None) -> None:
    """Log a half-built index that a checkpoint about to be replaced points to."""
    try:
        state = json.loads(checkpoint_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    index = state.get("index")
    if state.get("new_index") and index and index != current and \
            client.indices.exists(index=index):
        logger.warning("index %s, half built by an interrupted run with other inputs or "
                       "options, is not resumed and stays; delete it (DELETE /%s) if it "
                       "is not needed", index, index)


def _ingest_one(run: _Run, kind: str, path: Path, checkpoint: Checkpoint) -> None:
    key = f"{kind}:{path}"
    identity = _file_identity(path) if path.is_file() else {"folder": True}
    if checkpoint.finished(key, identity):
        logger.info("%s: done in the interrupted run, skipped", path)
        return
    skip = checkpoint.done(key, identity)
    if skip:
        logger.info("%s: resuming after %d entries", path, skip)
    logger.info("reading %s %s", kind, path)
    try:
        items: Iterator[Any] = read_scores(path) if kind == "scores" else read_patents(path)
        if kind == "scores":
            run.ingest_scores(items, key, identity, checkpoint, skip)
        else:
            run.ingest_patents(items, key, identity, checkpoint, skip)
    except ReaderError as exc:
        run.summary.rejected += 1
        run.rejects.write(Reject(f"{path}:1", f"file skipped: {exc}"))
        checkpoint.update(key, identity, 0, finished=True)
