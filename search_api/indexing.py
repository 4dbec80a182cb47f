"""The indexing job: read patents from Elasticsearch, encode new and changed ones, save the store.

``patentmatch index build`` encodes every patent into a fresh store;
``patentmatch index update`` encodes only patents whose ``content_hash`` is
new or changed and retires patents that left the index.

The job is resumable: encoded batches are written as checkpoint files (a
temporary file, then ``os.replace``) under
``<cache_dir>/vectors/.checkpoints/<alias>/``. A re-run after an interruption
loads the batches already encoded and continues with the rest. A manifest
records the digest of the work list; when the index changed in between, the
old checkpoints are discarded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from elasticsearch import Elasticsearch, NotFoundError
from tqdm.auto import tqdm

from patentmatch.config import Settings
from search_api.vectors import (
    StoreMetadata,
    VectorStore,
    VectorStoreError,
    read_metadata,
    resolve_factory,
    store_dir,
)

logger = logging.getLogger(__name__)

SCAN_PAGE = 5_000
PIT_KEEP_ALIVE = "5m"


@dataclass
class IndexSummary:
    """Outcome of one indexing run; counts are patents."""

    es_index: str
    in_elasticsearch: int
    encoded: int
    from_checkpoint: int
    unchanged: int
    removed: int
    count: int
    factory: str
    seconds: float

    def line(self) -> str:
        return (f"{self.count} patents in the store ({self.factory}) for {self.es_index}: "
                f"{self.encoded} encoded, {self.from_checkpoint} from checkpoints, "
                f"{self.unchanged} unchanged, {self.removed} removed, {self.seconds:.1f} s")


def show_progress() -> bool:
    """Progress bars follow the log level: shown at INFO and DEBUG."""
    return logger.getEffectiveLevel() <= logging.INFO


def resolve_index(es: Elasticsearch, alias: str) -> str:
    """Return the concrete index behind ``alias`` (or ``alias`` itself when it is an index)."""
    try:
        names = sorted(es.indices.get_alias(name=alias))
    except NotFoundError:
        if es.indices.exists(index=alias):
            return alias
        raise VectorStoreError(
            f"Elasticsearch has no alias or index {alias!r}; ingest patents first with "
            "`patentmatch ingest` or set PATENTMATCH_INDEX_ALIAS"
        ) from None
    if len(names) != 1:
        raise VectorStoreError(f"alias {alias!r} points to {len(names)} indices {names}; expected one")
    return names[0]


def scan_hashes(es: Elasticsearch, index: str) -> dict[str, str]:
    """Return application number -> content_hash of every patent, via a point in time."""
    hashes: dict[str, str] = {}
    pit = es.open_point_in_time(index=index, keep_alive=PIT_KEEP_ALIVE)["id"]
    total = es.count(index=index)["count"]
    try:
        search_after = None
        with tqdm(total=total, desc="scan", unit="doc", disable=not show_progress()) as bar:
            while True:
                body: dict[str, Any] = {"size": SCAN_PAGE, "_source": ["content_hash"],
                                        "pit": {"id": pit, "keep_alive": PIT_KEEP_ALIVE},
                                        "sort": ["_shard_doc"], "track_total_hits": False}
                if search_after is not None:
                    body["search_after"] = search_after
                reply = es.search(**body)
                pit = reply.get("pit_id", pit)
                hits = reply["hits"]["hits"]
                for hit in hits:
                    hashes[hit["_id"]] = (hit.get("_source") or {}).get("content_hash") or ""
                bar.update(len(hits))
                if len(hits) < SCAN_PAGE:
                    return hashes
                search_after = hits[-1]["sort"]
    finally:
        es.close_point_in_time(id=pit)


def fetch_texts(es: Elasticsearch, index: str, numbers: list[str]) -> list[dict]:
    """Return title, abstract and content_hash of ``numbers``, in order."""
    reply = es.mget(index=index, ids=numbers, source_includes=["title", "abstract", "content_hash"])
    documents = []
    for number, doc in zip(numbers, reply["docs"]):
        if not doc.get("found"):
            raise VectorStoreError(f"patent {number} disappeared from {index} during indexing; run again")
        documents.append(doc["_source"])
    return documents


def encode_documents(encoder: Any, documents: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Encode (abstracts, titles); an empty abstract is replaced by the title.

    A patent without an abstract is then still found by stage 1, through its title.
    """
    titles = [(d.get("title") or "").strip() for d in documents]
    abstracts = [(d.get("abstract") or "").strip() or t for d, t in zip(documents, titles)]
    abstract_vectors = encoder.encode(abstracts, show_progress=False)
    title_vectors = encoder.encode(titles, show_progress=False)
    return np.asarray(abstract_vectors, np.float32), np.asarray(title_vectors, np.float32)


##### checkpoints


