"""Vector search at corpus scale: exact, IVF and HNSW on random unit vectors.

For each size the benchmark builds the index, then measures recall@k against
exact search, single-query latency and the memory the index adds. Random unit
vectors have no cluster structure, which is the hardest case for IVF and HNSW,
so the recall here is a lower bound for real embeddings.

    python benchmarks/vector_scale.py --sizes 100000 500000 1600000 --out benchmarks/results/vector_scale.json

Prints a markdown table and writes JSON. Never run by the test suite.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from search_api.vectors import derive_nlist  # noqa: E402

logger = logging.getLogger("benchmarks.vector_scale")


def rss_mib() -> float:
    """Resident memory of this process, in MiB (Linux /proc)."""
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def unit_vectors(n: int, d: int, seed: int, chunk: int = 200_000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, chunk):
        block = rng.standard_normal((min(chunk, n - start), d), dtype=np.float32)
        x[start:start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return x


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = [len(set(f[f >= 0].tolist()) & set(t.tolist())) / len(t) for f, t in zip(found, truth)]
    return float(np.mean(hits))


def latency_ms(index: faiss.Index, queries: np.ndarray, k: int, params=None) -> tuple[float, float, np.ndarray]:
    """Median and p95 single-query latency in ms, and the results of all queries."""
    times, results = [], []
    for q in queries:
        started = time.perf_counter()
        _, rows = index.search(q[None, :], k, params=params)
        times.append((time.perf_counter() - started) * 1000)
        results.append(rows[0])
    return float(np.median(times)), float(np.percentile(times, 95)), np.stack(results)


def run_size(n: int, d: int, k: int, nq: int, kinds: list[str], hnsw_max: int, seed: int,
             train_per_cell: int) -> list[dict]:
    rows: list[dict] = []
    base = unit_vectors(n, d, seed)
    queries = unit_vectors(nq, d, seed + 1)
    logger.info("n=%d d=%d: vectors ready (%.0f MiB RSS)", n, d, rss_mib())

    # Exact: the ground truth and the baseline.
    before = rss_mib()
    started = time.perf_counter()
    flat = faiss.IndexFlatIP(d)
    flat.add(base)
    build = time.perf_counter() - started
    memory = rss_mib() - before
    _, truth = flat.search(queries, k)
    p50, p95, _ = latency_ms(flat, queries, k)
    rows.append(dict(n=n, index="Flat", params="", build_s=build, memory_mib=memory,
                     recall=1.0, p50_ms=p50, p95_ms=p95))
    logger.info("Flat: p50 %.1f ms", p50)
    del flat

    if "ivf" in kinds:
        nlist = derive_nlist(n)
        factory = f"IVF{nlist},SQ8"
        before = rss_mib()
        started = time.perf_counter()
        index = faiss.index_factory(d, factory, faiss.METRIC_INNER_PRODUCT)
        sample = base[np.random.default_rng(seed).choice(n, min(n, nlist * train_per_cell), replace=False)]
        index.train(sample)
        del sample
        index.add(base)
        build = time.perf_counter() - started
        memory = rss_mib() - before
        for nprobe in (nlist // 64, nlist // 16, nlist // 4):
            params = faiss.SearchParametersIVF(nprobe=max(1, nprobe))
            p50, p95, found = latency_ms(index, queries, k, params)
            rows.append(dict(n=n, index=factory, params=f"nprobe={params.nprobe}", build_s=build,
                             memory_mib=memory, recall=recall(found, truth), p50_ms=p50, p95_ms=p95))
            logger.info("%s nprobe=%d: recall %.3f p50 %.1f ms", factory, params.nprobe, rows[-1]["recall"], p50)
        del index

    if "hnsw" in kinds and n <= hnsw_max:
        factory = "HNSW32_SQ8"
        before = rss_mib()
        started = time.perf_counter()
        index = faiss.index_factory(d, factory, faiss.METRIC_INNER_PRODUCT)
        index.train(base[: min(n, 100_000)])
        index.add(base)
        build = time.perf_counter() - started
        memory = rss_mib() - before
        for ef in (k, 2 * k):
            params = faiss.SearchParametersHNSW(efSearch=ef)
            p50, p95, found = latency_ms(index, queries, k, params)
            rows.append(dict(n=n, index=factory, params=f"efSearch={ef}", build_s=build,
                             memory_mib=memory, recall=recall(found, truth), p50_ms=p50, p95_ms=p95))
            logger.info("%s ef=%d: recall %.3f p50 %.1f ms", factory, ef, rows[-1]["recall"], p50)
        del index
    elif "hnsw" in kinds:
        rows.append(dict(n=n, index="HNSW32_SQ8", params="skipped", build_s=None, memory_mib=None,
                         recall=None, p50_ms=None, p95_ms=None,
                         note=f"not built: n > --hnsw-max {hnsw_max}"))
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| vectors | index | search params | build s | index MiB | recall@k | p50 ms | p95 ms |",
             "|---:|---|---|---:|---:|---:|---:|---:|"]

    def fmt(value, spec):
        return "n/a" if value is None else format(value, spec)

    for r in rows:
        lines.append(f"| {r['n']:,} | {r['index']} | {r['params']} | {fmt(r['build_s'], '.1f')} | "
                     f"{fmt(r['memory_mib'], '.0f')} | {fmt(r['recall'], '.3f')} | "
                     f"{fmt(r['p50_ms'], '.1f')} | {fmt(r['p95_ms'], '.1f')} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 500_000, 1_600_000],
                        help="corpus sizes (default: 100k 500k 1.6M)")
    parser.add_argument("--dim", type=int, default=384, help="vector width (default 384)")
    parser.add_argument("--k", type=int, default=1000, help="neighbours per query (default 1000, "
                        "the two-stage candidate count)")
    parser.add_argument("--queries", type=int, default=20, help="queries per configuration (default 20)")
    parser.add_argument("--kinds", nargs="+", default=["ivf", "hnsw"], choices=["ivf", "hnsw"],
                        help="approximate indices to measure besides exact")
    parser.add_argument("--hnsw-max", type=int, default=2_000_000,
                        help="largest size for which HNSW is built (default 2,000,000)")
    parser.add_argument("--train-per-cell", type=int, default=40,
                        help="IVF training vectors per cell (default 32; Faiss wants 30 to 256)")
    parser.add_argument("--threads", type=int, default=0, help="Faiss OpenMP threads (0: all cores)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="JSON output file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.threads:
        faiss.omp_set_num_threads(args.threads)

    started = time.perf_counter()
    rows = []
    for n in args.sizes:
        rows.extend(run_size(n, args.dim, args.k, args.queries, args.kinds, args.hnsw_max, args.seed,
                             args.train_per_cell))
        # Written after every size, so an interrupted run keeps what it measured.
        record = {
            "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                        "load_average": os.getloadavg(), "faiss_threads": faiss.omp_get_max_threads(),
                        "faiss": faiss.__version__, "numpy": np.__version__,
                        "python": platform.python_version()},
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "total_s": time.perf_counter() - started,
            "rows": rows,
        }
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(record, indent=2))
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
