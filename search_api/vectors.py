"""The vector store: a Faiss index of abstract embeddings plus title embeddings.

Every patent gets one row. The row number is the Faiss id, so the abstract
index, the title matrix and the application-number list line up by id. The
stored float32 vectors are the source of truth: the Faiss index only picks the
candidates, and the similarities returned to callers are exact dot products
with the stored vectors (the index may quantise with SQ8).

Layout on disk (``<cache_dir>/vectors/<alias>/``)::

    CURRENT                 name of the live version folder, replaced atomically
    v-<UTC time>/meta.json  StoreMetadata
    v-<UTC time>/abstracts.faiss, abstracts.npy, titles.npy, rows.json

A save writes a new version folder, then replaces ``CURRENT`` with
``os.replace``, so a reader sees either the old store or the new one, never a
half-written one. The previous version is deleted after the switch.

Updates of changed patents: an upsert appends a new row and retires the old row.
Flat and IVF indices drop retired ids with ``remove_ids`` (through
``IndexIDMap2``). HNSW cannot remove ids, so its retired rows stay in the graph
and every search excludes them with an ``IDSelector``; once retired rows exceed
``COMPACT_FRACTION`` of the store, ``compact`` rebuilds the index from the live
rows only.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Sequence

import faiss
import numpy as np

logger = logging.getLogger(__name__)

STORE_FORMAT = 1
COMPACT_FRACTION = 0.10
# Faiss warns below 39 training points per IVF cell; fewer gives poor centroids.
MIN_POINTS_PER_CELL = 39
# Corpora up to this size use exact search, which needs no training: one query
# over 100k x 384 float32 took 40-100 ms on 2 shared cores (benchmarks/vector_scale.py).
EXACT_MAX_ROWS = 100_000


class VectorStoreError(RuntimeError):
    """The vector store is missing, corrupt or cannot do what was requested."""


class VectorStoreMismatch(VectorStoreError):
    """The stored vectors do not belong to the current encoder or Elasticsearch index."""


@dataclass
class StoreMetadata:
    """Build record of a vector store, saved as ``meta.json``.

    Attributes:
        encoder_name: name of the sentence encoder (``PatentEncoder.name``).
        encoder_fingerprint: SHA-256 of the encoder's weights and config.
        dimension: embedding width.
        count: live rows (patents) in the store.
        rows: all rows including retired ones.
        factory: Faiss index factory string used for the abstract index.
        es_index: concrete Elasticsearch index the vectors were read from.
        es_alias: the alias readers query (``Settings.index_alias``).
        built_at: UTC time of the first build, ISO 8601.
        updated_at: UTC time of the last save, ISO 8601.
        versions: library versions at the last save.
    """

    encoder_name: str
    encoder_fingerprint: str
    dimension: int
    factory: str
    es_index: str = ""
    es_alias: str = ""
    count: int = 0
    rows: int = 0
    built_at: str = ""
    updated_at: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    format: int = STORE_FORMAT


def library_versions() -> dict[str, str]:
    """Return the versions that decide whether a saved index can be read back."""
    return {
        "faiss": faiss.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


##### choosing an index


def derive_nlist(rows: int) -> int:
    """Return the IVF cell count for ``rows`` vectors.

    4 * sqrt(rows) is a common starting point for IVF, rounded down to a power
    of two and capped so each cell gets at least 39 training points.
    """
    if rows < MIN_POINTS_PER_CELL:
        return 1
    nlist = 2 ** int(math.log2(max(1.0, 4 * math.sqrt(rows))))
    return max(1, min(nlist, rows // MIN_POINTS_PER_CELL))


def derive_factory(rows: int, kind: str = "ivf") -> str:
    """Return a factory string suited to a corpus of ``rows`` patents.

    Args:
        rows: number of vectors the index will hold.
        kind: ``ivf`` (IVF with 8-bit scalar quantisation) or ``hnsw`` (HNSW32
            over SQ8) for corpora above ``EXACT_MAX_ROWS``.
    """
    if rows <= EXACT_MAX_ROWS:
        return "Flat"
    if kind == "hnsw":
        return "HNSW32_SQ8"
    if kind == "ivf":
        return f"IVF{derive_nlist(rows)},SQ8"
    raise ValueError(f"index kind must be 'ivf' or 'hnsw', found {kind!r}")


def resolve_factory(factory: str, rows: int) -> str:
    """Turn the ``faiss_factory`` setting into a concrete factory string.

    ``auto`` picks by corpus size (``derive_factory``); ``IVFauto,...`` fills in
    the derived cell count. Other strings pass through unchanged.
    """
    factory = factory.strip()
    if not factory:
        raise ValueError("faiss_factory is empty; use 'Flat', 'auto', 'IVF4096,SQ8' or 'HNSW32_SQ8'")
    if factory.lower() == "auto":
        return derive_factory(rows)
    return re.sub(r"IVFauto", f"IVF{derive_nlist(rows)}", factory)


def _check_factory(factory: str, dimension: int) -> None:
    try:
        faiss.index_factory(dimension, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise ValueError(
            f"Faiss cannot build the factory string {factory!r}: {str(exc).splitlines()[0]}; "
            "use e.g. 'Flat', 'IVF4096,SQ8' or 'HNSW32_SQ8'"
        ) from exc


def _is_hnsw(factory: str) -> bool:
    return factory.upper().startswith("HNSW")


def _is_ivf(factory: str) -> bool:
    return factory.upper().startswith("IVF")


##### the store


@dataclass(frozen=True)
class SearchTuning:
    """Search-time settings of approximate indices.

    Attributes:
        nprobe: IVF cells visited per query; 0 picks nlist / 16 (at least 16).
        ef_search: HNSW candidate-list size; never below the requested k.
    """

    nprobe: int = 0
    ef_search: int = 1024


class VectorStore:
    """Abstract index, title matrix and id mapping of one Elasticsearch index.

    Vectors must be L2-normalised float32, so inner product equals cosine.
    Not thread-safe for writes; concurrent searches are safe once loaded.
    """

    def __init__(self, meta: StoreMetadata, tuning: SearchTuning | None = None,
                 use_gpu: bool | None = None):
        _check_factory(meta.factory, meta.dimension)
        self.meta = meta
        self.tuning = tuning or SearchTuning()
        self.use_gpu = faiss.get_num_gpus() > 0 if use_gpu is None else use_gpu
        d = meta.dimension
        self.application_numbers: list[str] = []
        self.content_hashes: list[str] = []
        self.abstracts = np.zeros((0, d), dtype=np.float32)
        self.titles = np.zeros((0, d), dtype=np.float32)
        self.live = np.zeros(0, dtype=bool)
        self.row_of: dict[str, int] = {}
        self.index = faiss.index_factory(d, "IDMap2," + meta.factory, faiss.METRIC_INNER_PRODUCT)
        self._search_index: faiss.Index | None = None

    # -- size and lookup ------------------------------------------------

    def __len__(self) -> int:
        return len(self.row_of)

    @property
    def dimension(self) -> int:
        return self.meta.dimension

    @property
    def retired(self) -> int:
        return len(self.application_numbers) - len(self.row_of)

    def rows_for(self, numbers: Iterable[str]) -> np.ndarray:
        """Return the live rows of the given application numbers; unknown ones are skipped."""
        rows = [self.row_of[n] for n in numbers if n in self.row_of]
        return np.asarray(rows, dtype=np.int64)

    def numbers_for(self, rows: Sequence[int] | np.ndarray) -> list[str]:
        return [self.application_numbers[int(r)] for r in rows]

    def content_hash(self, number: str) -> str | None:
        row = self.row_of.get(number)
        return None if row is None else self.content_hashes[row]

    # -- writing --------------------------------------------------------

    def _check_vectors(self, name: str, vectors: np.ndarray, count: int) -> np.ndarray:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape != (count, self.dimension):
            raise ValueError(
                f"{name} must have shape ({count}, {self.dimension}), found {vectors.shape}; "
                "was the store built with a different encoder?"
            )
        norms = np.linalg.norm(vectors, axis=1)
        if count and not np.allclose(norms, 1.0, atol=1e-3):
            bad = int(np.argmax(np.abs(norms - 1.0)))
            raise ValueError(f"{name} row {bad} has norm {norms[bad]:.4f}; vectors must be L2-normalised")
        return vectors

    def upsert(self, numbers: Sequence[str], content_hashes: Sequence[str],
               abstracts: np.ndarray, titles: np.ndarray) -> None:
        """Add patents, replacing the rows of numbers already in the store.

        Trains the index first when it needs training and has none (IVF).
        """
        n = len(numbers)
        if len(content_hashes) != n:
            raise ValueError(f"{n} numbers but {len(content_hashes)} content hashes")
        if len(set(numbers)) != n:
            raise ValueError("application numbers passed to upsert must be unique")
        abstracts = self._check_vectors("abstracts", abstracts, n)
        titles = self._check_vectors("titles", titles, n)
        if n == 0:
            return
        self.remove([num for num in numbers if num in self.row_of])

        start = len(self.application_numbers)
        self.application_numbers.extend(numbers)
        self.content_hashes.extend(content_hashes)
        self.abstracts = np.concatenate([self.abstracts, abstracts])
        self.titles = np.concatenate([self.titles, titles])
        self.live = np.concatenate([self.live, np.ones(n, dtype=bool)])
        for offset, number in enumerate(numbers):
            self.row_of[number] = start + offset

        if not self.index.is_trained:
            self.train(self.abstracts[self.live])
        self.index.add_with_ids(abstracts, np.arange(start, start + n, dtype=np.int64))
        self._search_index = None

    def train(self, vectors: np.ndarray, max_points_per_cell: int = 64, seed: int = 1234) -> None:
        """Train the index on a random sample of ``vectors`` (IVF cells, SQ ranges).

        Faiss warns below 39 training points per IVF cell and needs no more than 256. The default 64
        keeps k-means on the full corpus (4096 cells, 262k points) within a few
        minutes on a CPU; a larger sample improves cells little and costs time.
        """
        if self.index.is_trained:
            return
        ivf = faiss.try_extract_index_ivf(self.index)
        wanted = ivf.nlist * max_points_per_cell if ivf is not None else 100_000
        if ivf is not None and len(vectors) < ivf.nlist:
            raise VectorStoreError(
                f"factory {self.meta.factory!r} has {ivf.nlist} IVF cells but only {len(vectors)} "
                "vectors to train on; use 'Flat' or 'auto' for a corpus this small"
            )
        rng = np.random.default_rng(seed)
        if len(vectors) > wanted:
            vectors = vectors[np.sort(rng.choice(len(vectors), wanted, replace=False))]
        logger.info("Training %s on %d vectors", self.meta.factory, len(vectors))
        started = time.perf_counter()
        self.index.train(np.ascontiguousarray(vectors, dtype=np.float32))
        logger.info("Trained %s in %.1f s", self.meta.factory, time.perf_counter() - started)

    def remove(self, numbers: Iterable[str]) -> int:
        """Retire the rows of ``numbers``; return how many were in the store."""
        rows = [self.row_of.pop(n) for n in numbers if n in self.row_of]
        if not rows:
            return 0
        ids = np.asarray(rows, dtype=np.int64)
        self.live[ids] = False
        if not _is_hnsw(self.meta.factory):
            self.index.remove_ids(ids)
        self._search_index = None
        return len(rows)

    def needs_compaction(self) -> bool:
        rows = len(self.application_numbers)
        return rows > 0 and self.retired / rows > COMPACT_FRACTION

    def compact(self) -> None:
        """Drop retired rows and rebuild the index from the live rows (ids change)."""
        keep = np.flatnonzero(self.live)
        numbers = [self.application_numbers[r] for r in keep]
        hashes = [self.content_hashes[r] for r in keep]
        abstracts, titles = self.abstracts[keep], self.titles[keep]
        logger.info("Compacting the vector store: %d live rows, %d retired", len(keep), self.retired)
        fresh = VectorStore(self.meta, self.tuning, self.use_gpu)
        if len(keep):
            fresh.train(abstracts)
            fresh.upsert(numbers, hashes, abstracts, titles)
        self.__dict__.update(fresh.__dict__)

    # -- searching ------------------------------------------------------

    def _index_for_search(self) -> faiss.Index:
        if self._search_index is None:
            index = self.index
            if self.use_gpu and not _is_hnsw(self.meta.factory):
                # NOTE: this path needs faiss-gpu and was not exercised by the
                # test suite, which runs on CPU-only machines.
                try:
                    index = faiss.index_cpu_to_all_gpus(self.index)
                    logger.info("Abstract index copied to %d GPU(s)", faiss.get_num_gpus())
                except RuntimeError as exc:
                    logger.warning("Searching on the CPU: copying %s to the GPU failed: %s",
                                   self.meta.factory, exc)
            self._search_index = index
        return self._search_index

    def _search_params(self, k: int, selector: faiss.IDSelector | None) -> faiss.SearchParameters | None:
        factory = self.meta.factory
        if _is_ivf(factory):
            nlist = faiss.extract_index_ivf(self.index).nlist
            params = faiss.SearchParametersIVF()
            params.nprobe = self.tuning.nprobe or min(nlist, max(16, nlist // 16))
        elif _is_hnsw(factory):
            params = faiss.SearchParametersHNSW()
            params.efSearch = max(self.tuning.ef_search, k)
        else:
            params = faiss.SearchParameters()
        if selector is not None:
            params.sel = selector
        return params

    def search_abstracts(self, query: np.ndarray, k: int,
                         allowed_rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Return (rows, approximate scores) of the ``k`` abstracts nearest to ``query``.

        Args:
            query: (d,) L2-normalised query vector.
            k: number of neighbours wanted; fewer come back when fewer rows qualify.
            allowed_rows: restrict the search to these rows. Sets smaller than
                ``4 * k`` are scored exactly with numpy; larger ones go through
                the index with an ``IDSelectorBatch``.
        """
        query = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        if query.shape[1] != self.dimension:
            raise ValueError(f"query has dimension {query.shape[1]}, the store {self.dimension}")
        if allowed_rows is not None:
            allowed_rows = np.asarray(allowed_rows, dtype=np.int64)
            allowed_rows = allowed_rows[self.live[allowed_rows]]
            if len(allowed_rows) <= 4 * k:
                return self._exact_subset(query[0], k, allowed_rows)
            selector = faiss.IDSelectorBatch(allowed_rows)
        elif self.retired and _is_hnsw(self.meta.factory):
            selector = faiss.IDSelectorNot(faiss.IDSelectorBatch(np.flatnonzero(~self.live)))
        else:
            selector = None
        k = min(k, len(self))
        if k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if self.use_gpu and selector is not None:
            # GPU indices ignore IDSelectors; the CPU index honours them.
            index = self.index
        else:
            index = self._index_for_search()
        scores, rows = index.search(query, k, params=self._search_params(k, selector))
        found = rows[0] >= 0
        return rows[0][found], scores[0][found]

    def _exact_subset(self, query: np.ndarray, k: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scores = self.abstracts[rows] @ query
        order = np.argsort(-scores, kind="stable")[:k]
        return rows[order], scores[order]

    def abstract_similarity(self, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Exact cosine similarity of ``query`` to the abstracts of ``rows``."""
        return self.abstracts[np.asarray(rows, dtype=np.int64)] @ np.asarray(query, dtype=np.float32)

    def title_similarity(self, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Exact cosine similarity of ``query`` to the titles of ``rows``."""
        return self.titles[np.asarray(rows, dtype=np.int64)] @ np.asarray(query, dtype=np.float32)

    # -- persistence ----------------------------------------------------

    def save(self, root: Path) -> Path:
        """Write a new version under ``root`` and switch ``CURRENT`` to it atomically."""
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        now = _utc_now()
        self.meta.count = len(self)
        self.meta.rows = len(self.application_numbers)
        self.meta.updated_at = now
        self.meta.built_at = self.meta.built_at or now
        self.meta.versions = library_versions()

        name = "v-" + datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        staging = root / f".{name}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        faiss.write_index(self.index, str(staging / "abstracts.faiss"))
        np.save(staging / "abstracts.npy", self.abstracts)
        np.save(staging / "titles.npy", self.titles)
        rows = {"application_numbers": self.application_numbers,
                "content_hashes": self.content_hashes,
                "live": self.live.astype(np.uint8).tolist()}
        (staging / "rows.json").write_text(json.dumps(rows))
        (staging / "meta.json").write_text(json.dumps(asdict(self.meta), indent=2))
        for path in staging.iterdir():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
        os.replace(staging, root / name)

        previous = current_version(root)
        pointer = root / ".CURRENT.tmp"
        pointer.write_text(name + "\n")
        os.replace(pointer, root / "CURRENT")
        if previous is not None and previous.name != name:
            shutil.rmtree(previous, ignore_errors=True)
        logger.info("Saved vector store %s: %d patents (%d rows), %s", root / name,
                    self.meta.count, self.meta.rows, self.meta.factory)
        return root / name

    @classmethod
    def load(cls, root: Path, tuning: SearchTuning | None = None, use_gpu: bool | None = None,
             mmap: bool = False) -> "VectorStore":
        """Load the current version under ``root``.

        Args:
            mmap: map the vector arrays read-only instead of reading them into
                memory; the store then cannot be updated.

        Raises:
            VectorStoreError: nothing saved there, or the files disagree.
        """
        folder = current_version(Path(root))
        if folder is None:
            raise VectorStoreError(
                f"no vector store under {root}; build one with `patentmatch index build`"
            )
        meta = read_metadata(Path(root))
        if meta.format != STORE_FORMAT:
            raise VectorStoreError(f"{folder} has store format {meta.format}, this code reads "
                                   f"{STORE_FORMAT}; rebuild with `patentmatch index build`")
        store = cls.__new__(cls)
        store.meta = meta
        store.tuning = tuning or SearchTuning()
        store.use_gpu = faiss.get_num_gpus() > 0 if use_gpu is None else use_gpu
        store._search_index = None
        mode = "r" if mmap else None
        store.abstracts = np.load(folder / "abstracts.npy", mmap_mode=mode)
        store.titles = np.load(folder / "titles.npy", mmap_mode=mode)
        rows = json.loads((folder / "rows.json").read_text())
        store.application_numbers = rows["application_numbers"]
        store.content_hashes = rows["content_hashes"]
        store.live = np.asarray(rows["live"], dtype=bool)
        store.row_of = {n: r for r, n in enumerate(store.application_numbers) if store.live[r]}
        store.index = faiss.read_index(str(folder / "abstracts.faiss"))

        sizes = {len(store.application_numbers), len(store.abstracts), len(store.titles), len(store.live)}
        if len(sizes) != 1 or store.index.ntotal != len(store) + (
                store.retired if _is_hnsw(meta.factory) else 0):
            raise VectorStoreError(
                f"{folder} is inconsistent (rows {sorted(sizes)}, index {store.index.ntotal}, "
                f"live {len(store)}); rebuild with `patentmatch index build`"
            )
        if store.abstracts.shape[1:] != (meta.dimension,):
            raise VectorStoreError(f"{folder}: vectors have shape {store.abstracts.shape}, "
                                   f"metadata says dimension {meta.dimension}")
        logger.info("Loaded vector store %s: %d patents, %s, encoder %s", folder, len(store),
                    meta.factory, meta.encoder_name)
        return store


def current_version(root: Path) -> Path | None:
    """Return the live version folder under ``root``, or None when nothing is saved."""
    try:
        name = (Path(root) / "CURRENT").read_text().strip()
    except FileNotFoundError:
        return None
    folder = Path(root) / name
    return folder if folder.is_dir() else None


def read_metadata(root: Path) -> StoreMetadata:
    """Read ``meta.json`` of the current version, without loading vectors."""
    folder = current_version(root)
    if folder is None:
        raise VectorStoreError(f"no vector store under {root}; build one with `patentmatch index build`")
    data = json.loads((folder / "meta.json").read_text())
    known = StoreMetadata.__dataclass_fields__
    return StoreMetadata(**{k: v for k, v in data.items() if k in known})


def store_dir(cache_dir: Path, alias: str) -> Path:
    """Folder of the vector store that belongs to the Elasticsearch alias ``alias``."""
    return Path(cache_dir) / "vectors" / alias


def check_metadata(meta: StoreMetadata, *, es_index: str | None = None, es_count: int | None = None,
                   encoder_fingerprint: str | None = None, dimension: int | None = None) -> None:
    """Raise VectorStoreMismatch when the store does not fit the index or encoder.

    Every check is skipped whose argument is None.
    """
    problems = []
    if es_index is not None and meta.es_index != es_index:
        problems.append(f"built from index {meta.es_index!r} but the alias now points to {es_index!r}")
    if es_count is not None and meta.count != es_count:
        problems.append(f"holds {meta.count} patents but Elasticsearch has {es_count}")
    if encoder_fingerprint is not None and meta.encoder_fingerprint != encoder_fingerprint:
        problems.append(
            f"built with encoder {meta.encoder_name!r} ({meta.encoder_fingerprint[:12]}), "
            f"the loaded encoder has fingerprint {encoder_fingerprint[:12]}"
        )
    if dimension is not None and meta.dimension != dimension:
        problems.append(f"has dimension {meta.dimension}, the encoder {dimension}")
    if problems:
        raise VectorStoreMismatch(
            "the vector store " + "; ".join(problems)
            + ". Run `patentmatch index update` (or `index build` after an encoder change)"
        )