class Checkpoints:
    """Encoded batches of one run, resumable across interruptions."""

    def __init__(self, folder: Path, work: list[tuple[str, str]], batch_size: int, fingerprint: str):
        self.folder = folder
        self.batch_size = batch_size
        digest = hashlib.sha256()
        digest.update(f"{fingerprint}:{batch_size}\n".encode())
        for number, content_hash in work:
            digest.update(f"{number}:{content_hash}\n".encode())
        self.digest = digest.hexdigest()
        manifest = folder / "manifest.json"
        if manifest.is_file() and json.loads(manifest.read_text()).get("digest") != self.digest:
            logger.info("Discarding checkpoints in %s: the work list changed", folder)
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if not manifest.is_file():
            _write_atomic(manifest, json.dumps({"digest": self.digest, "batch_size": batch_size}).encode())

    def path(self, batch: int) -> Path:
        return self.folder / f"batch-{batch:06d}.npz"

    def load(self, batch: int, numbers: list[str]) -> dict[str, np.ndarray] | None:
        path = self.path(batch)
        if not path.is_file():
            return None
        with np.load(path) as data:
            if list(data["numbers"]) != numbers:
                return None
            return {key: data[key] for key in data.files}

    def save(self, batch: int, **arrays: np.ndarray) -> None:
        temporary = self.path(batch).with_suffix(".tmp.npz")
        np.savez(temporary, **arrays)
        os.replace(temporary, self.path(batch))

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _write_atomic(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def _batches(items: list, size: int) -> Iterator[tuple[int, list]]:
    for batch, start in enumerate(range(0, len(items), size)):
        yield batch, items[start:start + size]


##### the job


def _open_store(settings: Settings, encoder: Any, rebuild: bool, rows: int) -> VectorStore:
    root = store_dir(settings.cache_dir, settings.index_alias)
    if not rebuild:
        try:
            meta = read_metadata(root)
        except VectorStoreError:
            logger.info("No vector store under %s yet; building one", root)
        else:
            if meta.encoder_fingerprint != encoder.fingerprint or meta.dimension != encoder.dimension:
                logger.warning("The stored vectors come from encoder %s (%s), not %s (%s); rebuilding",
                               meta.encoder_name, meta.encoder_fingerprint[:12], encoder.name,
                               encoder.fingerprint[:12])
            else:
                return VectorStore.load(root)
    factory = resolve_factory(settings.faiss_factory, rows)
    meta = StoreMetadata(encoder_name=encoder.name, encoder_fingerprint=encoder.fingerprint,
                         dimension=encoder.dimension, factory=factory,
                         es_alias=settings.index_alias)
    return VectorStore(meta)


def run_indexing(settings: Settings, encoder: Any, es: Elasticsearch, rebuild: bool = False,
                 batch_size: int = 1024) -> IndexSummary:
    """Bring the vector store of ``settings.index_alias`` up to date with Elasticsearch.

    Args:
        rebuild: encode everything into a fresh store (``index build``); False
            encodes only new and changed patents (``index update``).
        batch_size: patents per checkpoint file (default 1024).
    """
    started = time.perf_counter()
    alias = settings.index_alias
    es_index = resolve_index(es, alias)
    logger.info("Reading content hashes from %s (alias %s)", es_index, alias)
    current = scan_hashes(es, es_index)
    store = _open_store(settings, encoder, rebuild, len(current))

    work = sorted((n, h) for n, h in current.items() if store.content_hash(n) != h)
    removed = [n for n in store.row_of if n not in current]
    unchanged = len(current) - len(work)
    logger.info("%d patents to encode, %d unchanged, %d to remove", len(work), unchanged, len(removed))

    checkpoints = Checkpoints(store_dir(settings.cache_dir, ".checkpoints") / alias, work,
                              batch_size, encoder.fingerprint)
    parts: list[dict[str, np.ndarray]] = []
    encoded = reused = 0
    numbers_only = [n for n, _ in work]
    with tqdm(total=len(work), desc="encode", unit="patent", disable=not show_progress()) as bar:
        for batch, numbers in _batches(numbers_only, batch_size):
            part = checkpoints.load(batch, numbers)
            if part is None:
                documents = fetch_texts(es, es_index, numbers)
                abstracts, titles = encode_documents(encoder, documents)
                part = {"numbers": np.asarray(numbers), "abstracts": abstracts, "titles": titles,
                        "hashes": np.asarray([d.get("content_hash") or "" for d in documents])}
                checkpoints.save(batch, **part)
                encoded += len(numbers)
            else:
                reused += len(numbers)
            parts.append(part)
            bar.update(len(numbers))

    store.remove(removed)
    if parts:
        abstracts = np.concatenate([p["abstracts"] for p in parts])
        titles = np.concatenate([p["titles"] for p in parts])
        numbers = [str(n) for p in parts for n in p["numbers"]]
        hashes = [str(h) for p in parts for h in p["hashes"]]
        store.train(abstracts)
        store.upsert(numbers, hashes, abstracts, titles)
    if store.needs_compaction():
        store.compact()
    store.meta.es_index = es_index
    store.meta.es_alias = alias
    store.save(store_dir(settings.cache_dir, alias))
    checkpoints.clear()

    summary = IndexSummary(es_index, len(current), encoded, reused, unchanged, len(removed), len(store),
                           store.meta.factory, time.perf_counter() - started)
    logger.info("Indexing done: %s", summary.line())
    return summary
